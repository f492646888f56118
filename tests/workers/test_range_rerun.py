"""A range re-run on the real model: it goes ahead of jobs still waiting, its answer is in the file's own
time and never shows up as events of the job (which is finished and must stay so)."""

from __future__ import annotations

from desktop.core.flags import segment_flags
from desktop.core.rerun import choose_rerun
from desktop.core.segment import Segment
from desktop.core.settings import Settings
from desktop.workers.model_worker import ModelWorker, RangeOutcome

JOB_TIMEOUT_MS = 60_000


def test_a_range_rerun_goes_ahead_of_waiting_jobs(qtbot, loaded_model, make_speech):
    # The fox sentence takes 0-2.8 s, the parrots 3.3-5.4 s (measured on this model in test_rerun).
    parrots = make_speech("The quick brown fox jumps over the lazy dog. Seven green parrots sing in the garden.",
                          name="rerun-parrots.wav")
    waiting = make_speech("This file waits in the queue while the range runs first.", name="rerun-wait.wav")
    worker = ModelWorker(Settings(word_timestamps=True), loaded_model)
    order: list[str] = []
    outcomes: list[RangeOutcome] = []
    worker.job_started.connect(lambda job_id, _event: order.append(f"job {job_id} started"))
    worker.job_finished.connect(lambda job_id: order.append(f"job {job_id} finished"))
    worker.range_transcribed.connect(lambda outcome: (order.append("range"), outcomes.append(outcome)))
    # Queued before the worker starts: two waiting jobs, then the re-run, which must still come first.
    worker.enqueue(1, waiting)
    worker.enqueue(2, waiting)
    request_id = worker.rerun_range(7, parrots, 3.0, 6.0)
    worker.start()
    try:
        qtbot.waitUntil(lambda: "job 2 finished" in order, timeout=JOB_TIMEOUT_MS)
    finally:
        assert worker.shutdown(timeout_s=30)
    assert order.index("range") < order.index("job 1 finished")
    assert not [e for e in order if e.startswith(("job 7", "job -"))]  # the range is not a job
    [outcome] = outcomes
    assert outcome.request.request_id == request_id and outcome.request.job_id == 7 and outcome.error is None
    assert outcome.segments and all(3.0 <= s.start_s < s.end_s <= 6.05 for s in outcome.segments)
    text = " ".join(s.text for s in outcome.segments).lower()
    assert "garden" in text and "fox" not in text  # only the second sentence lies in 3.0-6.0 s
    assert all(s.words for s in outcome.segments)


def test_the_rerun_decision_on_the_real_models_numbers(qtbot, loaded_model, make_speech):
    """Each segment of a full pass transcribed again on its own, and judged against the full pass. A range
    decoded alone has less context, so the model is less sure even of the same words: a re-run that gives the
    same text back must not be refused for that, and whatever is refused must differ from the full pass."""
    audio = make_speech("The quick brown fox jumps over the lazy dog. Seven green parrots sing in the garden. "
                        "We will meet again next Tuesday at the old library.", name="rerun-three.wav")
    worker = ModelWorker(Settings(word_timestamps=True), loaded_model)
    full: list[Segment] = []
    finished: list[int] = []
    outcomes: list[RangeOutcome] = []
    worker.segments_decoded.connect(lambda _job_id, segments: full.extend(segments))
    worker.job_finished.connect(finished.append)
    worker.range_transcribed.connect(outcomes.append)
    worker.enqueue(1, audio)
    worker.start()
    try:
        qtbot.waitUntil(lambda: finished == [1], timeout=JOB_TIMEOUT_MS)
        assert len(full) >= 2 and not any(segment_flags(full))
        for segment in full:
            worker.rerun_range(1, audio, segment.start_s, segment.end_s)
        qtbot.waitUntil(lambda: len(outcomes) == len(full), timeout=JOB_TIMEOUT_MS)
    finally:
        assert worker.shutdown(timeout_s=30)
    same = refused = 0
    for segment, outcome in zip(full, sorted(outcomes, key=lambda o: o.request.start_s), strict=True):
        decision = choose_rerun([segment], outcome.segments)
        rerun_text = " ".join(s.text.strip() for s in outcome.segments)
        if rerun_text == segment.text.strip():
            same += 1
            # Less sure of the same words, as expected, yet not refused.
            assert decision.accept, (segment, outcome.segments, decision)
        if not decision.accept:
            refused += 1
            assert rerun_text != segment.text.strip()
            assert decision.message.startswith("The re-run's text was no better (")
    assert same >= 1  # otherwise this test would have checked nothing about the margin
