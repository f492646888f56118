"""The workers tests use the shared fixtures of tests/conftest.py (isolated home, the real model, espeak-ng
speech) and fail any test that leaves a worker thread running."""

from tests.threadcheck import no_thread_left_running  # noqa: F401  (autouse fixture)
