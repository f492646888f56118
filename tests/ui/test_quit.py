"""Quit means quit: with files unfinished the window asks once (Quit / Cancel); idle, or closed from code (SIGTERM),
it does not. After Quit every segment the engine already produced is in the library and the job stays where a
restart resumes it."""

from __future__ import annotations

import sqlite3

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop.core.jobs import JobState
from desktop.core.paths import library_path
from desktop.core.settings import Settings
from desktop.core.store import Store
from desktop.ui.main_window import MainWindow
from desktop.ui.quit_question import quit_question
from desktop.workers.model_worker import ModelWorker


class Window:
    """A window whose quit question is answered by the test; its worker starts only when asked to."""

    def __init__(self, qtbot, model=None, settings: Settings | None = None, answer: bool = False) -> None:
        self.store = Store(owner=True)
        self.worker = ModelWorker(settings or Settings(), model)
        self.window = MainWindow(self.store, self.worker, settings or Settings(), settings_saver=lambda s: None)
        self.asked: list[int] = []
        self.answer = answer

        def ask(count: int) -> bool:
            self.asked.append(count)
            return self.answer

        self.window.ask_quit = ask
        qtbot.addWidget(self.window)
        self.window.show()
        qtbot.waitExposed(self.window)

    def finish(self) -> None:
        if not self.window.isHidden():
            self.answer = True
            self.window.close()
        assert self.worker.shutdown(timeout_s=30)
        self.store.close()


@pytest.fixture
def windows(qtbot):
    made: list[Window] = []

    def make(*args, **kwargs) -> Window:
        window = Window(qtbot, *args, **kwargs)
        made.append(window)
        return window

    yield make
    for window in made:
        window.finish()


def test_idle_quits_without_a_question(windows):
    w = windows()
    w.window.quit_action.trigger()
    assert w.asked == []
    assert w.window.isHidden()


def test_unfinished_files_ask_once_and_cancel_keeps_the_window(windows, make_speech):
    w = windows(answer=False)
    w.window.add_paths([make_speech("One.", name="one.wav"), make_speech("Two.", name="two.wav"),
                        make_speech("Three.", name="three.wav")])
    w.window.quit_action.trigger()
    assert w.asked == [3]
    assert w.window.isVisible()
    assert [j.state for j in w.window.queue_model.jobs()] == [JobState.QUEUED] * 3  # nothing cancelled

    w.answer = True
    w.window.quit_action.trigger()
    assert w.asked == [3, 3]  # asked once per quit, not again by the close it leads to
    assert w.window.isHidden()


def test_the_title_bar_close_button_asks_too(windows, make_speech):
    w = windows(answer=False)
    w.window.add_paths([make_speech("One.", name="one.wav")])
    # A close event to the platform window, as the window manager's close button sends one (QWindow.close()
    # would not do: Qt marks that one as coming from code).
    event = QCloseEvent()
    QApplication.sendEvent(w.window.windowHandle(), event)
    assert w.asked == [1]
    assert not event.isAccepted() and w.window.isVisible()

    w.answer = True
    QApplication.sendEvent(w.window.windowHandle(), QCloseEvent())
    assert w.asked == [1, 1]
    assert w.window.isHidden()


def test_a_close_from_code_does_not_ask(windows, make_speech):
    """SIGTERM closes the window from code (app.py): a signal has nobody to answer a question."""
    w = windows(answer=False)
    w.window.add_paths([make_speech("One.", name="one.wav")])
    w.window.close()
    assert w.asked == []
    assert w.window.isHidden()


def test_the_question_says_what_happens(qtbot, windows):
    assert quit_question(3) == ("3 files are still being transcribed. They will resume where they stopped the "
                                "next time you open Verbatim.")
    assert quit_question(1).startswith("1 file is still being transcribed. It will resume")
    # The real dialog: Quit or Cancel, Cancel by default.
    from desktop.ui.quit_question import ask_quit

    w = windows()
    seen: list[tuple[str, list[str]]] = []

    def answer(button_text: str) -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        seen.append((box.text(), [b.text().replace("&", "") for b in box.buttons()]))
        assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
        next(b for b in box.buttons() if b.text().replace("&", "") == button_text).click()

    QTimer.singleShot(0, lambda: answer("Quit"))
    assert ask_quit(w.window, 2) is True
    QTimer.singleShot(0, lambda: answer("Cancel"))
    assert ask_quit(w.window, 2) is False
    assert seen[0][0] == quit_question(2) and sorted(seen[0][1]) == ["Cancel", "Quit"]


@pytest.mark.model
def test_quit_mid_job_keeps_every_decoded_segment_and_the_job_resumable(qtbot, windows, loaded_model,
                                                                       make_speech):
    text = " ".join(f"Sentence number {n} is about the weather in the north." for n in range(1, 25))
    long = make_speech(text, name="long.wav")
    w = windows(loaded_model, Settings(batch_size=1), answer=True)
    w.worker.start()
    w.window.add_paths([long])
    job_id = w.window.queue_model.jobs()[0].id
    qtbot.waitUntil(lambda: len(w.window.transcript_for(job_id)) >= 2, timeout=120_000)

    w.window.quit_action.trigger()
    assert w.asked == [1]
    assert w.window.isHidden()
    shown = [(s.start_s, s.end_s, s.text) for s in w.window.transcript_for(job_id)]
    assert w.worker.shutdown(timeout_s=30)
    db = sqlite3.connect(library_path())
    try:
        state, done_s = db.execute("SELECT state, done_s FROM jobs WHERE id = ?", (job_id,)).fetchone()
        saved = db.execute("SELECT start_s, end_s, text FROM segments WHERE job_id = ? ORDER BY idx",
                           (job_id,)).fetchall()
    finally:
        db.close()
    # Every segment the window was given is in the library, and the job is left as a crash leaves it: the
    # next start resumes it (not cancelled by the user).
    assert [tuple(row) for row in saved] == shown
    assert state == "running" and 0 < done_s < (w.store.job(job_id).duration_s or 0)
