"""Real playback: the Player plays espeak-ng speech through sounddevice's default output, which on the test
rig is PulseAudio's null sink `vsink` (DESIGN.md, "Test rigs"). `parec` records the sink's monitor at the
same time, and the recording must contain the source: found by cross-correlation, not just "not silent",
because other tests may play into the same shared sink at the same moment."""

from __future__ import annotations

import shutil
import subprocess
import threading

import numpy as np
import pytest

from desktop.capture.playback import LISTENING_RATE, decode_for_listening
from desktop.workers.player import Player

pytestmark = pytest.mark.audio
SINK_MONITOR = "vsink.monitor"


def pulse_reachable() -> str | None:
    """None when a PulseAudio server with the null sink answers; otherwise why not."""
    if shutil.which("pactl") is None or shutil.which("parec") is None:
        return "pactl/parec are not installed (pulseaudio-utils)"
    info = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=10)
    if info.returncode != 0:
        return f"no PulseAudio server is reachable ({info.stderr.strip() or 'pactl info failed'})"
    sources = subprocess.run(["pactl", "list", "short", "sources"], capture_output=True, text=True, timeout=10)
    if SINK_MONITOR not in sources.stdout:
        pytest.fail(f"PulseAudio runs but has no {SINK_MONITOR}: load module-null-sink sink_name=vsink (DESIGN.md)")
    return None


class Recorder:
    """parec on the sink's monitor, as float32 mono at the listening rate, read on a thread."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            ["parec", f"--device={SINK_MONITOR}", "--format=float32le", f"--rate={LISTENING_RATE}",
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


def test_speech_played_reaches_the_pulseaudio_sink(qtbot, make_speech):
    reason = pulse_reachable()
    if reason:
        pytest.skip(reason)
    clip = make_speech("Playback through the null sink reaches the monitor, word for word.")
    source = decode_for_listening(clip).astype(np.float64) / 32768
    recorder = Recorder()
    try:
        qtbot.waitUntil(lambda: recorder.frames > LISTENING_RATE // 10, timeout=10_000)  # parec is recording
        player = Player()
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
        player.close()
    finally:
        recording = recorder.stop()
    offset, correlation = best_alignment(recording, source)
    heard = recording[offset : offset + len(source)]
    gain = np.sqrt(np.mean(heard**2) / np.mean(source**2))
    print(f"offset {offset / LISTENING_RATE:.3f} s into the recording, correlation {correlation:.3f}, gain {gain:.2f}")
    assert correlation > 0.6, f"the sink did not carry the speech played (correlation {correlation:.2f})"
    assert 0.5 < gain < 2.0, f"the speech reached the sink at {gain:.2f}x its level"
