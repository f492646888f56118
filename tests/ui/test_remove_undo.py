"""Removing a job loses nothing: Del takes it out of the queue, Undo (the notice's button, Ctrl+Z in the queue,
Queue ▸ Undo remove) brings it back with its place, state, transcript and edits; closing the window deletes
what stayed removed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from desktop.core.jobs import JobState
from desktop.core.paths import library_path
from desktop.core.store import Store
from desktop.ui.transcript_model import TEXT
from tests.ui.test_main_window import JOB_TIMEOUT_MS, App, db_texts


@pytest.fixture
def apps(qtbot):
    made: list[App] = []

    def make(*args, **kwargs) -> App:
        made.append(App(qtbot, *args, **kwargs))
        return made[-1]

    yield make
    for app in made:
        if app.worker.is_running() or not app.window.isHidden():
            app.close()


def rows_in_file(job_id: int) -> int:
    raw = sqlite3.connect(library_path())
    try:
        return raw.execute("SELECT COUNT(*) FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    finally:
        raw.close()


def test_del_then_undo_brings_the_job_back_with_its_transcript_and_edits(qtbot, apps, loaded_model, make_speech):
    one = make_speech("The first recording talks about green apples and red cherries.", name="one.wav")
    two = make_speech("The second file is about the weather in the mountains.", name="two.wav")
    app = apps(loaded_model)
    window = app.window
    qtbot.waitExposed(window)
    one_id, two_id = (job.id for job in window.add_paths([one, two]))
    qtbot.waitUntil(lambda: set(app.states().values()) == {JobState.DONE}, timeout=JOB_TIMEOUT_MS)
    window.select_job(one_id)
    model = window.transcript_model
    original = model.index(0, TEXT).data()
    assert model.setData(model.index(0, TEXT), "Edited by hand.", Qt.ItemDataRole.EditRole)
    edited_rows = list(model.rows())

    window.queue_view.setFocus()
    qtbot.keyClick(window.queue_view, Qt.Key.Key_Delete)
    assert window.queue_model.job_ids() == [two_id]
    assert [j.id for j in app.store.jobs()] == [two_id] and not app.store.has_job(one_id)
    assert window.notice.text() == "Removed one.wav."
    assert window.notice.action_button.isVisibleTo(window) and window.notice.action_button.text() == "Undo"
    assert window.statusBar().currentMessage().startswith("Removed one.wav — Undo")
    assert window.undo_remove_action.isEnabled() and window.undo_remove_action.text() == "&Undo remove one.wav"

    qtbot.mouseClick(window.notice.action_button, Qt.MouseButton.LeftButton)
    assert window.queue_model.job_ids() == [one_id, two_id]  # back in its place
    assert [j.id for j in app.store.jobs()] == [one_id, two_id]
    assert window.queue_model.entry(one_id).job.state == JobState.DONE
    assert window.current_job_id() == one_id
    assert list(model.rows()) == edited_rows and model.index(0, TEXT).data() == "Edited by hand."
    assert db_texts(one_id)[0].strip() == "Edited by hand."
    assert window.notice.text() == "" and not window.undo_remove_action.isEnabled()

    # Its undo history came back too: the edit made before the removal can still be undone.
    assert "edit" in window.undo_action.text().lower()
    window.undo_action.trigger()
    assert model.index(0, TEXT).data() == original
    assert db_texts(one_id)[0].strip() == original

    # Ctrl+Z in the queue undoes a removal, even while the transcript shown has edits to undo.
    window.select_job(two_id)
    assert model.setData(model.index(0, TEXT), "Two, edited.", Qt.ItemDataRole.EditRole)
    window.select_job(one_id)
    window.queue_view.setFocus()
    qtbot.keyClick(window.queue_view, Qt.Key.Key_Delete)
    assert window.current_job_id() == two_id and window.transcript_model.transcript.can_undo()
    window.queue_view.setFocus()
    qtbot.keyClick(window.queue_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.queue_model.job_ids() == [one_id, two_id]
    assert model.index(0, TEXT).data() == original
    window.select_job(two_id)
    assert model.index(0, TEXT).data() == "Two, edited."

    # What is still removed when the window closes is deleted for good, segments included.
    window.queue_view.setFocus()
    qtbot.keyClick(window.queue_view, Qt.Key.Key_Delete)
    assert rows_in_file(two_id) == 1  # still undoable until then
    app.close()
    assert rows_in_file(two_id) == 0 and db_texts(two_id) == []
    with Store() as reopened:
        assert [j.id for j in reopened.jobs()] == [one_id]


def test_a_removed_waiting_job_goes_back_to_its_place_in_the_worker_queue(qtbot, apps, loaded_model, make_speech):
    clips = [make_speech(f"Clip number {n}.", name=f"clip{n}.wav") for n in range(3)]
    app = apps(loaded_model, start=False)  # the model never becomes ready: everything stays queued
    window = app.window
    a, b, c = (job.id for job in window.add_paths(clips))
    window.select_job(b)
    window.remove_action.trigger()
    assert app.worker.queued_ids() == [a, c] and window.queue_model.job_ids() == [a, c]

    # Undone before the worker's answer to the cancel has arrived: that late answer must not cancel it.
    with qtbot.waitSignal(app.worker.job_cancelled, timeout=5000) as cancelled:
        window.undo_remove_action.trigger()
        assert window.queue_model.job_ids() == [a, b, c]
        assert app.worker.queued_ids() == [a, b, c]
    assert cancelled.args == [b]
    assert window.queue_model.entry(b).job.state == JobState.QUEUED
    assert app.store.job(b).state == JobState.QUEUED
    assert [j.id for j in app.store.jobs()] == [a, b, c] and app.worker.queued_ids() == [a, b, c]


def test_a_running_job_removed_is_cancelled_and_comes_back_cancelled(qtbot, apps, loaded_model, make_speech):
    long = make_speech(" ".join(f"This is sentence number {n} of a long recording about rivers." for n in range(6)),
                       name="long.wav")
    short = make_speech("A short clip after it.", name="short.wav")
    app = apps(loaded_model)
    window = app.window
    removed: list[int] = []

    def remove_once_started(job_id: int, _event) -> None:
        # Right as the window hears it started (the worker may deliver its later events in the same batch).
        if not removed:
            assert window.queue_model.entry(job_id).job.state == JobState.RUNNING
            window.select_job(job_id)
            window.remove_action.trigger()
            removed.append(job_id)

    app.worker.job_started.connect(remove_once_started)
    long_id, short_id = (job.id for job in window.add_paths([long, short]))
    qtbot.waitUntil(lambda: removed == [long_id], timeout=JOB_TIMEOUT_MS)
    assert window.queue_model.job_ids() == [short_id]
    window.undo_remove_action.trigger()
    # The removal stopped it; it is back as cancelled, with what it had transcribed, for Retry to run again.
    assert window.queue_model.entry(long_id).job.state == JobState.CANCELLED
    assert app.store.job(long_id).state == JobState.CANCELLED
    at_undo = [s.text for s in app.store.segments(long_id)]
    assert [s.text for s in window.transcript_for(long_id).segments] == at_undo

    # The stopped run's last events change nothing, and the queue goes on.
    qtbot.waitUntil(lambda: app.states().get("short.wav") == JobState.DONE, timeout=JOB_TIMEOUT_MS)
    assert window.queue_model.entry(long_id).job.state == JobState.CANCELLED
    assert app.store.job(long_id).state == JobState.CANCELLED
    assert [s.text for s in app.store.segments(long_id)] == at_undo
    assert Path(app.store.job(long_id).source).name == "long.wav"
