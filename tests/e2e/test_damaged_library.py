"""A library file that cannot be read is kept aside as a dated backup, a new library is started, and the
files given on the command line are still queued and transcribed."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.test_crash_resume import read_library, start_app

pytestmark = pytest.mark.model


def test_a_damaged_library_is_backed_up_and_the_files_given_are_still_transcribed(
        qtbot, use_session_model, verbatim_home, make_speech):
    garbage = b"SQLite format 3\0" + b"\xde\xad\xbe\xef" * 4000  # a header, then nothing SQLite can read
    (verbatim_home / "library.sqlite3").write_bytes(garbage)
    clip = make_speech("A new library for a new day.", name="new-day.wav")

    app = start_app([clip])
    try:
        qtbot.waitUntil(lambda: app.poll() is None and any(verbatim_home.glob("library.damaged-*")), timeout=60_000)
        qtbot.waitUntil(lambda: app.poll() is None and [j["state"] for j in read_library(verbatim_home).values()]
                        == ["done"], timeout=120_000)
        app.send_signal(signal.SIGTERM)
        _out, log = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    assert app.returncode == 0, log
    backups = list(verbatim_home.glob("library.damaged-*.sqlite3"))
    assert len(backups) == 1 and backups[0].read_bytes() == garbage
    [job] = read_library(verbatim_home).values()
    assert job["source"].endswith("new-day.wav")
    assert "library" in " ".join(text for *_t, text in job["segments"]).lower()
