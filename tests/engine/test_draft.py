"""The live draft's bookkeeping (cuts in silence, settled and provisional text) and a real draft pass."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from desktop.core.segment import Segment
from desktop.engine.draft import (
    DraftResult,
    DraftTranscriber,
    LiveDraft,
    choose_cut_s,
    draft_options,
    to_16k,
)


def test_cut_at_the_end_when_the_speech_is_over():
    assert choose_cut_s([(0.5, 2.0)], 3.0) == 3.0
    assert choose_cut_s([], 4.0) == 4.0


def test_cut_in_the_pause_before_speech_still_going_on():
    assert choose_cut_s([(0.5, 2.0), (3.0, 4.9)], 5.0) == pytest.approx(2.5)
    assert choose_cut_s([(1.0, 4.9)], 5.0) == pytest.approx(0.5)


def test_no_cut_inside_one_stretch_of_speech_until_it_is_too_long():
    assert choose_cut_s([(0.1, 4.9)], 5.0) == 0.0
    assert choose_cut_s([(0.1, 29.9)], 30.0, max_pending_s=25.0) == 30.0


def test_resampling_keeps_the_duration():
    assert to_16k(np.zeros(44_100, dtype=np.float32), 44_100).size == 16_000


def test_settled_text_stays_and_provisional_text_is_redone():
    draft = LiveDraft(key=3)
    draft.add_audio(np.zeros(5 * 16_000, dtype=np.float32))
    request = draft.request()
    assert request is not None and request.offset_s == 0.0 and request.audio.size == 5 * 16_000
    assert draft.request() is None  # one at a time
    first = Segment(0.5, 2.0, " One.")
    draft.apply(DraftResult(3, 0.0, 2.5, (first,), (Segment(3.0, 4.9, " Two"),), language="en"))
    assert [s.text for s in draft.segments()] == [" One.", " Two"]
    assert draft.language == "en"
    draft.add_audio(np.zeros(2 * 16_000, dtype=np.float32))
    second = draft.request()
    assert second is not None and second.offset_s == 2.5 and second.language == "en"
    assert second.audio.size == int(4.5 * 16_000)  # from the cut on
    draft.apply(DraftResult(3, 2.5, 7.0, (Segment(3.0, 5.5, " Two three."),), ()))
    assert [s.text for s in draft.segments()] == [" One.", " Two three."]
    assert draft.apply(DraftResult(4, 0.0, 9.0, (Segment(0, 1, "other"),), ())) is False  # not this recording


@pytest.mark.model
def test_a_draft_pass_settles_finished_speech_and_keeps_the_rest_provisional(loaded_model, make_speech):
    first, _ = soundfile.read(make_speech("The quick brown fox jumps over the lazy dog.", rate=16000), dtype="float32")
    second, _ = soundfile.read(make_speech("Pack my box with five dozen liquor jugs.", rate=16000), dtype="float32")
    silence = np.zeros(16_000, dtype=np.float32)
    # The second sentence is cut off mid-way: still being spoken when the draft is taken.
    audio = np.concatenate([silence, first, silence, second[: second.size // 2]])
    draft = LiveDraft(key=1)
    draft.add_audio(audio)
    request = draft.request()
    assert request is not None
    result = DraftTranscriber(loaded_model, draft_options(None, "transcribe")).transcribe(request)
    assert result.error is None and result.language == "en"
    settled = " ".join(s.text for s in result.settled).lower()
    assert "fox" in settled and "dog" in settled and "box" not in settled
    assert "box" in " ".join(s.text for s in result.provisional).lower()
    end_of_first_s = (silence.size + first.size) / 16_000
    assert end_of_first_s <= result.cut_s <= end_of_first_s + 1.0
