"""The recorder: an input stream written to FLAC block by block, as a voice recorder would.

PortAudio calls `_on_block` on its own thread for every block; that callback only copies the block into a
queue (it must never wait on a disk). A writer thread takes blocks from the queue, meters them and writes
them to the FLAC file, flushing every `flush_interval_s`. libFLAC encodes in frames of 4096 samples, so a
crash or power cut loses what was not flushed plus at most one frame (0.26 s at 16 kHz): under a second.
A file cut off that way has no length in its header; libsndfile refuses it but FFmpeg (PyAV, which the
engine falls back to) reads it, so an interrupted recording can still be transcribed.

Failures (the device disappears, the stream errors, the disk is full) end the recording with `error` set;
the audio written before the failure stays in the file. Nothing here raises from the writer thread.
"""

from __future__ import annotations

import enum
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from desktop.capture.devices import CaptureError, InputDevice
from desktop.capture.levels import Level, measure

log = logging.getLogger(__name__)

# Whisper's rate: a recording at 16 kHz mono needs no resampling before transcription.
PREFERRED_SAMPLE_RATE = 16_000
BLOCK_S = 0.05
FLUSH_INTERVAL_S = 0.5
# No block for this long while the stream should be running: the device is gone. The first block may take
# longer (PortAudio's ALSA `pulse` device took about 2 s to deliver it on a busy machine).
STALL_TIMEOUT_S = 3.0
FIRST_BLOCK_TIMEOUT_S = 10.0
# The draft tap keeps at most this much audio nobody has taken yet.
TAP_LIMIT_S = 120.0
_END = object()


class RecorderState(str, enum.Enum):
    IDLE = "idle"
    RECORDING = "recording"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass(frozen=True)
class RecordingResult:
    path: Path
    duration_s: float
    sample_rate: int
    # Why the recording ended before it was stopped; the audio before that is in the file.
    error: str | None = None
    # Blocks PortAudio had to drop because the writer fell behind (a gap, not a failure).
    overflows: int = 0


@dataclass(frozen=True)
class StreamSettings:
    device: int | None
    sample_rate: int
    channels: int
    block_frames: int
    callback: Callable[[np.ndarray, int, Any, Any], None]
    finished_callback: Callable[[], None]


