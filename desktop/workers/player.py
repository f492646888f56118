"""Playback for the window: decodes a job's source (video files' audio too) off the GUI thread, owns the
no-Qt Playback and reports its position about 20 times a second while it plays.

Decoding runs on a plain daemon thread (it holds no Qt objects and touches no store); its result comes back
to the GUI thread through a queued signal, tagged with a generation number so the answer for a source the
user has since left is dropped. Decoded audio is kept for the current source only, so playing segment after
segment in one transcript decodes once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from desktop.capture.playback import (
    LISTENING_RATE,
    Playback,
    PlaybackError,
    PlaybackState,
    output_rate,
)
from desktop.engine.audio import decode_for_listening
from desktop.workers.signals import emit

POSITION_INTERVAL_MS = 50  # ~20 Hz: smooth for a slider, cheap for the GUI thread

# (path, sample_rate, cancel) -> mono samples; (samples, sample_rate) -> Playback. Replaceable in tests.
Decoder = Callable[[Path, int, threading.Event], np.ndarray]
PlaybackFactory = Callable[[np.ndarray, int], Playback]


class PlayerState(str, Enum):
    EMPTY = "empty"  # no source
    LOADING = "loading"  # decoding the source; plays when done
    STOPPED = "stopped"
    PLAYING = "playing"
    PAUSED = "paused"


class Player(QObject):
    position_changed = Signal(float)  # seconds in the source
    state_changed = Signal(str)  # a PlayerState value
    duration_changed = Signal(float)  # seconds; known once the source is decoded
    error = Signal(str)  # one sentence for the user

    _decoded = Signal(int, object, str)  # generation, samples (or None), error message (internal)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        decoder: Decoder | None = None,
        playback_factory: PlaybackFactory | None = None,
        rate_for_output: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(parent)
        self.decoder: Decoder = decoder or (lambda path, rate, cancel: decode_for_listening(path, rate, cancel))
        self.playback_factory: PlaybackFactory = playback_factory or (lambda samples, rate: Playback(samples, rate))
        self.rate_for_output = rate_for_output or (lambda: output_rate(LISTENING_RATE))
        self._source: Path | None = None
        self._duration_hint_s: float | None = None
        self._playback: Playback | None = None
        self._state = PlayerState.EMPTY
        self._generation = 0
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending_start_s: float | None = None
        self._pending_loop: tuple[float, float] | None = None
        self._loop: tuple[float, float] | None = None
        self._speed = 1.0
        self._last_position_s = -1.0
        self._decoded.connect(self._on_decoded)
        self._timer = QTimer(self)
        self._timer.setInterval(POSITION_INTERVAL_MS)
        self._timer.timeout.connect(self.poll)

    # -- readouts ----------------------------------------------------------------------------------
    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def state(self) -> PlayerState:
        return self._state

    @property
    def position_s(self) -> float:
        return self._playback.position_s if self._playback is not None else max(self._pending_start_s or 0.0, 0.0)

    @property
    def duration_s(self) -> float | None:
        """The decoded audio's length; before decoding, the length the caller announced (if any)."""
        return self._playback.duration_s if self._playback is not None else self._duration_hint_s

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def loop_s(self) -> tuple[float, float] | None:
        return self._loop

    def is_playing(self) -> bool:
        return self._state in (PlayerState.PLAYING, PlayerState.LOADING)

    # -- control -----------------------------------------------------------------------------------
    def set_source(self, source: str | Path | None, duration_s: float | None = None) -> None:
        """Show another file: whatever plays stops, and the decoded audio of the old one is dropped.
        `duration_s` (known from the transcript, say) lets the position slider work before decoding."""
        path = Path(source) if source is not None else None
        if path == self._source:
            return
        self._release()
        self._source = path
        self._duration_hint_s = duration_s if path is not None and duration_s else None
        self._set_state(PlayerState.EMPTY if path is None else PlayerState.STOPPED)
        if self._duration_hint_s is not None:
            emit(self.duration_changed, self._duration_hint_s)

    def play(self, from_s: float | None = None, loop: tuple[float, float] | None = None) -> None:
        """Play from `from_s` (default: where it is), looping `loop` when given; decodes the source first
        when needed. Errors are reported through `error`, never raised."""
        if self._source is None:
            emit(self.error, "Nothing to play: select a job first.")
            return
        if loop is not None:
            self._loop = loop
        if self._playback is None:
            if from_s is not None:  # else: where a seek before decoding put it, or the start
                self._pending_start_s = from_s
            self._pending_loop = self._loop
            if self._state != PlayerState.LOADING:
                self._start_decoding()
            return
        try:
            self._apply_loop()
            self._playback.play(from_s)
        except (PlaybackError, ValueError) as exc:
            self._fail(str(exc))
            return
        self._timer.start()
        self._set_state(PlayerState.PLAYING)
        self.poll()

    def pause(self) -> None:
        if self._state == PlayerState.LOADING:
            self._cancel_decoding()
            self._set_state(PlayerState.STOPPED)
        elif self._playback is not None and self._state == PlayerState.PLAYING:
            self._playback.pause()
            self.poll()

    def toggle(self) -> None:
        self.pause() if self.is_playing() else self.play()

    def stop(self) -> None:
        if self._state == PlayerState.LOADING:
            self._cancel_decoding()
        if self._playback is not None:
            self._playback.stop()
        if self._source is not None:
            self._set_state(PlayerState.STOPPED)
        self.poll(force=True)

    def seek(self, position_s: float) -> None:
        if self._playback is not None:
            self._playback.seek(position_s)
            self.poll(force=True)
        else:
            self._pending_start_s = position_s

    def set_speed(self, speed: float) -> None:
        if self._playback is not None:
            try:
                self._playback.set_speed(speed)
            except ValueError as exc:
                emit(self.error, str(exc))
                return
        self._speed = float(speed)

    def set_loop(self, loop: tuple[float, float] | None) -> None:
        """Loop [start_s, end_s) from now on, or stop looping (None)."""
        self._loop = loop
        if self._playback is not None:
            try:
                self._apply_loop()
            except ValueError as exc:
                emit(self.error, str(exc))
        else:
            self._pending_loop = loop

    def close(self) -> None:
        """Stop, free the audio and wait briefly for a decode in progress to notice."""
        self._release()
        self._source = None
        self._set_state(PlayerState.EMPTY)

    # -- internals ---------------------------------------------------------------------------------
    def _apply_loop(self) -> None:
        assert self._playback is not None
        if self._loop is None:
            self._playback.clear_loop()
        else:
            self._playback.set_loop(*self._loop)

    def _release(self) -> None:
        self._timer.stop()
        self._cancel_decoding()
        if self._playback is not None:
            self._playback.close()
            self._playback = None
        self._pending_start_s = None
        self._last_position_s = -1.0

    def _start_decoding(self) -> None:
        assert self._source is not None
        self._generation += 1
        self._cancel = threading.Event()
        generation, source, cancel = self._generation, self._source, self._cancel

        def work() -> None:
            try:
                rate = self.rate_for_output()
                samples = self.decoder(source, rate, cancel)
                result: tuple[object, str] = ((samples, rate), "")
            except Exception as exc:  # noqa: BLE001 - any failure becomes a message, the app goes on
                result = (None, _reason(exc))
            if not cancel.is_set():
                emit(self._decoded, generation, result[0], result[1])

        self._thread = threading.Thread(target=work, name="verbatim-playback-decode", daemon=True)
        self._set_state(PlayerState.LOADING)
        self._thread.start()

    def _cancel_decoding(self) -> None:
        self._cancel.set()
        self._generation += 1
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2.0)  # PyAV notices between packets; a stuck read is left to the daemon flag

    def _on_decoded(self, generation: int, result: object, message: str) -> None:
        if generation != self._generation:
            return  # the user moved on while this was decoding
        self._thread = None
        if result is None:
            self._fail(f"Cannot play {self._source.name if self._source else 'the file'}: {message}")
            return
        samples, rate = result  # type: ignore[misc]
        try:
            playback = self.playback_factory(samples, rate)
            playback.set_speed(self._speed)
        except (PlaybackError, ValueError) as exc:
            self._fail(str(exc))
            return
        self._playback = playback
        emit(self.duration_changed, playback.duration_s)
        self._loop = self._pending_loop
        start_s, self._pending_start_s = self._pending_start_s, None
        self.play(start_s)

    def _fail(self, message: str) -> None:
        self._timer.stop()
        self._set_state(PlayerState.STOPPED if self._source is not None else PlayerState.EMPTY)
        emit(self.error, message)

    def poll(self, force: bool = False) -> None:
        """Report the playback's position (when it moved), state and errors now; the timer calls this."""
        playback = self._playback
        if playback is None:
            return
        error = playback.take_error()
        state = {
            PlaybackState.PLAYING: PlayerState.PLAYING,
            PlaybackState.PAUSED: PlayerState.PAUSED,
            PlaybackState.STOPPED: PlayerState.STOPPED,
        }[playback.state]
        position_s = playback.position_s
        if force or abs(position_s - self._last_position_s) > 1e-6:
            self._last_position_s = position_s
            emit(self.position_changed, position_s)
        if state != PlayerState.PLAYING:
            self._timer.stop()
        self._set_state(state)
        if error:
            emit(self.error, f"Playback stopped: {error}.")

    def _set_state(self, state: PlayerState) -> None:
        if state != self._state:
            self._state = state
            emit(self.state_changed, state.value)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
