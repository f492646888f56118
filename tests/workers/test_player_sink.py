"""Real playback: the Player plays espeak-ng speech through sounddevice's default output (ALSA's `default`,
which the rig routes to PulseAudio; DESIGN.md, "Test rigs"), and `parec` records the sink's monitor at the
same time. The recording must contain the source, found by cross-correlation, not just "not silent".

The rig's `vsink` is shared with other tests that play and record at the same moment (and may switch the
default sink), so the test loads a null sink of its own and points this process's PulseAudio clients at it
with PULSE_SINK; where modules cannot be loaded it uses `vsink` and tolerates interference by retrying.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

import numpy as np
import pytest

from desktop.capture.playback import LISTENING_RATE
from desktop.engine.audio import decode_for_listening
from desktop.workers.player import Player

pytestmark = pytest.mark.audio
SHARED_SINK = "vsink"


def pulse_reachable() -> str | None:
    """None when a PulseAudio server answers; otherwise why not."""
    if shutil.which("pactl") is None or shutil.which("parec") is None:
        return "pactl/parec are not installed (pulseaudio-utils)"
    info = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=10)
    if info.returncode != 0:
        return f"no PulseAudio server is reachable ({info.stderr.strip() or 'pactl info failed'})"
    return None


@pytest.fixture
def sink(monkeypatch):
    """The name of a null sink this test alone plays into (the shared vsink when none can be loaded)."""
    reason = pulse_reachable()
    if reason:
        pytest.skip(reason)
    name = f"verbatim_playback_{os.getpid()}"
    loaded = subprocess.run(["pactl", "load-module", "module-null-sink", f"sink_name={name}"],
                            capture_output=True, text=True, timeout=10)
    if loaded.returncode != 0:
        sinks = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True, timeout=10)
        if SHARED_SINK not in sinks.stdout.split():
            pytest.fail(f"PulseAudio runs but has no {SHARED_SINK}: load module-null-sink (DESIGN.md)")
        name = SHARED_SINK
    monkeypatch.setenv("PULSE_SINK", name)  # libpulse (and so ALSA's pulse plugin) plays there by default
    yield name
    if loaded.returncode == 0:
        subprocess.run(["pactl", "unload-module", loaded.stdout.strip()], capture_output=True, timeout=10)


class Recorder:
    """parec on the sink's monitor, as float32 mono at the listening rate, read on a thread."""

    def __init__(self, sink: str) -> None:
        self.process = subprocess.Popen(
            ["parec", f"--device={sink}.monitor", "--format=float32le", f"--rate={LISTENING_RATE}",
             "--channels=1", "--raw", "--latency-msec=20"],
            stdout=subprocess.PIPE,
        )
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while chunk := self.process.stdout.read1(8192):
            with self._lock:
                self._chunks.append(chunk)

    @property
    def frames(self) -> int:
        with self._lock:
            return sum(map(len, self._chunks)) // 4

    def stop(self) -> np.ndarray:
        self.process.terminate()
        self.process.wait(10)
        self._thread.join(10)
        with self._lock:
            data = b"".join(self._chunks)
        return np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4").astype(np.float64)


def best_alignment(recording: np.ndarray, source: np.ndarray) -> tuple[int, float]:
    """(offset of the source in the recording, normalised correlation there)."""
    size = 1 << int(len(recording) + len(source)).bit_length()
    spectrum = np.fft.rfft(recording, size) * np.conj(np.fft.rfft(source, size))
    raw = np.fft.irfft(spectrum, size)[: len(recording) - len(source) + 1]
    offset = int(np.argmax(raw))
    heard = recording[offset : offset + len(source)]
    correlation = float(np.dot(heard, source) / (np.linalg.norm(heard) * np.linalg.norm(source) + 1e-12))
    return offset, correlation


def play_and_record(qtbot, sink: str, clip, source: np.ndarray) -> tuple[float, float]:
    """Play the clip through the real output while parec records the monitor: (correlation, gain)."""
    recorder = Recorder(sink)
    player = Player()
    try:
        qtbot.waitUntil(lambda: recorder.frames > LISTENING_RATE // 10, timeout=10_000)  # parec is recording
        player.set_source(clip)
        with qtbot.waitSignal(player.state_changed, timeout=10_000, check_params_cb=lambda s: s == "playing"):
            player.play()
        started_at = recorder.frames
        duration_s = len(source) / LISTENING_RATE
        with qtbot.waitSignal(player.state_changed, timeout=int(duration_s * 1000) + 10_000,
                              check_params_cb=lambda s: s == "stopped"):
            pass
        assert player.position_s == pytest.approx(duration_s, abs=0.01)
        # Keep recording until the sink's latency has surely passed after the last sample.
        qtbot.waitUntil(lambda: recorder.frames > started_at + len(source) + LISTENING_RATE // 2, timeout=10_000)
    finally:
        player.close()
        recording = recorder.stop()
    offset, correlation = best_alignment(recording, source)
    heard = recording[offset : offset + len(source)]
    gain = float(np.sqrt(np.mean(heard**2) / np.mean(source**2)))
    return correlation, gain


def test_speech_played_reaches_the_pulseaudio_sink(qtbot, sink, make_speech):
    clip = make_speech("Playback through the null sink reaches the monitor, word for word.")
    source = decode_for_listening(clip, LISTENING_RATE).astype(np.float64) / 32768
    # On the shared sink someone else's sound mixed into ours lowers the correlation. That is transient, so
    # a low score earns another try; a playback that never reaches the sink fails all three.
    attempts = []
    for _ in range(3):
        correlation, gain = play_and_record(qtbot, sink, clip, source)
        attempts.append(f"correlation {correlation:.2f}, gain {gain:.2f}")
        if correlation > 0.9 and 0.7 < gain < 1.4:
            break
    else:
        pytest.fail(f"the speech played did not reach the sink intact: {'; '.join(attempts)}")
    print(f"{sink}: " + "; ".join(attempts))
