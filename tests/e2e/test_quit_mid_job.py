"""Quit means quit: the window closed in the middle of a long file leaves within 3 s (it used to wait for the
decoder's batch, minutes on the CPU), with every segment it was given saved, and the next start resumes the
job at its committed point: the finished transcript has no stretch twice and none missing."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import pytest

from tests.e2e.test_crash_resume import LONG_TEXT, read_library, start_app

pytestmark = pytest.mark.model

QUIT_LIMIT_S = 3.0


@pytest.fixture(scope="module")
def long_speech(speech_dir, make_speech):
    """About five minutes of speech: the long text twice, the last sentence said once at the very end."""
    part = make_speech(LONG_TEXT.replace(" The recording ends with the word pineapple.", ""), name="long-part.wav")
    ending = make_speech("The recording ends with the word pineapple.", name="long-ending.wav")
    path = speech_dir / "five-minutes.wav"
    if not path.exists():
        subprocess.run(["sox", str(part), str(part), str(ending), str(path)], check=True)
    return path


def test_quit_mid_job_exits_within_3_s_and_the_next_start_resumes(qtbot, use_session_model, verbatim_home,
                                                                   long_speech):
    # One chunk per batch: the long file is committed in many steps.
    (verbatim_home / "settings.json").write_text(json.dumps({"batch_size": 1}))
    app = start_app([long_speech])
    try:
        def some_committed() -> bool:
            assert app.poll() is None, app.communicate()[1]
            jobs = read_library(verbatim_home)
            return bool(jobs) and jobs[1]["state"] == "running" and len(jobs[1]["segments"]) >= 2

        qtbot.waitUntil(some_committed, timeout=240_000)
        seen = read_library(verbatim_home)[1]
        begin = time.monotonic()
        app.send_signal(signal.SIGTERM)  # closes the window as Quit does (a signal is never asked)
        try:
            app.wait(timeout=QUIT_LIMIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {QUIT_LIMIT_S} s after the quit")
        quit_s = time.monotonic() - begin
        log = app.communicate(timeout=10)[1]
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    assert app.returncode == 0, log
    assert quit_s < QUIT_LIMIT_S
    after_quit = read_library(verbatim_home)[1]
    assert after_quit["state"] == "running"  # left for the next start, not cancelled
    assert after_quit["segments"][: len(seen["segments"])] == seen["segments"]  # nothing saved was lost
    committed_s = max(after_quit["done_s"], after_quit["segments"][-1][1])
    assert committed_s < after_quit["duration_s"] - 60  # the quit came well before the end

    app = start_app([])
    try:
        qtbot.waitUntil(lambda: app.poll() is None and read_library(verbatim_home)[1]["state"] == "done",
                        timeout=480_000)
        app.send_signal(signal.SIGTERM)
        log = app.communicate(timeout=10)[1]
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    assert app.returncode == 0, log
    resumed = re.findall(r"resuming job 1 \(.*five-minutes\.wav\) at ([\d.]+) s", log)
    assert resumed and float(resumed[0]) == pytest.approx(committed_s, abs=0.01), log

    final = read_library(verbatim_home)[1]["segments"]
    assert final[: len(after_quit["segments"])] == after_quit["segments"]
    new = final[len(after_quit["segments"]):]
    assert new and all(start_s >= committed_s - 0.01 for start_s, _end, _text in new)
    # No stretch twice: each segment starts after the one before it ends.
    assert all(start_s >= previous[1] - 0.01 for previous, (start_s, _e, _t) in zip(final, final[1:]))
    # Nothing skipped at the resume point: the resumed run picks up right where the saved text ends.
    assert new[0][0] - committed_s < 3.0, (committed_s, new[0])
    # None twice: each of the 48 sentences ends "... talks about the weather in the PLACE". Some may be
    # missing: on the CPU, the model sometimes stops a chunk's text early (whole sentences at a chunk's end;
    # seen in one run of three here, depending on where the resumed run's chunks fall). That is the engine's
    # tail loss, which issue 21 is about, not the quit.
    text = " ".join(t for *_x, t in final).lower()
    sentences = len(re.findall(r"weather in the \w+", text))
    assert 40 <= sentences <= 48, text
    assert text.rstrip(" .").endswith("pineapple")
