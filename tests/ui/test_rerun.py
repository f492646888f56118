"""Re-running a flagged range on the real model: the worker transcribes that time again (ahead of waiting
jobs), the new segments replace the flagged ones as ONE undoable edit, and the library follows."""

from __future__ import annotations

from pathlib import Path

from desktop.core.flags import segment_flags
from desktop.core.jobs import JobState
from desktop.core.settings import Settings
from desktop.core.store import Store
from desktop.ui.main_window import MainWindow
from desktop.ui.transcript_model import FLAGS_ROLE, TEXT
from desktop.workers.model_worker import ModelWorker

JOB_TIMEOUT_MS = 90_000
LOOP = "Thank you. Thank you. Thank you. Thank you. Thank you."


def test_rerun_of_a_flagged_range_replaces_it_in_one_undoable_step(qtbot, loaded_model, make_speech):
    audio = make_speech("The quick brown fox jumps over the lazy dog. Seven green parrots sing in the garden.",
                        name="parrots.wav")
    store = Store(owner=True)
    settings = Settings(word_timestamps=True)
    worker = ModelWorker(settings, loaded_model)
    window = MainWindow(store, worker, settings)
    window.show_error = lambda title, message: (_ for _ in ()).throw(AssertionError(f"{title}: {message}"))
    qtbot.addWidget(window)
    window.show()
    worker.start()
    try:
        [job] = window.add_paths([audio])
        qtbot.waitUntil(lambda: window.queue_model.entry(job.id).job.state == JobState.DONE, timeout=JOB_TIMEOUT_MS)
        model, editor = window.transcript_model, window.editor
        original = list(model.rows())
        assert original and all(s.words for s in original)
        assert "fox" in " ".join(s.text for s in original).lower()

        # The model "looped" over the first segment (as Whisper does on hard audio): it is flagged.
        assert model.set_text(0, LOOP)
        assert [f.kind for f in model.index(0, TEXT).data(FLAGS_ROLE)][:1] == ["loop"]
        editor.select_row(0)

        with qtbot.waitSignal(worker.range_transcribed, timeout=JOB_TIMEOUT_MS) as answered:
            editor.rerun_action.trigger()
        outcome = answered.args[0]
        assert (outcome.request.job_id, outcome.request.start_s, outcome.request.end_s) == (
            job.id, original[0].start_s, original[0].end_s)
        # The answer is the real model's, in the file's own time, inside the range.
        assert outcome.segments
        assert all(original[0].start_s <= s.start_s < s.end_s <= original[0].end_s + 0.05 for s in outcome.segments)
        rerun_text = " ".join(s.text for s in outcome.segments).lower()
        assert "fox" in rerun_text and "thank you" not in rerun_text

        rows = list(model.rows())
        assert [s.text for s in rows[: len(outcome.segments)]] == [s.text for s in outcome.segments]
        assert rows[len(outcome.segments):] == original[1:]  # nothing outside the range moved
        assert not any(segment_flags(rows))
        assert "re-run" in window.undo_action.text().lower()
        with Store(store.path) as fresh:
            assert fresh.segments(job.id) == rows

        # One undo brings the flagged text back, everywhere; a second one the model's first answer.
        window.undo_action.trigger()
        assert model.rows()[0].text.strip() == LOOP
        with Store(store.path) as fresh:
            assert fresh.segments(job.id)[0].text.strip() == LOOP
        window.undo_action.trigger()
        assert list(model.rows()) == original
        window.redo_action.trigger()
        window.redo_action.trigger()
        assert list(model.rows()) == rows
    finally:
        window.close()
        assert worker.shutdown(timeout_s=30)
        store.close()


def test_a_rerun_of_an_unreadable_source_says_why(qtbot, loaded_model, tmp_path: Path):
    worker = ModelWorker(Settings(), loaded_model)
    worker.start()
    try:
        with qtbot.waitSignal(worker.range_failed, timeout=30_000) as failed:
            worker.rerun_range(1, tmp_path / "gone.wav", 0.0, 2.0)
        assert "gone.wav" in failed.args[0].error
    finally:
        assert worker.shutdown(timeout_s=30)
