"""Qt glue for a recording: polls the capture Recorder for levels and elapsed time, feeds the live draft
to the model worker and reports how the recording ended. Lives in the GUI thread; the Recorder's own
threads do the audio work, so nothing here blocks for long (stop waits for the last blocks to be written).
"""

from __future__ import annotations

import logging
from typing import Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.capture.recorder import Recorder, RecorderState, RecordingResult
from desktop.engine.draft import DraftRequest, DraftResult, LiveDraft
from desktop.workers.signals import emit

log = logging.getLogger(__name__)

POLL_INTERVAL_MS = 50
DRAFT_INTERVAL_MS = 2500


class DraftService(Protocol):
    """What the session needs of the model worker (ModelWorker provides it)."""

    draft_decoded: object

    def request_draft(self, request: DraftRequest) -> None: ...


class RecordingSession(QObject):
    """One recording, from start() to stop() (or a failure). `key` names the recording's document (its job
    id) in draft requests."""

    level_measured = Signal(object)  # Level
    elapsed_changed = Signal(float)  # seconds recorded
    state_changed = Signal(str)  # RecorderState value
    draft_changed = Signal(object)  # tuple[Segment, ...]: settled draft, then provisional
    ended = Signal(object)  # RecordingResult; its error says why when it ended by itself

    def __init__(
        self,
        recorder: Recorder,
        key: int,
        drafts: DraftService | None = None,
        *,
        poll_interval_ms: int = POLL_INTERVAL_MS,
        draft_interval_ms: int = DRAFT_INTERVAL_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.recorder = recorder
        self.key = key
        self.draft = LiveDraft(key)
        self._drafts = drafts
        self.result: RecordingResult | None = None
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(poll_interval_ms)
        self._poll_timer.timeout.connect(self._poll)
        self._draft_timer = QTimer(self)
        self._draft_timer.setInterval(draft_interval_ms)
        self._draft_timer.timeout.connect(self._request_draft)
        if drafts is not None:
            drafts.draft_decoded.connect(self._on_draft)  # type: ignore[attr-defined]

    @property
    def state(self) -> RecorderState:
        return self.recorder.state

    def start(self) -> None:
        """Start recording; raises CaptureError (with nothing left behind) when the input cannot open."""
        self.recorder.start()
        self._poll_timer.start()
        if self._drafts is not None:
            self._draft_timer.start()
        emit(self.state_changed, self.recorder.state.value)

    def pause(self) -> None:
        self.recorder.pause()
        emit(self.state_changed, self.recorder.state.value)

    def resume(self) -> None:
        self.recorder.resume()
        emit(self.state_changed, self.recorder.state.value)

    def stop(self) -> RecordingResult:
        if self.result is not None:
            return self.result
        self._poll_timer.stop()
        self._draft_timer.stop()
        self.result = self.recorder.stop()
        if self._drafts is not None:
            self._drafts.draft_decoded.disconnect(self._on_draft)  # type: ignore[attr-defined]
        emit(self.elapsed_changed, self.result.duration_s)
        emit(self.state_changed, RecorderState.STOPPED.value)
        emit(self.ended, self.result)
        return self.result

    def _poll(self) -> None:
        emit(self.level_measured, self.recorder.level())
        emit(self.elapsed_changed, self.recorder.recorded_s)
        if self.recorder.wait_ended(0):
            self.stop()

    def _request_draft(self) -> None:
        self.draft.add_audio(self.recorder.take_audio(), self.recorder.sample_rate)
        request = self.draft.request()
        if request is not None and self._drafts is not None:
            self._drafts.request_draft(request)

    def _on_draft(self, result: DraftResult) -> None:
        if result.key != self.key or self.result is not None:
            return
        if result.error:
            log.info("live draft skipped: %s", result.error)
        if self.draft.apply(result):
            emit(self.draft_changed, self.draft.segments())
