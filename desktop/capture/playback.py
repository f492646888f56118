"""Listening to a source: a mono buffer played through sounddevice from any position, with pause, seek, a
speed factor that keeps the pitch, and a loop range. No Qt: the Qt glue (desktop.workers.player) polls
`position_s` and `state`.

The PortAudio callback renders every block from the buffer under a lock, so seek, speed and loop changes
take effect at the next block (a few tens of milliseconds) and the position readout is always consistent
with what was last handed to the output. At speeds other than 1x the audio is time-stretched with WSOLA
(waveform-similarity overlap-add): 30 ms Hann frames are taken from the source every `speed` x 15 ms, each
shifted by up to 8 ms so that it lines up with the natural continuation of the previous frame, and
overlap-added every 15 ms. Voices keep their pitch, unlike plain resampling, at the cost of an occasional
soft echo on fast, dense speech. At 1x the samples are copied unchanged.

The position is that of the sample being heard: the one handed to PortAudio the stream's output latency
ago (the history of the last latency's worth of positions is kept, so this holds across loop wraps and
speed changes). A pause drops what was buffered but not heard, and resumes from what was heard last.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import Enum
from typing import Protocol

import numpy as np

# Twice Whisper's 16 kHz: sibilants (4-12 kHz) stay crisp for the listener, while int16 storage keeps an
# hour of audio at 173 MB (float32 at 16 kHz would take 230 MB and sound muffled).
LISTENING_RATE = 24000
MIN_SPEED = 0.5
MAX_SPEED = 2.0
# Output buffering. PortAudio's "high" default (35 ms through PulseAudio) underruns, audibly, whenever the
# machine is busy (transcribing, say); a listener does not notice 150 ms, and position_s subtracts it.
OUTPUT_LATENCY_S = 0.15

_FRAME_S = 0.030  # WSOLA frame; 2-3 pitch periods of a low voice
_TOLERANCE_S = 0.008  # how far a frame may move to line up; at least half the longest pitch period


class PlaybackError(Exception):
    """Audio cannot be played; the message is one short sentence for the user."""


class PlaybackState(str, Enum):
    STOPPED = "stopped"
    PLAYING = "playing"
    PAUSED = "paused"


class OutputStream(Protocol):
    """What Playback needs of an output stream (sounddevice.OutputStream has all of it)."""

    def start(self) -> None: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...


# (sample_rate, fill, finished) -> a stream that is not started yet. The stream calls fill(block) from its
# own thread with a float32 array to fill in place; fill returns False once the audio has ended, and the
# stream then plays what it has and calls finished() (as it also does after abort()).
StreamFactory = Callable[[int, Callable[[np.ndarray], bool], Callable[[], None]], OutputStream]


def sounddevice_stream(
    sample_rate: int,
    fill: Callable[[np.ndarray], bool],
    finished: Callable[[], None],
    device: int | str | None = None,
    latency_s: float = OUTPUT_LATENCY_S,
) -> OutputStream:
    """A mono float32 sounddevice.OutputStream on `device` (None: the default output)."""
    sd = _sounddevice()

    def callback(outdata: np.ndarray, _frames: int, _time: object, _status: object) -> None:
        # An underflow (status.output_underflow) is an audible gap already past; playing on is the best answer.
        if not fill(outdata[:, 0]):
            raise sd.CallbackStop

    check_output(sample_rate, device)
    try:
        return sd.OutputStream(samplerate=sample_rate, channels=1, dtype="float32", device=device,
                               callback=callback, finished_callback=finished, latency=latency_s)
    except sd.PortAudioError as exc:
        raise PlaybackError(f"cannot open the audio output ({_portaudio_reason(exc)})") from None


def check_output(sample_rate: int, device: int | str | None = None) -> None:
    """PlaybackError when there is no output device, or it cannot play mono float32 at sample_rate."""
    sd = _sounddevice()
    try:
        sd.query_devices(device, kind="output")
    except (sd.PortAudioError, ValueError):
        raise PlaybackError("no audio output device was found") from None
    try:
        sd.check_output_settings(device=device, channels=1, dtype="float32", samplerate=sample_rate)
    except (sd.PortAudioError, ValueError) as exc:
        raise PlaybackError(f"the audio output cannot play {sample_rate} Hz ({_portaudio_reason(exc)})") from None


def output_rate(preferred: int = LISTENING_RATE, device: int | str | None = None) -> int:
    """`preferred` when the output takes it (PulseAudio, ALSA's default, CoreAudio and MME resample),
    otherwise the device's own rate; PlaybackError when there is no output at all."""
    try:
        check_output(preferred, device)
        return preferred
    except PlaybackError:
        sd = _sounddevice()
        try:
            info = sd.query_devices(device, kind="output")
        except (sd.PortAudioError, ValueError):
            raise PlaybackError("no audio output device was found") from None
        return int(info["default_samplerate"])


class Playback:
    """Plays `samples` (mono; int16 or float32 in [-1, 1]) at `sample_rate`. Thread-safe: control calls
    come from one thread, the stream's callback runs on another. The stream is opened at the first play()
    and kept until close()."""

    def __init__(self, samples: np.ndarray, sample_rate: int, stream_factory: StreamFactory | None = None) -> None:
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise ValueError("Playback takes mono samples (a 1-D array)")
        if samples.dtype not in (np.int16, np.float32):
            samples = samples.astype(np.float32)
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        self._samples = samples
        self._scale = 1.0 / 32768.0 if samples.dtype == np.int16 else 1.0
        self.sample_rate = int(sample_rate)
        self._factory: StreamFactory = stream_factory or sounddevice_stream
        self._stream: OutputStream | None = None
        self._lock = threading.Lock()
        self._state = PlaybackState.STOPPED
        self._speed = 1.0
        self._loop: tuple[int, int] | None = None  # [start, end) in samples
        self._ended = False  # fill() ran out of audio; the stream is finishing
        self._aborting = False  # a stop we asked for, not a failure
        self._error: str | None = None
        self._closed = False
        # Rendered, not yet delivered: samples and, for each, its position in the source (in samples).
        self._pending = np.zeros(0, dtype=np.float32)
        self._pending_pos = np.zeros(0, dtype=np.float64)
        self._stretch = _Wsola(self.sample_rate)
        self._cursor = 0.0  # source position (samples) of the next sample to render
        self._latency_frames = 0  # the stream's output latency: delivered samples not heard yet
        self._recent_pos = np.zeros(0, dtype=np.float64)  # positions of the last _latency_frames delivered

    # -- readouts ----------------------------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        return len(self._samples) / self.sample_rate

    @property
    def position_s(self) -> float:
        """Where the listener is, in source seconds."""
        with self._lock:
            return self._heard_position() / self.sample_rate

    @property
    def state(self) -> PlaybackState:
        with self._lock:
            return self._state

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def loop_s(self) -> tuple[float, float] | None:
        loop = self._loop
        return None if loop is None else (loop[0] / self.sample_rate, loop[1] / self.sample_rate)

    def take_error(self) -> str | None:
        """The last failure of the running stream (for example a device that went away), once."""
        with self._lock:
            error, self._error = self._error, None
            return error

    # -- control -----------------------------------------------------------------------------------
    def play(self, from_s: float | None = None) -> None:
        """Play from `from_s` (the loop's start when outside the loop; default: where it is, or from the
        start after the end)."""
        self._check_open()
        with self._lock:
            if from_s is not None:
                start = self._to_sample(from_s)
                in_loop = self._loop is None or self._loop[0] <= start < self._loop[1]
                self._seek(start if in_loop else self._loop[0])  # type: ignore[index]
            elif self._state == PlaybackState.STOPPED and self._position() >= self._limit():
                self._seek(self._loop[0] if self._loop else 0)
            if self._state == PlaybackState.PLAYING:
                return
            self._ended = False
            self._aborting = False
        if self._stream is None:
            self._stream = self._factory(self.sample_rate, self._fill, self._finished)
            latency_s = getattr(self._stream, "latency", 0.0)
            self._latency_frames = int(round(float(latency_s or 0.0) * self.sample_rate))
        else:
            # A stream that ended by itself is inactive but not "stopped", and PortAudio would ignore start().
            self._stream.abort()
        try:
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudio errors are not one type; the user gets a sentence
            raise PlaybackError(f"the audio output did not start ({exc})") from None
        with self._lock:
            self._state = PlaybackState.PLAYING

    def pause(self) -> None:
        self._halt(PlaybackState.PAUSED)

    def stop(self) -> None:
        """Stop and go back to the start (of the loop, when one is set)."""
        self._halt(PlaybackState.STOPPED)
        with self._lock:
            self._seek(self._loop[0] if self._loop else 0)

    def seek(self, position_s: float) -> None:
        with self._lock:
            self._seek(self._to_sample(position_s))

    def set_speed(self, speed: float) -> None:
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ValueError(f"speed must be between {MIN_SPEED}x and {MAX_SPEED}x")
        with self._lock:
            if speed == self._speed:
                return
            position = self._position()
            self._speed = float(speed)
            self._seek(position, keep_heard=True)  # re-render what was pending at the new speed

    def set_loop(self, start_s: float, end_s: float) -> None:
        """Loop [start_s, end_s): playback wraps to start_s at end_s, and jumps into the range if outside."""
        start, end = self._to_sample(start_s), self._to_sample(end_s)
        if end <= start:
            raise ValueError("a loop must end after it starts, inside the audio")
        with self._lock:
            self._loop = (start, end)
            position = self._position()
            if not start <= position < end:
                self._seek(start)
            else:
                self._seek(position, keep_heard=True)

    def clear_loop(self) -> None:
        with self._lock:
            self._loop = None
            self._seek(self._position(), keep_heard=True)

    def close(self) -> None:
        if self._closed:
            return
        self._halt(PlaybackState.STOPPED)
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a broken stream must not stop the caller's cleanup
                pass

    # -- internals (the lock is held by the callers of the underscore helpers below) ----------------
    def _check_open(self) -> None:
        if self._closed:
            raise PlaybackError("this player was closed")

    def _halt(self, state: PlaybackState) -> None:
        with self._lock:
            was_playing = self._state == PlaybackState.PLAYING
            self._aborting = True
            self._state = state if (was_playing or state == PlaybackState.STOPPED) else self._state
            heard = self._heard_position()
        if was_playing and self._stream is not None:
            try:
                self._stream.abort()  # at once, not after the queued buffers (stop() would wait for them)
            except Exception:  # noqa: BLE001 - a stream that already failed is stopped anyway
                pass
        if was_playing and not self._ended:
            with self._lock:
                self._seek(heard)  # abort() dropped what was buffered: resume from what was heard

    def _to_sample(self, seconds: float) -> int:
        return int(round(min(max(float(seconds), 0.0), self.duration_s) * self.sample_rate))

    def _limit(self) -> int:
        return self._loop[1] if self._loop else len(self._samples)

    def _position(self) -> float:
        if len(self._pending_pos):
            return float(self._pending_pos[0])
        if self._loop is not None and self._cursor >= self._loop[1]:
            return float(self._loop[0])  # a block ended exactly at the loop's end: the next sample wraps
        return self._cursor

    def _heard_position(self) -> float:
        return float(self._recent_pos[0]) if len(self._recent_pos) else self._position()

    def _seek(self, sample: float, keep_heard: bool = False) -> None:
        if not keep_heard:
            self._recent_pos = self._recent_pos[:0]
        self._pending = self._pending[:0]
        self._pending_pos = self._pending_pos[:0]
        self._cursor = float(sample)
        self._stretch.reset()

    def _read(self, start: int, stop: int) -> np.ndarray:
        return self._samples[start:stop].astype(np.float32) * np.float32(self._scale)

    def _render(self, wanted: int) -> bool:
        """Append at least `wanted` samples to the pending ones; False once there is no more audio."""
        pieces: list[np.ndarray] = [self._pending]
        positions: list[np.ndarray] = [self._pending_pos]
        have = len(self._pending)
        while have < wanted:
            limit = self._limit()
            lower = self._loop[0] if self._loop else 0
            if self._speed == 1.0:
                start = int(self._cursor)
                if start >= limit:
                    if self._loop is None:
                        break
                    self._cursor = float(lower)
                    continue
                stop = min(limit, start + wanted - have)
                pieces.append(self._read(start, stop))
                positions.append(np.arange(start, stop, dtype=np.float64))
                self._cursor = float(stop)
                have += stop - start
            else:
                hop = self._stretch.hop(self._samples, self._scale, self._cursor, self._speed, lower, limit)
                if hop is None:  # the range is used up; the last frame's tail fades out (or into the loop)
                    if self._loop is None:
                        tail = self._stretch.flush()
                        pieces.append(tail)
                        positions.append(np.full(len(tail), float(limit)))
                        have += len(tail)
                        self._cursor = float(limit)
                        break
                    self._stretch.restart()  # overlap-add the tail onto the loop's start: a crossfade
                    self._cursor = float(lower)
                    continue
                samples = hop
                pieces.append(samples)
                positions.append(self._cursor + np.arange(len(samples)) * self._speed)
                self._cursor += len(samples) * self._speed
                have += len(samples)
        self._pending = np.concatenate(pieces) if len(pieces) > 1 else self._pending
        self._pending_pos = np.concatenate(positions) if len(positions) > 1 else self._pending_pos
        return have >= wanted

    def _fill(self, out: np.ndarray) -> bool:
        """The stream's callback: fill `out` in place; False when the audio ended inside this block."""
        frames = len(out)
        with self._lock:
            if self._state != PlaybackState.PLAYING or self._ended:
                out[:] = 0
                return not self._ended
            complete = self._render(frames)
            take = min(frames, len(self._pending))
            out[:take] = self._pending[:take]
            out[take:] = 0
            delivered = self._pending_pos[:take]
            self._pending = self._pending[take:]
            self._pending_pos = self._pending_pos[take:]
            if not complete:
                self._ended = True
                self._cursor = float(self._limit())
            if self._latency_frames:
                if take < frames:  # silence after the end: the listener reaches the end once it is heard
                    delivered = np.concatenate([delivered, np.full(frames - take, self._cursor)])
                recent = np.concatenate([self._recent_pos, delivered])
                self._recent_pos = recent[-self._latency_frames :]
            return complete

    def _finished(self) -> None:
        """The stream went inactive: after the end of the audio, after abort(), or because it failed."""
        with self._lock:
            if self._ended:
                self._state = PlaybackState.STOPPED
                self._recent_pos = self._recent_pos[:0]
            elif not self._aborting and self._state == PlaybackState.PLAYING:
                self._state = PlaybackState.PAUSED
                self._error = "the audio output stopped unexpectedly"


class _Wsola:
    """Streaming WSOLA time-stretch state: the tail of the last frame and where that frame was taken."""

    def __init__(self, sample_rate: int) -> None:
        self.hop_size = max(8, int(round(_FRAME_S * sample_rate / 2)))
        self.frame_size = 2 * self.hop_size
        self.tolerance = max(1, int(round(_TOLERANCE_S * sample_rate)))
        # Periodic Hann: copies shifted by half its length sum to exactly 1 (no amplitude ripple).
        n = np.arange(self.frame_size)
        self.window = (np.sin(np.pi * n / self.frame_size) ** 2).astype(np.float32)
        self.reset()

    def reset(self) -> None:
        self.tail = np.zeros(self.hop_size, dtype=np.float32)
        self.previous_start: int | None = None

    def restart(self) -> None:
        """Start afresh at a new place but keep the tail, so the old sound crossfades into the new."""
        self.previous_start = None

    def flush(self) -> np.ndarray:
        tail, self.tail = self.tail, np.zeros(self.hop_size, dtype=np.float32)
        self.previous_start = None
        return tail

    def hop(self, samples: np.ndarray, scale: float, cursor: float, speed: float, lower: int, limit: int
            ) -> np.ndarray | None:
        """The next hop_size output samples for the nominal source position `cursor`; None when no whole
        frame fits before `limit` any more."""
        frame, hop = self.frame_size, self.hop_size
        nominal = int(round(cursor))
        if nominal + frame > limit:
            return None
        start = nominal
        previous = self.previous_start
        if previous is not None and previous + hop + frame <= len(samples):
            lo = max(lower, nominal - self.tolerance)
            hi = min(limit - frame, nominal + self.tolerance)
            if hi > lo:
                template = samples[previous + hop : previous + hop + frame].astype(np.float32)
                region = samples[lo : hi + frame].astype(np.float32)
                start = lo + int(np.argmax(_cross_correlation(region, template)))
        chunk = samples[start : start + frame].astype(np.float32) * np.float32(scale) * self.window
        out = self.tail + chunk[:hop]
        self.tail = chunk[hop:].copy()
        self.previous_start = start
        return out


def _cross_correlation(region: np.ndarray, template: np.ndarray) -> np.ndarray:
    """c[j] = sum(region[j:j+len(template)] * template) for every j that fits, through the FFT."""
    lags = len(region) - len(template) + 1
    size = 1 << int(len(region) + len(template) - 1).bit_length()
    spectrum = np.fft.rfft(region, size) * np.conj(np.fft.rfft(template, size))
    return np.fft.irfft(spectrum, size)[:lags]


def _sounddevice():
    try:
        import sounddevice
    except OSError:  # the PortAudio library itself is missing
        raise PlaybackError("no audio output: the PortAudio library is not installed") from None
    return sounddevice


def _portaudio_reason(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else str(exc)
