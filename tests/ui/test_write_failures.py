"""The library refuses writes in the middle of a job (a real, full file system): the window says so, holds
the queue, loses nothing saved, and after space returns carries on where the saved text ends, so that all
of the audio is transcribed once."""

from __future__ import annotations

import json
import sqlite3

import pytest

from desktop.core.jobs import JobState
from desktop.core.settings import Settings
from desktop.core.store import Store
from desktop.ui.main_window import MainWindow
from desktop.workers.model_worker import ModelWorker
from tests.fulldisk import fill, small_tmpfs

# About a minute of continuous speech: a few chunks, committed one by one.
SPEECH = " ".join(
    f"This is sentence number {n} of the long recording, and it talks about the weather in the {place}."
    for n, place in enumerate(["north", "south", "east", "west", "mountains", "valley", "city", "harbour"], start=1)
) + " The recording ends with the word pineapple."

pytestmark = pytest.mark.model


@pytest.fixture
def small_home(tmp_path, monkeypatch):
    """$VERBATIM_HOME on a real 2 MiB file system (root only), unmounted afterwards."""
    with small_tmpfs(tmp_path / "small", "2m") as folder:
        monkeypatch.setenv("VERBATIM_HOME", str(folder))
        yield folder


def test_a_full_disk_mid_job_pauses_and_after_space_returns_all_audio_is_transcribed_once(
        qtbot, small_home, loaded_model, make_speech):
    (small_home / "settings.json").write_text(json.dumps({"batch_size": 1}))  # several commits a job
    long = make_speech(SPEECH, name="long-for-full-disk.wav")
    short = make_speech("The short file waits its turn.", name="short-after.wav")
    store = Store(owner=True)
    worker = ModelWorker(Settings(batch_size=1), loaded_model)
    window = MainWindow(store, worker, Settings(batch_size=1))
    qtbot.addWidget(window)
    try:
        window.show()
        worker.start()
        [job, later] = window.add_paths([long, short])
        qtbot.waitUntil(lambda: len(store.segments(job.id)) >= 2, timeout=120_000)
        filler = fill(small_home, store.path)
        qtbot.waitUntil(lambda: window._write_failure is not None, timeout=120_000)
        assert "Could not save to the library" in window.notice.text() and "disk is full" in window.notice.text()
        saved = store.segments(job.id)
        saved_end_s = saved[-1].end_s
        # Nothing ahead of the saved text: the saved progress is the one saved with the last segments (a
        # chunk ends at most a pause after its last word), never a point further on.
        assert store.job(job.id).done_s <= saved_end_s + 5.0
        # The queue is held: the next file is not started (it would only fail the same way).
        assert window.queue_model.entry(later.id).job.state == JobState.QUEUED
        assert store.job(later.id).state == JobState.QUEUED

        filler.unlink()
        assert window.resume_after_write_error()
        assert window.notice.isHidden()
        qtbot.waitUntil(lambda: store.job(job.id).state == JobState.DONE and store.job(later.id).state
                        == JobState.DONE, timeout=180_000)
    finally:
        window.close()
        assert worker.shutdown(timeout_s=30)
        store.close()

    with Store() as reader:
        segments = reader.segments(job.id)
    assert segments[: len(saved)] == saved  # what was saved before the fault is untouched
    text = " ".join(s.text for s in segments).lower()
    assert "pineapple" in text
    # Continuous speech, transcribed once: no overlap (nothing twice) and no long stretch without text
    # (nothing skipped), up to the end of the file.
    for before, after in zip(segments, segments[1:]):
        assert after.start_s >= before.end_s - 0.01
        assert after.start_s - before.end_s < 5.0, (before, after)


def test_a_damaged_transcript_shows_its_reason_and_never_another_jobs_text(qtbot, tmp_path):
    from desktop.core.segment import Segment

    with Store() as setup:
        good = setup.add_job(str(tmp_path / "good.wav"))
        setup.mark_started(good.id, 5.0, "en", 0.9, "base")
        setup.finish_job(good.id, [Segment(0.0, 2.0, " The good one.")], JobState.DONE)
        bad = setup.add_job(str(tmp_path / "bad.wav"))
        setup.finish_job(bad.id, [], JobState.DONE)
    raw = sqlite3.connect(setup.path)
    raw.executemany("INSERT INTO segments (job_id, idx, start_s, end_s, text) VALUES (?, ?, ?, ?, ?)",
                    [(bad.id, 0, 4.0, 6.0, " later"), (bad.id, 1, 1.0, 5.0, " earlier")])
    raw.commit()
    raw.close()
    store = Store(owner=True)
    worker = ModelWorker(Settings())
    window = MainWindow(store, worker, Settings())
    qtbot.addWidget(window)
    try:
        window.select_job(good.id)
        assert window.transcript_model.rowCount() == 1
        window.select_job(bad.id)
        assert window.transcript_model.rowCount() == 0
        assert "damaged" in window.edit_error.text()
        window.select_job(good.id)
        assert window.transcript_model.segment(0).text == " The good one."
    finally:
        window.close()
        store.close()


def test_a_job_cancelled_while_paused_stays_cancelled_after_resume(qtbot, make_speech):
    from desktop.core.store import StoreWriteError

    clip = make_speech("Cancelled while the disk was full.", name="cancel-paused.wav")
    store = Store(owner=True)
    worker = ModelWorker(Settings())  # never started: the job waits in its queue
    window = MainWindow(store, worker, Settings())
    qtbot.addWidget(window)
    try:
        [job] = window.add_paths([clip])
        window._halt_on_write_error(StoreWriteError("the disk is full", disk_full=True))
        window.select_job(job.id)
        window.cancel_selected()
        qtbot.waitUntil(lambda: window.queue_model.entry(job.id).job.state == JobState.CANCELLED, timeout=5000)
        assert window.resume_after_write_error()
        assert store.job(job.id).state == JobState.CANCELLED
        assert job.id not in worker.queued_ids()
    finally:
        window.close()
        store.close()
