"""A recording made with `verbatim record` is in the library from its first second: killed with SIGKILL in
the middle, it is transcribed by the window's next start, unfinished FLAC and all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_crash_resume import read_library, start_app
from tests.pulserig import pulse_sink  # noqa: F401  (fixture)

pytestmark = [pytest.mark.model, pytest.mark.audio]
REPO = Path(__file__).resolve().parents[2]


def library_json() -> list[dict]:
    listed = subprocess.run([sys.executable, "-m", "desktop", "library", "list", "--json"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def test_sigkill_during_verbatim_record_then_the_window_transcribes_the_recording(
        qtbot, pulse_sink, make_speech, use_session_model, verbatim_home, tmp_path):  # noqa: F811
    speech = make_speech("The recorder was killed but the lighthouse keeper kept talking.")
    recorder = subprocess.Popen([sys.executable, "-m", "desktop", "record", "-o", str(tmp_path)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert recorder.stderr is not None
        line = recorder.stderr.readline()
        assert "recording from" in line, line
        # Queued in the library while it records, but not a crash left-over: the recorder holds it.
        [job] = read_library(verbatim_home).values()
        assert job["state"] == "queued" and job["source"].endswith(".flac")
        player = pulse_sink.play(speech)
        player.wait(30)
        flac = Path(job["source"])
        qtbot.waitUntil(lambda: flac.exists() and flac.stat().st_size > 20_000, timeout=30_000)
    finally:
        recorder.send_signal(signal.SIGKILL)
        recorder.communicate(timeout=30)

    app = start_app([])
    try:
        qtbot.waitUntil(lambda: app.poll() is None and [j["state"] for j in read_library(verbatim_home).values()]
                        in (["done"], ["failed"]), timeout=180_000)
        app.send_signal(signal.SIGTERM)
        _out, log = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    [listed] = library_json()
    assert listed["state"] == "done", (listed, log)
    text = listed["text"].lower()
    assert "lighthouse" in text and "keeper" in text, text


def test_record_and_transcribe_saves_the_transcript_to_the_library(
        pulse_sink, make_speech, use_session_model, tmp_path):  # noqa: F811
    speech = make_speech("Please keep this sentence about purple elephants in the library.")
    process = subprocess.Popen([sys.executable, "-m", "desktop", "record", "--seconds", "8", "--transcribe", "-f",
                                "txt", "-o", str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    assert process.stderr is not None
    assert "recording from" in process.stderr.readline()
    player = pulse_sink.play(speech)
    stdout, stderr = process.communicate(timeout=300)
    player.wait(10)
    assert process.returncode == 0, stderr
    flac = Path(stdout.strip().splitlines()[0])
    [listed] = library_json()
    assert listed["source"] == str(flac.resolve()) and listed["state"] == "done"
    assert "elephant" in listed["text"].lower()
