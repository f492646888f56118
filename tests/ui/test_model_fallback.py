"""A model that cannot be loaded, chosen in the settings or saved from before: the window says so, names the
model still in use, shows and saves the settings the worker really runs with, and the queue keeps going."""

from __future__ import annotations

from pathlib import Path

from desktop.core.jobs import JobState
from desktop.core.settings import Settings, load_settings, save_settings
from desktop.core.store import Store
from desktop.engine.models import ModelError
from desktop.ui.main_window import MainWindow
from desktop.workers.model_worker import ModelWorker

JOB_TIMEOUT_MS = 90_000
UNREACHABLE = "cannot reach https://huggingface.co (no network)"
OFFLINE = f"could not download model 'small': {UNREACHABLE}"


def offline_loader(loaded_model):
    def loader(name, **kwargs):
        if name == "base":
            return loaded_model
        raise ModelError(OFFLINE)

    return loader


def open_window(qtbot, model, settings: Settings, loader):
    store = Store(owner=True)
    worker = ModelWorker(settings, model, loader=loader)
    window = MainWindow(store, worker, settings)
    qtbot.addWidget(window)
    window.show()
    worker.start()
    return store, worker, window


def close(store, worker, window) -> None:
    window.close()
    assert worker.shutdown(timeout_s=30)
    store.close()


def states(window: MainWindow) -> dict[str, JobState]:
    return {Path(j.source).name: j.state for j in window.queue_model.jobs()}


def test_choosing_a_model_that_cannot_download_keeps_base_and_says_so(qtbot, loaded_model, make_speech):
    store, worker, window = open_window(qtbot, loaded_model, Settings(), offline_loader(loaded_model))
    try:
        window.ask_settings = lambda current: Settings(model="small", beam_size=3)
        window.settings_action.trigger()
        clip = make_speech("Still transcribing after all.")
        window.add_paths([str(clip)])
        qtbot.waitUntil(lambda: "Still using base" in window.notice.text(), timeout=10_000)
        assert window.notice.text() == f"Could not download small: {UNREACHABLE}. Still using base."
        assert window.notice.action_button.text() == "Settings…"
        label = window.model_label.text()
        assert "base" in label and "ready" in label and "failed" not in label
        # What the window shows and saves is what runs: base, with the other choices kept.
        assert window.settings == Settings(beam_size=3) and load_settings() == Settings(beam_size=3)
        qtbot.waitUntil(lambda: states(window) == {clip.name: JobState.DONE}, timeout=JOB_TIMEOUT_MS)
    finally:
        close(store, worker, window)


def test_a_saved_model_that_cannot_load_at_start_up_falls_back_to_base(qtbot, loaded_model):
    save_settings(Settings(model="small"))
    store, worker, window = open_window(qtbot, None, load_settings(), offline_loader(loaded_model))
    try:
        qtbot.waitUntil(lambda: "Still using base" in window.notice.text(), timeout=30_000)
        assert "ready" in window.model_label.text()
        # The next start begins with base, not with the choice that failed.
        assert load_settings().model == "base"
    finally:
        close(store, worker, window)
