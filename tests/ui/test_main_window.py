"""The window end to end on the real model: drop files, watch segments stream into the editor, edit (the
edit lands in the SQLite file), export, and find everything again after a restart."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QApplication

from desktop.core.jobs import JobState
from desktop.core.paths import library_path
from desktop.core.segment import Segment
from desktop.core.settings import Settings, load_settings
from desktop.core.store import Store
from desktop.engine.events import JobStarted
from desktop.ui.main_window import MainWindow
from desktop.ui.queue_model import STATE
from desktop.ui.transcript_model import END, START, TEXT
from desktop.workers.model_worker import ModelWorker
from desktop.workers.signals import emit

JOB_TIMEOUT_MS = 90_000


class App:
    """A window with its store and worker; closes all three at the end of the test."""

    def __init__(self, qtbot, model, settings: Settings | None = None, start: bool = True, **worker_kwargs):
        self.store = Store(owner=True)
        self.settings = settings or Settings()
        self.worker = ModelWorker(self.settings, model, **worker_kwargs)
        self.window = MainWindow(self.store, self.worker, self.settings)
        self.errors: list[tuple[str, str]] = []
        self.window.show_error = lambda title, message: self.errors.append((title, message))
        qtbot.addWidget(self.window)
        self.window.show()
        if start:
            self.worker.start()

    def close(self) -> None:
        self.window.close()
        assert self.worker.shutdown(timeout_s=30)
        self.store.close()

    def states(self) -> dict[str, JobState]:
        return {Path(j.source).name: j.state for j in self.window.queue_model.jobs()}


@pytest.fixture
def apps(qtbot):
    made: list[App] = []

    def make(*args, **kwargs) -> App:
        app = App(qtbot, *args, **kwargs)
        made.append(app)
        return app

    yield make
    for app in made:
        if app.worker.is_running() or not app.window.isHidden():
            app.close()


def mime_for(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def drop(window: MainWindow, *paths: Path) -> None:
    """A real drag-enter then drop, as the platform delivers them."""
    mime = mime_for(*paths)
    where = QPointF(window.width() / 2, window.height() / 2)
    # QDragEnterEvent takes a QPoint (PySide6 6.11), QDropEvent a QPointF.
    enter = QDragEnterEvent(where.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    event = QDropEvent(where, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, event)
    assert event.isAccepted()


def db_texts(job_id: int) -> list[str]:
    raw = sqlite3.connect(library_path())
    try:
        return [row[0] for row in raw.execute("SELECT text FROM segments WHERE job_id = ? ORDER BY idx", (job_id,))]
    finally:
        raw.close()


def test_drop_streams_into_the_editor_then_edit_export_and_reopen(qtbot, qtmodeltester, apps, loaded_model,
                                                                  make_speech, tmp_path):
    one = make_speech("The first recording talks about green apples and red cherries.", name="one.wav")
    two = make_speech("Bonjour tout le monde, ceci est le deuxième fichier, et il parle français.", voice="fr",
                      name="deux.wav")
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    app = apps(loaded_model)
    window = app.window
    assert window.windowTitle() == "Verbatim"
    qtmodeltester.check(window.queue_model)
    qtmodeltester.check(window.transcript_model)

    # While the first job runs, its rows reach the editor before it is done.
    rows_seen_while: list[JobState] = []
    window.transcript_model.rowsInserted.connect(
        lambda *_: rows_seen_while.append(window.queue_model.jobs()[0].state)
    )
    drop(window, one, two, notes)
    assert list(app.states()) == ["one.wav", "deux.wav"]
    assert "notes.txt" in window.notice.text()
    assert window.current_job_id() == window.queue_model.jobs()[0].id

    qtbot.waitUntil(lambda: set(app.states().values()) == {JobState.DONE}, timeout=JOB_TIMEOUT_MS)
    assert rows_seen_while and rows_seen_while[0] == JobState.RUNNING
    one_id, two_id = window.queue_model.job_ids()
    model = window.transcript_model
    text = " ".join(model.index(r, TEXT).data() for r in range(model.rowCount())).lower()
    assert "apples" in text and "cherries" in text
    assert app.store.job(two_id).language == "fr"

    # Edit the text: the model, the transcript and the SQLite file all change.
    assert model.setData(model.index(0, TEXT), "Edited by hand.", Qt.ItemDataRole.EditRole)
    assert model.index(0, TEXT).data() == "Edited by hand."
    assert db_texts(one_id)[0].strip() == "Edited by hand."

    # A time that breaks the rules is refused, shown, and changes nothing.
    before = model.index(0, END).data()
    assert not model.setData(model.index(0, END), "0:00.000", Qt.ItemDataRole.EditRole)
    assert model.index(0, END).data() == before
    assert not window.edit_error.isHidden() and "end after it starts" in window.edit_error.text()
    assert not model.setData(model.index(0, START), "soon", Qt.ItemDataRole.EditRole)
    assert "not a time" in window.edit_error.text()

    # Undo goes back to the engine's words, in the editor and on disk; redo repeats the edit.
    assert window.undo_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Undo)
    assert QKeySequence("Ctrl+Shift+Z") in window.redo_action.shortcuts()
    window.undo_action.trigger()
    assert model.index(0, TEXT).data() != "Edited by hand."
    assert db_texts(one_id)[0].strip() == model.index(0, TEXT).data()
    window.redo_action.trigger()
    assert db_texts(one_id)[0].strip() == "Edited by hand."

    # Export the selected job through the (replaced) save dialog.
    asked: list[str] = []

    def save_dialog(suggested, filters, selected):
        asked.append(suggested)
        return str(tmp_path / "out" / "chosen.srt"), selected

    (tmp_path / "out").mkdir()
    window.ask_save_path = save_dialog
    written = window.export_selected()
    assert asked and asked[0].endswith("one.srt")
    assert written == tmp_path / "out" / "chosen.srt"
    srt = written.read_text(encoding="utf-8")
    assert srt.startswith("1\n00:00:0") and "Edited by hand." in srt

    # Export all finished, in the formats of the settings.
    window.ask_folder = lambda title: str(tmp_path / "all")
    (tmp_path / "all").mkdir()
    written_all = window.export_all_finished()
    assert sorted(p.name for p in written_all) == ["deux.srt", "deux.txt", "one.srt", "one.txt"]
    assert "Edited by hand." in (tmp_path / "all" / "one.txt").read_text(encoding="utf-8")

    # An export that cannot be written says why and leaves nothing behind.
    window.ask_save_path = lambda *args: (str(tmp_path / "missing" / "x.json"), "")
    assert window.export_selected() is None
    assert app.errors and "folder does not exist" in app.errors[-1][1]

    # Close and reopen: the queue, the states and the edit are all there.
    app.close()
    again = apps(loaded_model, start=False)
    assert again.states() == {"one.wav": JobState.DONE, "deux.wav": JobState.DONE}
    again.window.select_job(one_id)
    assert again.window.transcript_model.index(0, TEXT).data() == "Edited by hand."
    qtmodeltester.check(again.window.transcript_model)


def test_unsupported_and_missing_files_are_refused_and_folders_are_searched(apps, loaded_model, make_speech,
                                                                            tmp_path):
    folder = tmp_path / "talks"
    (folder / "day2").mkdir(parents=True)
    clip = make_speech("Short clip.")
    (folder / "a.wav").write_bytes(clip.read_bytes())
    (folder / "day2" / "b.wav").write_bytes(clip.read_bytes())
    (folder / "day2" / "slides.pdf").write_bytes(b"%PDF")
    app = apps(loaded_model, start=False)
    window = app.window
    added = window.add_paths([tmp_path / "nope.wav", tmp_path / "talks", tmp_path / "talks" / "a.wav"])
    assert [Path(j.source).name for j in added] == ["a.wav", "b.wav"]
    notice = window.notice.text()
    assert "nope.wav: file not found" in notice and "already in the queue" in notice
    assert "slides.pdf" not in notice
    assert [Path(j.source).name for j in app.store.jobs()] == ["a.wav", "b.wav"]
    # Nothing runs without the worker: the jobs wait in its queue.
    assert app.worker.queued_ids() == [j.id for j in added]


def test_queue_operations_cancel_retry_remove_and_reorder(qtbot, qtmodeltester, apps, loaded_model, make_speech):
    clips = [make_speech(f"Clip number {n}.", name=f"clip{n}.wav") for n in range(3)]
    app = apps(loaded_model, start=False)  # the model never becomes ready: everything stays queued
    window = app.window
    qtmodeltester.check(window.queue_model)
    jobs = window.add_paths(clips)
    ids = [j.id for j in jobs]

    window.select_job(ids[0])
    window.down_action.trigger()
    assert window.queue_model.job_ids() == [ids[1], ids[0], ids[2]]
    assert [j.id for j in app.store.jobs()] == [ids[1], ids[0], ids[2]]
    assert app.worker.queued_ids() == [ids[1], ids[0], ids[2]]
    assert window.current_job_id() == ids[0]
    window.up_action.trigger()
    assert window.queue_model.job_ids() == ids
    assert window.up_action.isEnabled() is False

    with qtbot.waitSignal(app.worker.job_cancelled, timeout=5000):
        window.cancel_action.trigger()
    assert app.store.job(ids[0]).state == JobState.CANCELLED
    assert window.queue_model.index(0, STATE).data() == "Cancelled"
    assert app.worker.queued_ids() == [ids[1], ids[2]]

    window.retry_action.trigger()
    assert app.store.job(ids[0]).state == JobState.QUEUED
    assert app.worker.queued_ids() == [ids[1], ids[2], ids[0]]

    window.select_job(ids[1])
    window.remove_action.trigger()
    assert window.queue_model.job_ids() == [ids[0], ids[2]]
    assert not app.store.has_job(ids[1])


def test_the_editor_follows_new_segments_unless_scrolled_away(qtbot, apps, loaded_model, tmp_path):
    app = apps(loaded_model, start=False)
    window = app.window
    window.resize(900, 400)
    source = tmp_path / "long.wav"
    source.write_bytes(b"")
    job = app.store.add_job(str(source))
    window.queue_model.add(job)
    window.select_job(job.id)
    worker = app.worker
    emit(worker.job_started, job.id, JobStarted(job.id, 600.0, "en", 0.99))

    def stream(first: int, count: int) -> None:
        emit(worker.segments_decoded, job.id, tuple(Segment(i * 2.0, i * 2.0 + 1.5, f" line {i}")
                                                  for i in range(first, first + count)))

    bar = window.transcript_view.verticalScrollBar()
    stream(0, 60)
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum(), timeout=3000)
    bar.setValue(0)  # the user scrolls up to read
    stream(60, 20)
    assert window.transcript_model.rowCount() == 80
    assert bar.value() == 0
    bar.setValue(bar.maximum())  # back at the bottom: following again
    stream(80, 20)
    qtbot.waitUntil(lambda: bar.value() == bar.maximum(), timeout=3000)
    # Streamed segments are saved with the progress that covers them, in one transaction.
    assert app.store.segments(job.id) == []
    emit(worker.job_progressed, job.id, 200.0, 600.0)
    assert app.store.segments(job.id)[-1].text == " line 99" and app.store.job(job.id).done_s == 200.0
    # Segments that overlap the previous one by a little (chunk edges) are fitted, not lost.
    emit(worker.segments_decoded, job.id, (Segment(199.0, 201.0, " overlap"),))
    assert window.transcript_model.segment(100).start_s == pytest.approx(199.5)


def test_settings_are_saved_and_reach_the_worker(qtbot, apps, loaded_model):
    app = apps(loaded_model, start=False)
    window = app.window
    chosen = Settings(language="de", beam_size=3, word_timestamps=True, export_formats=("json",))
    window.ask_settings = lambda current: chosen
    window.settings_action.trigger()
    assert load_settings() == chosen
    assert window.settings == chosen
    assert app.worker._settings == chosen  # noqa: SLF001 - what the next job will use
    window.ask_settings = lambda current: Settings(model="tiny")
    window.settings_action.trigger()
    assert "tiny" in window.model_label.text()


def test_a_model_that_fails_to_load_is_shown_with_a_way_out(qtbot, apps):
    from desktop.engine.models import ModelError

    def broken_loader(name, **kwargs):
        raise ModelError(f"could not download model '{name}': cannot reach the model hub")

    app = apps(None, settings=Settings(model="small"), loader=broken_loader)
    qtbot.waitUntil(lambda: "cannot reach" in app.window.notice.text(), timeout=10_000)
    assert "failed" in app.window.model_label.text()
    assert app.window.notice.action_button.text() == "Settings…"


def test_a_job_left_running_by_a_crash_runs_again(qtbot, apps, loaded_model, make_speech):
    clip = make_speech("Crash recovery works.")
    with Store() as store:
        job = store.add_job(str(clip))
        store.mark_started(job.id, 2.0, "en", 0.9, "base")
        store.append_segments(job.id, [Segment(0.0, 1.0, " half")], done_s=1.0)
    app = apps(loaded_model)
    qtbot.waitUntil(lambda: app.states() == {clip.name: JobState.DONE}, timeout=JOB_TIMEOUT_MS)
    # Resumed at the committed 1.0 s: the segment before it stays, the rest is new and comes after it.
    segments = app.store.load_transcript(job.id).segments
    assert segments[0] == Segment(0.0, 1.0, " half")
    assert len(segments) > 1 and all(s.start_s >= 1.0 - 0.001 for s in segments[1:])
    assert "works" in "".join(s.text for s in segments[1:]).lower()
    assert [s.text for s in app.window.transcript_for(job.id).segments] == [s.text for s in segments]


def test_asking_for_a_gpu_that_fails_says_so_and_uses_the_cpu(qtbot, apps, use_session_model, make_speech):
    # The real loader on this machine, which has no GPU: CTranslate2 cannot use CUDA here.
    from desktop.engine.loading import cuda_device_count

    if cuda_device_count():
        pytest.skip("this machine has a working GPU")
    app = apps(None, settings=Settings(device="cuda"))
    qtbot.waitUntil(lambda: "ready" in app.window.model_label.text(), timeout=JOB_TIMEOUT_MS)
    assert "CPU" in app.window.model_label.text()
    assert app.window.notice.isVisible() and "using the CPU" in app.window.notice.text()
    clip = make_speech("The queue goes on without the graphics card.")
    app.window.add_paths([clip])
    qtbot.waitUntil(lambda: app.states() == {clip.name: JobState.DONE}, timeout=JOB_TIMEOUT_MS)


def test_library_json_matches_the_window(qtbot, apps, loaded_model, make_speech, capsys):
    from desktop.cli_library import run_library

    clip = make_speech("Library listing check.", name="listing.wav")
    app = apps(loaded_model)
    app.window.add_paths([clip])
    qtbot.waitUntil(lambda: app.states() == {"listing.wav": JobState.DONE}, timeout=JOB_TIMEOUT_MS)

    class Args:
        library_action = "list"
        json = True

    assert run_library(Args()) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(j["source"], j["state"]) for j in listed] == [(str(clip.resolve()), "done")]
    assert listed[0]["text"] == app.store.load_transcript(listed[0]["id"]).text


def test_a_failed_job_says_why_and_the_queue_goes_on(qtbot, apps, loaded_model, make_speech, tmp_path):
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"\x00\x01not audio" * 400)
    clip = make_speech("The queue goes on.", name="after.wav")
    app = apps(loaded_model)
    app.window.add_paths([broken, clip])
    qtbot.waitUntil(lambda: app.states() == {"broken.mp3": JobState.FAILED, "after.wav": JobState.DONE},
                    timeout=JOB_TIMEOUT_MS)
    failed_id = next(j.id for j in app.store.jobs() if j.state == JobState.FAILED)
    app.window.select_job(failed_id)
    assert app.window.job_error.isVisibleTo(app.window)
    assert "not an audio or video file" in app.window.job_error.text()
    done_id = next(j.id for j in app.store.jobs() if j.state == JobState.DONE)
    app.window.select_job(done_id)
    assert not app.window.job_error.isVisibleTo(app.window)


def test_a_job_with_no_speech_is_done_and_says_so(qtbot, apps, loaded_model, tmp_path):
    import numpy as np
    import soundfile

    noise = tmp_path / "noise.wav"
    soundfile.write(str(noise), np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32), 16000)
    app = apps(loaded_model)
    app.window.add_paths([noise])
    qtbot.waitUntil(lambda: app.states() == {"noise.wav": JobState.DONE}, timeout=JOB_TIMEOUT_MS)
    app.window.select_job(next(j.id for j in app.store.jobs()))
    assert app.window.job_notes.isVisibleTo(app.window)
    assert app.window.job_notes.text() == "Note: no speech found"
    assert not app.window.job_error.isVisibleTo(app.window)


def test_no_two_actions_share_a_shortcut(qtbot, apps, loaded_model):
    from PySide6.QtGui import QAction

    app = apps(loaded_model, start=False)
    owners: dict[str, list[str]] = {}
    for action in app.window.findChildren(QAction):
        for key in action.shortcuts():
            owners.setdefault(key.toString(), []).append(action.text())
    assert {key: names for key, names in owners.items() if len(set(names)) > 1} == {}
