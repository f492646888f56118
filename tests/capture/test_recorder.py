"""The capture Recorder: FLAC written as it records, levels, pause, and every way a recording can end
early (device gone, stream error, silence from the device, full disk) keeping what was recorded. Fake
streams drive the error paths; the real path goes through PulseAudio (tests/pulserig.py)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from desktop.capture.devices import CaptureError, list_inputs, resolve_input
from desktop.capture.recorder import Recorder, RecorderState, StreamSettings, new_recording_path
from desktop.engine.audio import decode
from tests.pulserig import pulse_sink  # noqa: F401  (fixture)

RATE = 16_000


class FakeStream:
    """Calls the recorder's callback from its own thread with `blocks`, then does what `then` says:
    "hold" (wait for stop), "finish" (end as if the device vanished), "silent" (deliver nothing more)."""

    def __init__(self, settings: StreamSettings, blocks: list[np.ndarray], then: str = "hold",
                 gate: threading.Event | None = None) -> None:
        self.settings = settings
        self.gate = gate
        self.blocks = blocks
        self.then = then
        self.stopped = threading.Event()
        self.delivered = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        if self.gate is not None:
            self.gate.wait(30)
        for block in self.blocks:
            self.settings.callback(block.reshape(-1, 1), block.size, None, None)
        self.delivered.set()
        if self.then == "finish":
            self.settings.finished_callback()
        else:
            self.stopped.wait(30)

    def stop(self) -> None:
        self.stopped.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.then == "hold":
            self.settings.finished_callback()

    def close(self) -> None:
        pass


def tone(seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def blocks_of(audio: np.ndarray, size: int = 800) -> list[np.ndarray]:
    return [audio[i : i + size] for i in range(0, audio.size, size)]


def fake(blocks: list[np.ndarray], then: str = "hold",
         gate: threading.Event | None = None) -> tuple[list[FakeStream], object]:
    made: list[FakeStream] = []

    def factory(settings: StreamSettings) -> FakeStream:
        made.append(FakeStream(settings, blocks, then, gate))
        return made[-1]

    return made, factory


def test_a_recording_is_a_private_flac_with_every_sample(tmp_path: Path):
    audio = tone(2.0)
    made, factory = fake(blocks_of(audio))
    recorder = Recorder(new_recording_path(tmp_path), stream_factory=factory)
    recorder.start()
    assert made[0].delivered.wait(10)
    result = recorder.stop()
    assert result.error is None
    assert result.duration_s == pytest.approx(2.0)
    assert stat.S_IMODE(os.stat(result.path).st_mode) == 0o600
    assert result.path.name.startswith("recording-") and result.path.suffix == ".flac"
    written, rate = soundfile.read(result.path, dtype="float32")
    assert rate == RATE
    np.testing.assert_allclose(written, audio, atol=1e-4)  # 16-bit PCM


def test_recording_names_never_collide(tmp_path: Path):
    first, second = new_recording_path(tmp_path), new_recording_path(tmp_path)
    assert first != second and first.exists() and second.exists()


def test_what_was_flushed_survives_a_crash(tmp_path: Path):
    """A process killed mid-recording leaves a FLAC that the engine's decoder reads, losing < 1 s."""
    code = f"""
import os, threading, numpy as np
from pathlib import Path
from tests.capture.test_recorder import fake, blocks_of, tone
from desktop.capture.recorder import Recorder
made, factory = fake(blocks_of(tone(3.0)))
recorder = Recorder(Path({str(tmp_path / 'crash.flac')!r}), stream_factory=factory, flush_interval_s=0.2)
recorder.start()
made[0].delivered.wait(10)
while recorder.recorded_s < 3.0:
    threading.Event().wait(0.05)
threading.Event().wait(0.5)  # one flush interval and then some
os._exit(9)  # no stop(), no close: as if the power went
"""
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], check=False,
                   env={**os.environ}, timeout=60)
    samples = decode(tmp_path / "crash.flac")
    assert 2.0 < samples.size / RATE <= 3.0


def test_levels_and_pause(tmp_path: Path):
    loud, quiet = tone(1.0, 0.5), np.zeros(RATE, dtype=np.float32)
    gate = threading.Event()  # the blocks come once the recording is paused
    made, factory = fake(blocks_of(np.concatenate([loud, quiet])), gate=gate)
    recorder = Recorder(tmp_path / "a.flac", stream_factory=factory)
    recorder.pause()  # not started yet: nothing happens
    assert recorder.state == RecorderState.IDLE
    recorder.start()
    recorder.pause()
    assert recorder.state == RecorderState.PAUSED
    gate.set()
    assert made[0].delivered.wait(10)
    result = recorder.stop()  # writes what is queued first
    assert result.duration_s == 0.0  # everything arrived while paused
    assert recorder.level().peak == pytest.approx(0.5, abs=0.01)  # but the meter saw it
    assert recorder.level().peak == 0.0  # the peak is since the last read