class InputStream(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


class AudioWriter(Protocol):
    def write(self, data: np.ndarray) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def new_recording_path(folder: Path | None = None, now: datetime | None = None) -> Path:
    """A new, empty file `recording-YYYY-MM-DD_HH-MM-SS.flac` (with -2, -3 … when taken), readable by
    the user only: a recording is as private as the transcript."""
    if folder is None:
        from desktop.core.paths import recordings_dir

        folder = recordings_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    for n in range(1, 1000):
        path = folder / (f"recording-{stamp}.flac" if n == 1 else f"recording-{stamp}-{n}.flac")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise CaptureError(f"cannot create the recording in {folder}: {exc.strerror or exc}") from None
        os.close(fd)
        return path
    raise CaptureError(f"too many recordings named recording-{stamp} in {folder}")


def open_flac(path: Path, sample_rate: int) -> AudioWriter:
    import soundfile

    return soundfile.SoundFile(str(path), "w", samplerate=sample_rate, channels=1, format="FLAC", subtype="PCM_16")


def open_sounddevice_stream(settings: StreamSettings) -> InputStream:
    import sounddevice

    return sounddevice.InputStream(
        device=settings.device,
        samplerate=settings.sample_rate,
        channels=settings.channels,
        dtype="float32",
        blocksize=settings.block_frames,
        callback=settings.callback,
        finished_callback=settings.finished_callback,
    )


def negotiate_format(device: int | None, preferred_rate: int = PREFERRED_SAMPLE_RATE) -> tuple[int, int]:
    """(sample rate, channels) the device accepts: 16 kHz mono if it can, else its own rate, else its own
    channel count (mixed down to mono while recording)."""
    import sounddevice as sd

    try:
        info = sd.query_devices(device, "input")
    except (sd.PortAudioError, ValueError) as exc:
        raise CaptureError(f"no such audio input: {exc}") from None
    own_rate = int(info["default_samplerate"])
    max_channels = max(1, int(info["max_input_channels"]))
    for rate, channels in ((preferred_rate, 1), (own_rate, 1), (own_rate, min(2, max_channels))):
        try:
            sd.check_input_settings(device=device, samplerate=rate, channels=channels, dtype="float32")
        except (sd.PortAudioError, ValueError):
            continue
        return rate, channels
    raise CaptureError(f"the audio input {info['name']!r} accepts none of the formats Verbatim can record")


class Recorder:
    """Record one input to one FLAC file. `start`, `pause`, `resume`, `stop`, `level`, `take_audio` are
    for one controlling thread; the counters may be read from any thread."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        device: InputDevice | int | None = None,
        sample_rate: int | None = None,
        channels: int = 1,
        max_duration_s: float | None = None,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        stall_timeout_s: float = STALL_TIMEOUT_S,
        first_block_timeout_s: float = FIRST_BLOCK_TIMEOUT_S,
        tap_audio: bool = False,
        stream_factory: Callable[[StreamSettings], InputStream] | None = None,
        writer_factory: Callable[[Path, int], AudioWriter] = open_flac,
    ) -> None:
        self._path = path
        self.device_index = device.index if isinstance(device, InputDevice) else device
        self.device_name = device.name if isinstance(device, InputDevice) else None
        self._sample_rate = sample_rate
        self._channels = channels
        self.max_duration_s = max_duration_s
        self.flush_interval_s = flush_interval_s
        self.stall_timeout_s = stall_timeout_s
        self.first_block_timeout_s = first_block_timeout_s
        self._stream_factory = stream_factory
        self._writer_factory = writer_factory
        self._tap: deque[np.ndarray] | None = deque() if tap_audio else None
        self._tap_frames = 0

        self._lock = threading.Lock()
        self._blocks: queue.Queue[object] = queue.Queue()
        self._state = RecorderState.IDLE
        self._paused = threading.Event()
        self._stopping = threading.Event()
        self._ended = threading.Event()  # the writer will write no more: max duration reached, or failed
        self._error: str | None = None
        self._frames_written = 0
        self._overflows = 0
        self._rms = 0.0
        self._peak = 0.0
        self._stream: InputStream | None = None
        self._writer: AudioWriter | None = None
        self._thread: threading.Thread | None = None
        self._result: RecordingResult | None = None

    # -- state (any thread) -----------------------------------------------------------------------
    @property
    def path(self) -> Path:
        if self._path is None:
            raise RuntimeError("the recording has not started")
        return self._path

    @property
    def sample_rate(self) -> int:
        return self._sample_rate or PREFERRED_SAMPLE_RATE

    @property
    def state(self) -> RecorderState:
        return self._state

    @property
    def recorded_s(self) -> float:
        return self._frames_written / self.sample_rate

    @property
    def error(self) -> str | None:
        return self._error

    def wait_ended(self, timeout_s: float | None = None) -> bool:
        """True once the recording cannot go on by itself (max duration reached, or a failure)."""
        return self._ended.wait(timeout_s)

    def level(self) -> Level:
        """RMS of the newest block and the peak since the last call."""
        with self._lock:
            level = Level(rms=self._rms, peak=self._peak)
            self._peak = 0.0
        return level

    def take_audio(self) -> np.ndarray:
        """Mono float32 audio written since the last call (at `sample_rate`), for the live draft."""
        with self._lock:
            if not self._tap:
                return np.zeros(0, dtype=np.float32)
            blocks = list(self._tap)
            self._tap.clear()
            self._tap_frames = 0
        return np.concatenate(blocks)

    # -- control ----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._state != RecorderState.IDLE:
            raise RuntimeError("a Recorder records once")
        created = self._path is None
        if self._stream_factory is None:
            rate, channels = negotiate_format(self.device_index, self._sample_rate or PREFERRED_SAMPLE_RATE)
            self._sample_rate, self._channels = rate, channels
        else:
            self._sample_rate = self._sample_rate or PREFERRED_SAMPLE_RATE
        if self._path is None:
            self._path = new_recording_path()
        try:
            try:
                self._writer = self._writer_factory(self._path, self.sample_rate)
            except Exception as exc:  # noqa: BLE001 - libsndfile and OS errors alike become a message
                raise CaptureError(f"cannot write the recording {self._path}: {exc}") from None
            if not created:
                os.chmod(self._path, 0o600)
            settings = StreamSettings(
                device=self.device_index,
                sample_rate=self.sample_rate,
                channels=self._channels,
                block_frames=int(self.sample_rate * BLOCK_S),
                callback=self._on_block,
                finished_callback=self._on_stream_finished,
            )
            try:
                self._stream = (self._stream_factory or open_sounddevice_stream)(settings)
                self._thread = threading.Thread(target=self._write_loop, name="verbatim-recorder", daemon=True)
                self._state = RecorderState.RECORDING
                self._thread.start()
                self._stream.start()
            except Exception as exc:  # noqa: BLE001 - PortAudio errors differ by platform
                self._stopping.set()
                self._blocks.put(_END)
                if self._thread is not None and self._thread.is_alive():
                    self._thread.join()
                if self._stream is not None:
                    _quietly(self._stream.close)
                raise CaptureError(f"cannot open the audio input: {exc}") from None
        except CaptureError:
            self._state = RecorderState.STOPPED
            if self._writer is not None:
                _quietly(self._writer.close)
            if self._path is not None and self._frames_written == 0:
                _quietly(self._path.unlink)  # nothing was recorded: leave no empty file behind
            raise

    def pause(self) -> None:
        if self._state == RecorderState.RECORDING:
            self._paused.set()
            self._state = RecorderState.PAUSED

    def resume(self) -> None:
        if self._state == RecorderState.PAUSED:
            self._paused.clear()
            self._state = RecorderState.RECORDING

    def stop(self) -> RecordingResult:
        """Stop the stream, write what is left and close the file. Safe to call more than once."""
        if self._result is not None:
            return self._result
        if self._state == RecorderState.IDLE:
            raise RuntimeError("the recording has not started")
        self._stopping.set()
        if self._stream is not None:
            # stop() lets PortAudio hand over the blocks it still holds; close() frees the device.
            _quietly(self._stream.stop)
            _quietly(self._stream.close)
        self._blocks.put(_END)
        if self._thread is not None:
            self._thread.join()
        self._state = RecorderState.STOPPED
        self._result = RecordingResult(
            path=self.path,
            duration_s=self.recorded_s,
            sample_rate=self.sample_rate,
            error=self._error,
            overflows=self._overflows,
        )
        return self._result

    # -- PortAudio's thread -----------------------------------------------------------------------
    def _on_block(self, indata: np.ndarray, _frames: int, _time: Any, status: Any) -> None:
        if status and getattr(status, "input_overflow", False):
            self._overflows += 1
        self._blocks.put(indata.copy())

    def _on_stream_finished(self) -> None:
        if not self._stopping.is_set():
            self._fail("the audio input stopped unexpectedly (was the device unplugged?)")
            self._blocks.put(_END)

    # -- the writer thread ------------------------------------------------------------------------
    def _fail(self, reason: str) -> None:
        with self._lock:
            if self._error is None:
                self._error = reason
                log.warning("recording %s: %s", self._path, reason)
        self._ended.set()

    def _write_loop(self) -> None:
        writer = self._writer
        assert writer is not None
        max_frames = round(self.max_duration_s * self.sample_rate) if self.max_duration_s else None
        last_flush_s = last_block_s = time.monotonic()
        stall_timeout_s = max(self.stall_timeout_s, self.first_block_timeout_s)
        writing = True
        while True:
            try:
                item = self._blocks.get(timeout=0.1)
            except queue.Empty:
                item = None
            now_s = time.monotonic()
            if item is _END:
                break
            if item is None:
                if writing and not self._stopping.is_set() and now_s - last_block_s > stall_timeout_s:
                    self._fail(f"the audio input sent nothing for {stall_timeout_s:.0f} s "
                               "(was the device unplugged?)")
                    writing = False
                    self._close(writer)
            else:
                last_block_s = now_s
                stall_timeout_s = self.stall_timeout_s
                block = np.asarray(item, dtype=np.float32)
                mono = block.mean(axis=1) if block.ndim == 2 and block.shape[1] > 1 else block.reshape(-1)
                level = measure(mono)
                with self._lock:
                    self._rms = level.rms
                    self._peak = max(self._peak, level.peak)
                if writing and not self._paused.is_set():
                    if max_frames is not None:
                        mono = mono[: max(0, max_frames - self._frames_written)]
                    if mono.size:
                        try:
                            writer.write(mono)
                        except Exception as exc:  # noqa: BLE001 - disk full, file gone: keep what is written
                            self._fail(f"cannot write the recording: {_reason(exc)}")
                            writing = False
                            self._close(writer)
                            continue
                        self._frames_written += mono.size
                        self._tap_block(mono)
                    if max_frames is not None and self._frames_written >= max_frames:
                        writing = False
                        self._close(writer)
                        self._ended.set()
                        continue
            if writing and now_s - last_flush_s >= self.flush_interval_s:
                last_flush_s = now_s
                try:
                    writer.flush()
                except Exception as exc:  # noqa: BLE001
                    self._fail(f"cannot write the recording: {_reason(exc)}")
                    writing = False
                    self._close(writer)
        if writing:
            self._close(writer)

    def _close(self, writer: AudioWriter) -> None:
        try:
            writer.close()
        except Exception as exc:  # noqa: BLE001 - what was flushed before stays readable
            self._fail(f"cannot finish the recording file: {_reason(exc)}")

    def _tap_block(self, mono: np.ndarray) -> None:
        if self._tap is None:
            return
        with self._lock:
            self._tap.append(mono.copy())
            self._tap_frames += mono.size
            limit = int(TAP_LIMIT_S * self.sample_rate)
            while self._tap_frames > limit and len(self._tap) > 1:
                self._tap_frames -= self._tap.popleft().size


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).strip()
    # libsndfile words a full disk as a system error with errno's text inside.
    return text or type(exc).__name__


def _quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - cleaning up after a failure must not hide it
        log.debug("ignored error while cleaning up", exc_info=True)
