"""Re-running a flagged range on the real model: the worker transcribes that time again (ahead of waiting
jobs), the new segments replace the flagged ones as ONE undoable edit, and the library follows."""

from __future__ import annotations

from pathlib import Path

from desktop.core.flags import segment_flags
from desktop.core.jobs import JobState
from desktop.core.segment import Segment
from desktop.core.settings import Settings
from desktop.core.store import Store
from desktop.ui.main_window import MainWindow
from desktop.ui.transcript_model import FLAGS_ROLE, TEXT
from desktop.workers.model_worker import ModelWorker, RangeOutcome, RangeRequest
from desktop.workers.signals import emit

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


WORDS = " And here's some more words, words, words, words."


def _done_job(store: Store, source: Path) -> tuple[int, list[Segment]]:
    """A finished job in the library as the engine leaves one (decoder statistics included)."""
    job = store.add_job(source)
    store.mark_started(job.id, 6.0, "en", 0.98, "base")
    segments = [Segment(0.0, 2.6, " The quick brown fox jumps over the lazy dog.", avg_logprob=-0.22,
                        no_speech_prob=0.01, compression_ratio=1.1),
                Segment(2.6, 5.4, WORDS, avg_logprob=-0.28, no_speech_prob=0.02, compression_ratio=1.08)]
    store.append_segments(job.id, segments, done_s=6.0)
    store.set_state(job.id, JobState.DONE)
    return job.id, segments


def test_a_rerun_that_is_worse_leaves_the_old_text_and_says_why(qtbot, loaded_model, make_speech):
    audio = make_speech("And here's some more words, words, words, words.", name="words.wav")
    store = Store(owner=True)
    job_id, segments = _done_job(store, audio)
    settings = Settings()
    # The worker never starts: the answer below is the one that made a correct sentence worse.
    worker = ModelWorker(settings, loaded_model)
    window = MainWindow(store, worker, settings)
    qtbot.addWidget(window)
    window.show()
    try:
        window.select_job(job_id)
        model = window.transcript_model
        model.set_text(0, " The quick brown fox jumps over the lazy dog!")  # an edit made before the re-run
        edited = list(model.rows())
        assert [f.kind for f in model.index(1, TEXT).data(FLAGS_ROLE)] == ["loop"]
        request_id = window.rerun_rows(1, 1)
        assert request_id is not None
        request = RangeRequest(request_id, job_id, audio, segments[1].start_s, segments[1].end_s)
        degenerate = tuple(Segment(2.6 + 0.02 * i, 2.62 + 0.02 * i, " words words words words words words",
                                   avg_logprob=-0.12, no_speech_prob=0.01, compression_ratio=3.2) for i in range(4))
        emit(worker.range_transcribed, RangeOutcome(request, degenerate))

        assert list(model.rows()) == edited
        with Store(store.path) as fresh:
            assert fresh.segments(job_id) == edited
        message = "The re-run's text was no better (it repeats itself); the old text stays."
        assert window.edit_error.isVisibleTo(window) and window.edit_error.text() == message
        assert window.statusBar().currentMessage() == message
        assert "re-run" not in window.undo_action.text().lower()  # nothing happened to undo
        window.undo_action.trigger()  # the edit made before is still the last step
        assert model.rows()[0].text == segments[0].text

        # A clean, confident answer for the same range still replaces it, as one undoable step.
        request_id = window.rerun_rows(1, 1)
        request = RangeRequest(request_id, job_id, audio, segments[1].start_s, segments[1].end_s)
        better = (Segment(2.6, 5.4, " And here are some more words.", avg_logprob=-0.2, no_speech_prob=0.01,
                          compression_ratio=1.1),)
        emit(worker.range_transcribed, RangeOutcome(request, better))
        assert model.rows()[1].text == " And here are some more words."
        assert "re-run" in window.undo_action.text().lower()
    finally:
        window.close()
        assert worker.shutdown(timeout_s=30)
        store.close()
