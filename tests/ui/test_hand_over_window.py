"""The open window's side of a second launch: the files are queued as if dropped, and the window comes to the
front, out of the taskbar if it was minimized."""

from __future__ import annotations

from desktop import app
from desktop.core.jobs import JobState
from desktop.core.settings import Settings
from desktop.core.store import Store
from desktop.ui.main_window import MainWindow
from desktop.workers.model_worker import ModelWorker
from desktop.workers.single_instance import HandOver


def test_handed_over_files_are_queued_and_the_window_comes_back(qtbot, make_speech, tmp_path):
    store = Store(owner=True)
    worker = ModelWorker(Settings())  # not started: the files wait in the queue
    window = MainWindow(store, worker, Settings(), settings_saver=lambda s: None)
    qtbot.addWidget(window)
    try:
        window.showMinimized()
        qtbot.waitUntil(window.isMinimized)
        talk = make_speech("Handed over by a second launch.", name="handed.wav")
        app._take_hand_over(window, HandOver((str(talk), str(tmp_path / "missing.wav"))))
        assert not window.isMinimized() and window.isVisible()
        jobs = window.queue_model.jobs()
        assert [(j.source, j.state) for j in jobs] == [(str(talk.resolve()), JobState.QUEUED)]
        assert worker.queued_ids() == [jobs[0].id]
        assert "missing.wav" in window.notice.text()  # refused as a drop would be

        app._take_hand_over(window, HandOver(()))  # a bare `verbatim`: only brought to the front
        assert len(window.queue_model.jobs()) == 1
    finally:
        window.close()
        assert worker.shutdown(timeout_s=10)
        store.close()
