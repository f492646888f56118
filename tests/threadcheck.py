"""The fixture that fails a test leaving a worker QThread running (DESIGN.md, "Tests"), shared by the
Qt test folders' conftests."""

from __future__ import annotations

import pytest

from desktop.workers.model_worker import running_threads


@pytest.fixture(autouse=True)
def no_thread_left_running():
    yield
    left = running_threads()
    for thread in left:
        # Stop it so one failure does not cascade into the next tests, then fail this one.
        thread.quit()
        thread.wait(10_000)
    assert not left, f"the test left {len(left)} worker thread(s) running"
