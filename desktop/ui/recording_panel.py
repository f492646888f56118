"""Recording from the microphone, as the window shows it: the recorder bar, a job for each recording with its
live draft in the editor (never stored), and queuing the file for the full transcription when it ends.

A mixin of MainWindow: it uses the window's store, worker, queue_model, notice, status bar, select_job,
current_job_id, _known and _update_job_header. make_recorder is an attribute so tests can replace it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QVBoxLayout

from desktop.capture.recorder import RecorderState
from desktop.core.segment import Segment
from desktop.core.transcript import Transcript, fit_after
from desktop.ui.recorder_bar import RecorderBar
from desktop.ui.timefmt import format_duration

if TYPE_CHECKING:
    from desktop.capture.recorder import Recorder, RecordingResult
    from desktop.workers.recorder import RecordingSession


class RecordingPanel:
    def _build_recorder_bar(self, layout: QVBoxLayout) -> None:
        from desktop.capture.devices import list_inputs

        self.recording: RecordingSession | None = None
        self._drafts: dict[int, Transcript] = {}  # recordings' live drafts, by job id; never stored
        self.draft_interval_ms = 2500
        self.recorder_bar = RecorderBar(list_inputs)
        self.recorder_bar.record_clicked.connect(self.start_recording)
        self.recorder_bar.pause_clicked.connect(self.toggle_pause_recording)
        self.recorder_bar.stop_clicked.connect(self.stop_recording)
        self.record_action = self._action("Start/stop &recording", self.toggle_recording, None, "Ctrl+Shift+M",
                                          "Record from the microphone; stopping queues the recording")
        layout.addWidget(self.recorder_bar)

    def make_recorder(self, path: Path, device: int | None) -> Recorder:
        """The capture Recorder for a new recording (tests may replace this)."""
        from desktop.capture.recorder import Recorder

        return Recorder(path, device=device, tap_audio=True)

    def toggle_recording(self) -> None:
        if self.recording is None:
            self.start_recording()
        else:
            self.stop_recording()

    def start_recording(self) -> int | None:
        """Start recording into a new job; its live draft shows in the editor. None when the input cannot
        be opened (the reason is shown; no job or file is left behind)."""
        from desktop.capture.devices import CaptureError
        from desktop.capture.recorder import new_recording_path
        from desktop.core.segment import TranscriptInfo
        from desktop.workers.recorder import RecordingSession

        if self.recording is not None:
            return None
        try:
            path = new_recording_path()
            recorder = self.make_recorder(path, self.recorder_bar.selected_device())
        except CaptureError as exc:
            self._show_recording_error(str(exc))
            return None
        job = self.store.add_job(str(path))
        session = RecordingSession(recorder, job.id, self.worker, draft_interval_ms=self.draft_interval_ms,
                                   parent=self)
        session.level_measured.connect(self.recorder_bar.set_level)
        session.elapsed_changed.connect(self.recorder_bar.set_elapsed)
        session.state_changed.connect(self.recorder_bar.set_state)
        session.draft_changed.connect(lambda segments, job_id=job.id: self._show_draft(job_id, segments))
        session.ended.connect(lambda result, job_id=job.id: self._recording_ended(job_id, result))
        try:
            session.start()
        except CaptureError as exc:
            self.store.remove_job(job.id)
            path.unlink(missing_ok=True)
            session.deleteLater()
            self._show_recording_error(str(exc))
            return None
        self.recording = session
        self._drafts[job.id] = Transcript(TranscriptInfo(source=str(path)))
        self.queue_model.add(job)
        self.select_job(job.id)
        self.statusBar().showMessage(f"Recording to {path}", 5000)
        return job.id

    def toggle_pause_recording(self) -> None:
        if self.recording is None:
            return
        if self.recording.state == RecorderState.PAUSED:
            self.recording.resume()
        else:
            self.recording.pause()

    def stop_recording(self) -> None:
        if self.recording is not None:
            self.recording.stop()  # _recording_ended queues the file

    def _show_draft(self, job_id: int, segments: tuple[Segment, ...]) -> None:
        draft = self._drafts.get(job_id)
        if draft is None or self._closing:
            return
        draft.replace_all(fit_after(0.0, segments))
        if job_id == self.current_job_id():
            self._update_job_header()

    def _recording_ended(self, job_id: int, result: RecordingResult) -> None:
        session, self.recording = self.recording, None
        if session is not None:
            session.deleteLater()
        self.recorder_bar.set_state("idle")
        if not self._known(job_id):
            return  # closing (the job stays queued for the next start), or the job was removed
        duration = format_duration(result.duration_s)
        if result.duration_s <= 0:
            self.store.remove_job(job_id)
            self._drafts.pop(job_id, None)
            self.queue_model.remove(job_id)
            result.path.unlink(missing_ok=True)
            self._show_recording_error(result.error or "nothing was recorded")
            return
        self.worker.enqueue(job_id, str(result.path))
        if result.error:
            self._show_recording_error(f"{result.error}. The {duration} recorded before that are kept in "
                                       f"{result.path} and queued for transcription")
        else:
            self.statusBar().showMessage(f"Recorded {duration} to {result.path}; transcribing it in full.", 8000)
        if job_id == self.current_job_id():
            self._update_job_header()

    def _show_recording_error(self, message: str) -> None:
        text = f"Recording: {message}."
        self.notice.show_message(text, "error")
        self.statusBar().showMessage(text, 12_000)
