"""End-to-end tests use the shared fixtures of tests/conftest.py and fail any test that leaves a QThread running."""

from tests.threadcheck import no_thread_left_running  # noqa: F401  (autouse fixture)
