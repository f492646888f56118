"""Removing jobs from the queue, undoably.

Del takes a job out of the queue at once, but the library only marks it removed (Store.remove_job), and the
window keeps its transcript object with its undo history, so Undo brings the job back exactly as it was: its
place in the queue, its state, its transcript and edits. What was removed is deleted for good when the window
closes, and at the next start if the app did not close cleanly (Store.purge_removed): the undo offer lives in
the window, so after that nothing could bring it back, and a removed transcript should not linger on disk.

A job still waiting when removed goes back into the worker's queue on undo. A running job is cancelled by
its removal and comes back cancelled with what it had transcribed: cancelling is cooperative, so its run may
still be ending when the user undoes, and Retry runs it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from desktop.core.jobs import JobState
from desktop.core.store import StoreError
from desktop.core.transcript import Transcript

if TYPE_CHECKING:
    from desktop.ui.main_window import MainWindow

NOTICE_MS = 20_000


@dataclass(frozen=True)
class RemovedJob:
    job_id: int
    name: str
    row: int  # where it was in the queue
    transcript: Transcript | None  # the window's copy, with its undo history


class JobRemovals:
    def __init__(self, window: MainWindow) -> None:
        self._window = window
        self._removed: list[RemovedJob] = []
        # Jobs whose removal asked the worker to cancel them and whose last event has not come yet: their
        # events belong to the run that was stopped, never to the job brought back.
        # A count, as remove, undo and remove again each send a cancel with its own last event.
        self._stopping: dict[int, int] = {}

    def can_undo(self) -> bool:
        return bool(self._removed)

    def last_name(self) -> str | None:
        return self._removed[-1].name if self._removed else None

    def is_stopping(self, job_id: int) -> bool:
        return job_id in self._stopping

    def job_ended(self, job_id: int) -> bool:
        """The worker's last event for a job (finished, failed, cancelled). True when it ends the run a removal
        stopped; the window then ignores it."""
        count = self._stopping.get(job_id, 0)
        if not count:
            return False
        if count == 1:
            del self._stopping[job_id]
        else:
            self._stopping[job_id] = count - 1
        return True

    def remove(self, job_id: int) -> None:
        window = self._window
        entry = window.queue_model.entry(job_id)
        row = window.queue_model.row_of(job_id)
        if entry is None or row is None:
            return
        state = entry.job.state
        try:
            # The library first: when it refuses the write (a full disk), nothing else has changed yet.
            window.store.remove_job(job_id)
        except StoreError as exc:
            window.show_error("Not removed", f"{Path(entry.job.source).name} was not removed: {exc}.")
            return
        if state == JobState.RUNNING or job_id in window.worker.queued_ids():
            # The worker answers a cancel of a job it has with exactly one last event.
            self._stopping[job_id] = self._stopping.get(job_id, 0) + 1
        if not state.is_final:
            window.worker.cancel_job(job_id)
        if state == JobState.RUNNING:
            # What it streamed so far is saved with its end, so undo brings back what the editor showed.
            try:
                window.jobs.ended(job_id, JobState.CANCELLED)
            except StoreError as exc:
                window._halt_on_write_error(exc)
        name = Path(entry.job.source).name
        self._removed.append(RemovedJob(job_id, name, row, window._transcripts.pop(job_id, None)))
        window.queue_model.remove(job_id)
        window.notice.show_message(f"Removed {name}.", "info", action=("Undo", window.undo_remove),
                                   hide_after_ms=NOTICE_MS)
        window.statusBar().showMessage(f"Removed {name} — Undo (Ctrl+Z in the queue) brings it back.", NOTICE_MS)

    def undo(self) -> int | None:
        """Bring the last removed job back; returns its id (None when there was none)."""
        if not self._removed:
            return None
        window = self._window
        removed = self._removed.pop()
        window.store.restore_job(removed.job_id)
        job = window.store.job(removed.job_id)
        if removed.transcript is not None:
            window._transcripts[job.id] = removed.transcript
        window.queue_model.insert(min(removed.row, window.queue_model.rowCount()), job)
        order = window.queue_model.job_ids()
        window.store.set_order(order)
        recording = window.recording
        # A recording still going is queued when it ends, as ever.
        if job.state == JobState.QUEUED and (recording is None or recording.key != job.id):
            window.worker.enqueue(job.id, job.source, start_at_s=window.store.resume_point(job.id))
            window.worker.reorder(order)
        if window.notice.text().startswith(f"Removed {removed.name}"):
            window.notice.hide()
        window.statusBar().showMessage(f"{removed.name} is back.", 6000)
        return job.id
