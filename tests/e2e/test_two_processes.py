"""Two app processes on one library: the second can neither resume the first one's running job nor write
its results. The store enforces it (a lock held for the owner's life), whether or not the second process
found the first one's window to hand its files to (here it cannot: another temp folder)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.e2e.test_crash_resume import read_library, start_app

pytestmark = pytest.mark.model
REPO = Path(__file__).resolve().parents[2]

SPEECH = " ".join(
    f"This is sentence number {n} of the long recording, and it talks about the weather in the {place}."
    for n, place in enumerate(["north", "south", "east", "west", "mountains", "valley", "city", "harbour"], start=1)
) + " The recording ends with the word pineapple."


def test_a_second_app_process_never_resumes_the_first_ones_job(qtbot, use_session_model, verbatim_home,
                                                               make_speech, tmp_path):
    (verbatim_home / "settings.json").write_text(json.dumps({"batch_size": 1}))
    long = make_speech(SPEECH, name="two-processes.wav")
    first = start_app([long])
    second_log = tmp_path / "second.log"
    second = None
    try:
        def running_with_text() -> bool:
            assert first.poll() is None, first.communicate()[1]
            jobs = read_library(verbatim_home)
            return bool(jobs) and jobs[1]["state"] == "running" and bool(jobs[1]["segments"])

        qtbot.waitUntil(running_with_text, timeout=120_000)
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", VERBATIM_LOG="info",
                   TMPDIR=tempfile.mkdtemp(dir=tmp_path))
        with open(second_log, "w") as log_file:
            second = subprocess.Popen([sys.executable, "-m", "desktop"], cwd=REPO, env=env,
                                      stdout=subprocess.DEVNULL, stderr=log_file)
        qtbot.waitUntil(lambda: "open in another Verbatim window" in second_log.read_text(), timeout=60_000)
        second.send_signal(signal.SIGKILL)
        second.wait(30)
        qtbot.waitUntil(lambda: first.poll() is None and read_library(verbatim_home)[1]["state"] == "done",
                        timeout=180_000)
        first.send_signal(signal.SIGTERM)
        _out, log = first.communicate(timeout=30)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    assert "resuming job" not in second_log.read_text()
    segments = read_library(verbatim_home)[1]["segments"]
    assert "pineapple" in " ".join(text for *_t, text in segments).lower()
    # Transcribed once, by the first process: no overlap (nothing twice) and no gap (nothing skipped).
    for (_start_a, end_a, _a), (start_b, _end_b, _b) in zip(segments, segments[1:]):
        assert start_b >= end_a - 0.01
        assert start_b - end_a < 5.0