def test_resume_records_again(tmp_path: Path):
    made, factory = fake(blocks_of(tone(1.0)))
    recorder = Recorder(tmp_path / "a.flac", stream_factory=factory)
    recorder.start()
    recorder.pause()
    recorder.resume()
    assert recorder.state == RecorderState.RECORDING
    assert made[0].delivered.wait(10)
    assert recorder.stop().duration_s == pytest.approx(1.0)


def test_max_duration_stops_at_exactly_that_much_audio(tmp_path: Path):
    made, factory = fake(blocks_of(tone(3.0), size=700))
    recorder = Recorder(tmp_path / "a.flac", stream_factory=factory, max_duration_s=1.5)
    recorder.start()
    assert recorder.wait_ended(10)
    result = recorder.stop()
    assert result.error is None
    assert soundfile.info(result.path).frames == int(1.5 * RATE)


def test_device_gone_mid_recording_keeps_the_audio(tmp_path: Path):
    made, factory = fake(blocks_of(tone(1.0)), then="finish")
    recorder = Recorder(tmp_path / "a.flac", stream_factory=factory)
    recorder.start()
    assert recorder.wait_ended(10)
    result = recorder.stop()
    assert "unplugged" in (result.error or "")
    assert soundfile.info(result.path).frames == RATE


def test_a_device_that_goes_silent_ends_the_recording(tmp_path: Path):
    made, factory = fake(blocks_of(tone(0.5)), then="silent")
    recorder = Recorder(tmp_path / "a.flac", stream_factory=factory, stall_timeout_s=0.3, first_block_timeout_s=0.3)
    recorder.start()
    assert recorder.wait_ended(10)
    result = recorder.stop()
    assert "sent nothing" in (result.error or "")
    assert soundfile.info(result.path).frames == RATE // 2


def test_a_stream_that_cannot_open_leaves_no_file(tmp_path: Path):
    def broken(_settings: StreamSettings):
        raise RuntimeError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")

    path = new_recording_path(tmp_path)
    with pytest.raises(CaptureError, match="Device unavailable"):
        Recorder(path, stream_factory=broken).start()
    assert not path.exists()


class FailingWriter:
    def __init__(self, path: Path, rate: int) -> None:
        self.inner = soundfile.SoundFile(str(path), "w", samplerate=rate, channels=1, format="FLAC")
        self.frames = 0

    def write(self, data: np.ndarray) -> None:
        if self.frames >= RATE:
            raise OSError(28, "No space left on device")
        self.inner.write(data)
        self.frames += data.size

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


def test_a_write_error_stops_with_a_reason_and_keeps_the_audio(tmp_path: Path):
    made, factory = fake(blocks_of(tone(2.0)))
    recorder = Recorder(tmp_path / "a.flac", stream_factory=factory, writer_factory=FailingWriter)
    recorder.start()
    assert recorder.wait_ended(10)
    result = recorder.stop()
    assert result.error == "cannot write the recording: no space left on device"
    assert soundfile.info(result.path).frames == RATE


@pytest.fixture
def tiny_disk(tmp_path: Path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)],
                                          capture_output=True).returncode != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_stops_the_recording_and_keeps_what_fit(tiny_disk: Path):
    made, factory = fake(blocks_of(np.random.default_rng(0).uniform(-0.5, 0.5, 10 * RATE).astype(np.float32)))
    recorder = Recorder(tiny_disk / "a.flac", stream_factory=factory, flush_interval_s=0.05)
    recorder.start()
    assert recorder.wait_ended(20)
    result = recorder.stop()
    assert result.error is not None and result.error.startswith("cannot")
    assert 0 < decode(result.path).size < 10 * RATE


# -- the real path: PortAudio's ALSA device → PulseAudio null sink ---------------------------------
@pytest.mark.audio
def test_inputs_are_listed_with_a_default():
    inputs = list_inputs()
    assert inputs and sum(d.is_default for d in inputs) == 1
    assert resolve_input(None).is_default
    assert resolve_input(str(inputs[0].index)) == inputs[0]
    with pytest.raises(CaptureError, match="no audio input named"):
        resolve_input("no such microphone")


@pytest.mark.audio
def test_recording_speech_through_pulseaudio(pulse_sink, make_speech, tmp_path: Path):  # noqa: F811
    speech = make_speech("Testing the microphone path, one two three.")
    recorder = Recorder(tmp_path / "mic.flac", tap_audio=True, max_duration_s=5.0)
    recorder.start()
    player = pulse_sink.play(speech)
    peaks = []
    while not recorder.wait_ended(0.05):
        peaks.append(recorder.level().peak)
    player.wait(10)
    result = recorder.stop()
    assert result.error is None
    assert soundfile.info(result.path).duration == pytest.approx(5.0, abs=0.01)
    assert max(peaks) > 0.1  # the meter saw the speech
    tapped = recorder.take_audio()
    assert tapped.size == int(5.0 * result.sample_rate)
