"""`verbatim record` and `verbatim devices` as a user runs them: a subprocess recording the default input
(PulseAudio, see tests/pulserig.py) while espeak-ng speech plays into it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from tests.pulserig import pulse_sink  # noqa: F401  (fixture)

pytestmark = pytest.mark.audio
REPO = Path(__file__).resolve().parents[2]


def verbatim(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "desktop", *args], cwd=kwargs.pop("cwd", REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ), **kwargs)


def wait_for_recording(process: subprocess.Popen) -> None:
    """Until the recorder says it started (its first line on stderr)."""
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "recording from" in line, line + process.stderr.read()


@pytest.mark.model
def test_record_nine_seconds_and_transcribe(pulse_sink, make_speech, use_session_model, tmp_path: Path):  # noqa: F811
    speech = make_speech("Please record this sentence about purple elephants.")
    process = verbatim("record", "--seconds", "9", "--transcribe", "-f", "txt", "-o", "out", cwd=tmp_path)
    wait_for_recording(process)
    player = pulse_sink.play(speech)
    stdout, stderr = process.communicate(timeout=300)
    player.wait(10)
    assert process.returncode == 0, stderr
    flac = Path(tmp_path / stdout.strip().splitlines()[0])
    assert flac.parent == tmp_path / "out" and flac.suffix == ".flac"
    assert soundfile.info(flac).duration == pytest.approx(9.0, abs=1.0)
    text = flac.with_suffix(".txt").read_text(encoding="utf-8").lower()
    assert "purple" in text and "elephant" in text, text


def test_ctrl_c_stops_an_open_ended_recording_and_keeps_the_file(pulse_sink, make_speech, tmp_path: Path):  # noqa: F811
    process = verbatim("record", "-o", str(tmp_path))
    wait_for_recording(process)
    player = pulse_sink.play(make_speech("Stop me with control C."))
    player.wait(20)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    flac = Path(stdout.strip())
    assert flac.parent == tmp_path
    info = soundfile.info(flac)  # closed properly: libsndfile knows its length
    assert info.duration > 1.0
    assert "Traceback" not in stderr


def test_devices_lists_the_default_input():
    process = verbatim("devices")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].split()[:2] == ["INDEX", "NAME"]
    assert sum(line.startswith("*") for line in lines[1:]) == 1


def test_an_unknown_input_is_a_clear_error(tmp_path: Path):
    process = verbatim("record", "--input", "no such microphone", "-o", str(tmp_path))
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "no audio input named 'no such microphone'" in stderr
    assert list(tmp_path.iterdir()) == []  # no empty file left
