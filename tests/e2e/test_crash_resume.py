"""Nothing lost: the app is killed with SIGKILL in the middle of a job, started again with no arguments,
and finishes the queue by itself, resuming the interrupted job where its committed progress reached."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

REPO_ROOT = Path(__file__).resolve().parents[2]
LONG_TEXT = " ".join(
    f"This is sentence number {n} of the long recording, and it talks about the weather in the {place}."
    for n, place in enumerate(["north", "south", "east", "west", "mountains", "valley", "city", "harbour",
                               "forest", "desert", "islands", "plains"] * 2, start=1)
) + " The recording ends with the word pineapple."


def read_library(home: Path) -> dict[int, dict]:
    """Jobs with their segments, read straight from the SQLite file (read-only, like another tool would)."""
    path = home / "library.sqlite3"
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        jobs = {
            row[0]: {"source": row[1], "state": row[2], "done_s": row[3], "duration_s": row[4], "segments": []}
            for row in db.execute("SELECT id, source, state, done_s, duration_s FROM jobs ORDER BY id")
        }
        for job_id, start_s, end_s, text in db.execute(
            "SELECT job_id, start_s, end_s, text FROM segments ORDER BY job_id, idx"
        ):
            jobs[job_id]["segments"].append((start_s, end_s, text))
        return jobs
    except sqlite3.OperationalError:  # the app has not created its tables yet
        return {}
    finally:
        db.close()


def start_app(files: list[Path]) -> subprocess.Popen[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", VERBATIM_LOG="info")
    return subprocess.Popen([sys.executable, "-m", "desktop", *map(str, files)], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_job_then_restart_resumes_and_finishes_the_queue(qtbot, use_session_model, verbatim_home,
                                                                      make_speech):
    # One chunk per batch, so the long file is committed in several steps.
    (verbatim_home / "settings.json").write_text(json.dumps({"batch_size": 1}))
    first = make_speech("This is the first file of the queue.", name="first.wav")
    long = make_speech(LONG_TEXT, name="long.wav")
    last = make_speech("And this is the last file of the queue.", name="last.wav")

    app = start_app([first, long, last])
    try:
        def long_job_part_committed() -> bool:
            assert app.poll() is None, app.communicate()[1]
            jobs = read_library(verbatim_home)
            return (len(jobs) == 3 and jobs[1]["state"] == "done" and jobs[2]["state"] == "running"
                    and bool(jobs[2]["segments"]) and 0 < jobs[2]["done_s"] < (jobs[2]["duration_s"] or 0) - 20)

        qtbot.waitUntil(long_job_part_committed, timeout=180_000)
        app.send_signal(signal.SIGKILL)
        app.communicate(timeout=10)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    before = read_library(verbatim_home)
    assert before[2]["state"] == "running"  # as a crash leaves it
    committed_s = max(before[2]["done_s"], before[2]["segments"][-1][1])

    app = start_app([])  # no arguments: the queue continues by itself
    try:
        qtbot.waitUntil(lambda: app.poll() is None and [j["state"] for j in read_library(verbatim_home).values()]
                        == ["done", "done", "done"], timeout=180_000)
        app.send_signal(signal.SIGTERM)
        _out, log = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    assert app.returncode == 0, log

    after = read_library(verbatim_home)
    assert len(after) == 3  # no job duplicated
    assert after[1]["segments"] == before[1]["segments"]  # finished work untouched
    # The interrupted job resumed at its committed position, not at zero, and kept what it had.
    resumed = re.findall(r"resuming job 2 \(.*long\.wav\) at ([\d.]+) s", log)
    assert resumed and float(resumed[0]) == pytest.approx(committed_s, abs=0.01), log
    assert after[2]["segments"][: len(before[2]["segments"])] == before[2]["segments"]
    new = after[2]["segments"][len(before[2]["segments"]):]
    assert new and all(start_s >= committed_s - 0.01 for start_s, _end, _text in new)
    assert "pineapple" in " ".join(text for *_t, text in new).lower()
    assert "first file" in " ".join(t for *_x, t in after[1]["segments"]).lower()
    assert "last" in " ".join(t for *_x, t in after[3]["segments"]).lower()
    # Each stretch of audio was transcribed once: no segment overlaps the one before it.
    ends = [end for _s, end, _t in after[2]["segments"]]
    starts = [start for start, _e, _t in after[2]["segments"]]
    assert all(start >= previous_end - 0.01 for start, previous_end in zip(starts[1:], ends))
