"""The worker tests use the shared fixtures of tests/conftest.py (isolated home, the real model, espeak-ng
speech) and fail any test that leaves a worker thread running."""

from __future__ import annotations

import pytest

from desktop.workers.model_worker import running_threads


@pytest.fixture(autouse=True)
def _no_thread_left_running():
    yield
    left = running_threads()
    for thread in left:
        # Stop it so one failure does not cascade into the next tests, then fail this one.
        thread.quit()
        thread.wait(10_000)
    assert not left, f"the test left {len(left)} worker thread(s) running"
