"""The worker's events, as the window takes them: each is written to the library through the JobCoordinator
and shown in the queue and the header. A write the library refuses (a full disk) holds the worker until the
user resumes; what was saved stays, and each stopped job resumes where its saved text ends.

A mixin of MainWindow: it uses the window's worker, jobs (the coordinator), store, queue_model, removals,
notice, current_job_id, _show_job, _update_job_header, _update_actions and status bar."""

from __future__ import annotations

import logging
from collections.abc import Callable

from desktop.core.jobs import JobState
from desktop.core.segment import Segment
from desktop.core.store import StoreError

log = logging.getLogger(__name__)


class JobEvents:
    def _connect_worker(self) -> None:
        self.worker.model_status_changed.connect(self._on_model_status)
        self.worker.model_failed.connect(self._on_model_failed)
        self.worker.job_started.connect(self._on_job_started)
        self.worker.segments_decoded.connect(self._on_segments_decoded)
        self.worker.job_progressed.connect(self._on_job_progressed)
        self.worker.job_noticed.connect(self._on_job_noticed)
        self.worker.job_finished.connect(self._on_job_finished)
        self.worker.job_failed.connect(self._on_job_failed)
        self.worker.job_cancelled.connect(self._on_job_cancelled)
        self.worker.range_transcribed.connect(self._on_range_transcribed)
        self.worker.range_failed.connect(self._on_range_failed)
        self.editor.rerun_requested.connect(self.rerun_rows)
        self.editor.message.connect(lambda text: self.statusBar().showMessage(text, 8000))

    def _resume_queue(self) -> None:
        """Jobs a crash left running, and jobs still queued when the app last closed, run again."""
        try:
            found = self.jobs.resumable()
        except StoreError as exc:
            self._halt_on_write_error(exc)
            return
        for item in found:
            job = item.job
            if item.interrupted:
                self.queue_model.update(job.id, state=JobState.QUEUED)
                log.info("resuming job %d (%s) at %.2f s", job.id, job.source, item.start_at_s)
            self.worker.enqueue(job.id, job.source, start_at_s=item.start_at_s)

    def _halt_on_write_error(self, exc: StoreError) -> None:
        """Stop transcribing until the user resumes: what cannot be saved would be lost. What was saved
        stays, and each stopped job resumes where its saved text ends."""
        first = self._write_failure is None
        self._write_failure = exc
        if first:
            log.error("the library refused a write: %s", exc)
            stopped = set(self.worker.hold()) | set(self.jobs.halted())
            self._stopped_by_hold = set(stopped)
            stopped |= {job.id for job in self.queue_model.jobs() if job.state == JobState.RUNNING}
            for job_id in stopped:
                self.queue_model.update(job_id, state=JobState.QUEUED, error=None)
        what = "Free some space, then press Resume" if getattr(exc, "disk_full", False) else "Press Resume once it is fixed"
        self.notice.setProperty("write-error", True)
        self.notice.show_message(
            f"Could not save to the library: {exc}. Transcription is paused and everything saved so far is kept. "
            f"{what}: it carries on where the saved text ends.", "error",
            action=("Resume", self.resume_after_write_error))
        self._update_job_header()
        self._update_actions()

    def resume_after_write_error(self) -> bool:
        """Carry on after a refused write, once the library takes writes again. True when it did."""
        if self._write_failure is None:
            return True
        try:
            for job_id in sorted(self._unsaved_edits):
                if self.store.has_job(job_id):
                    self.jobs.edited(job_id, self.jobs.transcript(job_id))
            self._unsaved_edits.clear()
            # Jobs stopped mid-run go back to the queue at their resume point (a crash would do the same).
            found = self.jobs.resumable()
        except StoreError as exc:
            self._write_failure = None
            self._halt_on_write_error(exc)
            return False
        self._write_failure = None
        self.notice.setProperty("write-error", False)
        self.notice.hide()
        recording = self.recording.key if self.recording is not None else None
        for job_id in sorted(self._cancelled_while_paused):
            self._store_write(job_id, lambda job_id=job_id: self.jobs.ended(job_id, JobState.CANCELLED))
        cancelled, self._cancelled_while_paused = self._cancelled_while_paused, set()
        for item in found:
            if item.job.id == recording or item.job.id in cancelled:
                continue  # still being recorded (queued when it ends, as ever), or cancelled while paused
            self.jobs.forget(item.job.id)
            self.queue_model.update(item.job.id, state=JobState.QUEUED, error=None, done_s=item.start_at_s)
            self.worker.enqueue(item.job.id, item.job.source, start_at_s=item.start_at_s)
        self.worker.release()
        self.statusBar().showMessage("Saving works again; transcription carries on.", 8000)
        if self.current_job_id() is not None:
            self._show_job(self.current_job_id())
        return True

    def _store_write(self, job_id: int, write: Callable[[], object]) -> bool:
        """Run one library write for a job's event; a refused write pauses the queue. True when saved."""
        if self._write_failure is not None:
            return False
        try:
            write()
        except StoreError as exc:
            self._halt_on_write_error(exc)
            return False
        return True

    def _known(self, job_id: int) -> bool:
        # A job removed while the worker still had events for it is ignored from then on, and so are the
        # last events of a run its removal stopped, should the job be back by then.
        return (not self._closing and self.queue_model.row_of(job_id) is not None
                and not self.removals.is_stopping(job_id))

    def _on_job_started(self, job_id: int, event) -> None:
        if not self._known(job_id) or self._write_failure is not None:
            return
        self._drafts.pop(job_id, None)  # a recording's full pass replaces its live draft
        self._notices.pop(job_id, None)
        if not self._store_write(job_id, lambda: self.jobs.started(
                job_id, event.duration_s, event.language, event.language_probability, self._model_name,
                event.start_at_s)):
            return
        job = self.store.job(job_id)
        self.queue_model.update(job_id, state=JobState.RUNNING, duration_s=event.duration_s,
                                language=job.language, error=None, done_s=event.start_at_s)
        if job_id == self.current_job_id():
            self._show_job(job_id)

    def _on_segments_decoded(self, job_id: int, segments: tuple[Segment, ...]) -> None:
        if not self._known(job_id) or self._write_failure is not None:
            return
        self.jobs.decoded(job_id, segments)
        if job_id == self.current_job_id():
            self._update_job_header()

    def _on_job_progressed(self, job_id: int, done_s: float, total_s: float) -> None:
        if not self._known(job_id) or self._write_failure is not None:
            return
        if self._store_write(job_id, lambda: self.jobs.progressed(job_id, done_s)):
            self.queue_model.set_progress(job_id, done_s, total_s)
            log.info("job %d: committed up to %.2f of %.2f s", job_id, done_s, total_s)

    def _end_job(self, job_id: int, state: JobState, error: str | None = None) -> None:
        if self.removals.job_ended(job_id) or not self._known(job_id):
            return
        if self._write_failure is not None:
            if state == JobState.CANCELLED and job_id not in self._stopped_by_hold:
                # The user cancelled it while paused: Resume must not queue it again.
                self._cancelled_while_paused.add(job_id)
                self.queue_model.update(job_id, state=state, error=None)
                self._update_actions()
            return
        if not self._store_write(job_id, lambda: self.jobs.ended(job_id, state, error)):
            return
        log.info("job %d: %s", job_id, state.value)
        self.queue_model.update(job_id, state=state, error=error)
        if job_id == self.current_job_id():
            self._update_job_header()
        self._update_actions()

    def _on_job_noticed(self, job_id: int, notices: tuple[str, ...]) -> None:
        if self._known(job_id):
            self._notices[job_id] = tuple(notices)  # shown by _end_job's header update, which follows

    def _on_job_finished(self, job_id: int) -> None:
        self._end_job(job_id, JobState.DONE)

    def _on_job_failed(self, job_id: int, reason: str) -> None:
        self._end_job(job_id, JobState.FAILED, reason)

    def _on_job_cancelled(self, job_id: int) -> None:
        self._end_job(job_id, JobState.CANCELLED)

    def _save_edit(self) -> None:
        job_id = self.current_job_id()
        transcript = self.transcript_model.transcript
        if job_id is None or transcript is None:
            return
        try:
            self.jobs.edited(job_id, transcript)
        except StoreError as exc:
            # The edit stays in the editor and is saved on resume.
            self._unsaved_edits.add(job_id)
            self._halt_on_write_error(exc)
            self._show_edit_error(f"Your edit is not saved yet: {exc}")
            return
        self._unsaved_edits.discard(job_id)
        self.edit_error.hide()
        self._update_actions()
