"""Transcribing a flagged range again: the request from the editor, and the answer merged into the transcript
(Transcript.merge_rerun decides and applies it) as one undoable edit, or the reason the old text stays.

A mixin of MainWindow: it uses the window's worker, jobs, transcript_model, editor, queue_model, _transcripts,
_reruns, _unsaved_edits, _known, _halt_on_write_error, _show_edit_error, _update_job_header, _update_actions
and status bar."""

from __future__ import annotations

from desktop.core.jobs import JobState
from desktop.core.store import StoreError
from desktop.core.transcript import RerunMerge
from desktop.ui.timefmt import format_time
from desktop.ui.wording import count
from desktop.workers.messages import RangeOutcome


class RangeRerun:
    def rerun_rows(self, first: int, last: int) -> int | None:
        """Ask the worker to transcribe the time of rows first..last again; the answer replaces whatever
        segments then lie in that time, as one undoable edit. Returns the request id."""
        job_id = self.current_job_id()
        entry = self.queue_model.entry(job_id) if job_id is not None else None
        transcript = self.transcript_model.transcript
        if entry is None or transcript is None or job_id is None:
            return None
        if entry.job.state != JobState.DONE:
            self._show_edit_error("A range can be transcribed again once the job is done.")
            return None
        rows = self.transcript_model.rows()
        start_s, end_s = rows[first].start_s, rows[last].end_s
        request_id = self.worker.rerun_range(job_id, entry.job.source, start_s, end_s)
        self._reruns[request_id] = transcript
        self.statusBar().showMessage(f"Transcribing {format_time(start_s)}–{format_time(end_s)} again…")
        return request_id

    def _on_range_transcribed(self, outcome: RangeOutcome) -> None:
        request = outcome.request
        transcript = self._reruns.pop(request.request_id, None)
        # The job may have been removed or retried (a new transcript) since: then the answer is stale.
        if transcript is None or not self._known(request.job_id) or self._transcripts.get(request.job_id) is not transcript:
            return
        span = f"{format_time(request.start_s)}–{format_time(request.end_s)}"
        merged: list[RerunMerge] = []
        self.transcript_model.perform(lambda: merged.append(transcript.merge_rerun(
            request.start_s, request.end_s, outcome.segments, f"Re-run {span}")), transcript)
        if not merged:
            return  # the edit was refused; edit_failed said why
        merge = merged[0]
        if merge.refused:
            self._show_edit_error(merge.refused)
            return
        if not merge.changed:
            self.statusBar().showMessage("The re-run found nothing to change.", 8000)
            return
        try:
            self.jobs.edited(request.job_id, transcript)
        except StoreError as exc:
            # Kept in the editor and saved on resume, like any edit the library refused.
            self._unsaved_edits.add(request.job_id)
            self._halt_on_write_error(exc)
        self._update_actions()
        if request.job_id == self.current_job_id():
            self._update_job_header()
            if merge.inserted:
                self.editor.select_row(merge.first, 0)
        if merge.inserted:
            self.statusBar().showMessage(f"{span} transcribed again: {count(merge.replaced, 'segment')} replaced by "
                                         f"{merge.inserted} (Ctrl+Z undoes it).", 10_000)
        else:
            self.statusBar().showMessage(f"The re-run found no speech in {span}; the flagged segments were removed "
                                         "(Ctrl+Z brings them back).", 10_000)

    def _on_range_failed(self, outcome: RangeOutcome) -> None:
        if self._reruns.pop(outcome.request.request_id, None) is not None and not self._closing:
            self._show_edit_error(f"The range could not be transcribed again: {outcome.error}")
