"""The model worker's live-draft path: answered on its own thread, never through the job queue."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from desktop.core.settings import Settings
from desktop.engine.draft import DraftRequest
from desktop.workers.model_worker import ModelWorker


def test_a_draft_before_the_model_is_ready_is_answered_with_a_reason(qtbot):
    worker = ModelWorker(Settings(), loader=lambda *a, **k: pytest.fail("no load in this test"))
    with qtbot.waitSignal(worker.draft_decoded, timeout=10_000) as got:
        worker.request_draft(DraftRequest(5, np.zeros(16_000, dtype=np.float32), 0.0))
    assert got.args[0].key == 5 and got.args[0].error == "the speech model is not ready yet"
    assert worker.shutdown(timeout_s=10)


@pytest.mark.model
def test_a_draft_is_transcribed_and_nothing_is_queued(qtbot, loaded_model, make_speech):
    audio, _ = soundfile.read(make_speech("The quick brown fox jumps over the lazy dog.", rate=16000), dtype="float32")
    worker = ModelWorker(Settings(), loaded_model)
    worker.start()
    with qtbot.waitSignal(worker.draft_decoded, timeout=60_000) as got:
        worker.request_draft(DraftRequest(9, np.concatenate([audio, np.zeros(16_000, np.float32)]), 10.0))
    result = got.args[0]
    assert result.error is None and result.key == 9
    # A clear sentence: a draft is greedy with one sampled fallback, so a short mumble can read as anything.
    assert "fox" in " ".join(s.text for s in result.settled).lower()
    assert result.settled[0].start_s >= 10.0  # in recording time
    assert worker.queued_ids() == []
    assert worker.shutdown(timeout_s=30)
