"""Merging a range re-run into a transcript (Transcript.merge_rerun): what lies in the range is replaced as one
undoable edit, the new text is fitted between its neighbours, and a re-run no better than the old text is refused."""

from __future__ import annotations

from desktop.core.segment import Segment, TranscriptInfo
from desktop.core.transcript import Transcript


def speech(start_s: float, end_s: float, text: str, avg_logprob: float = -0.25, no_speech_prob: float = 0.02) -> Segment:
    return Segment(start_s, end_s, text, avg_logprob=avg_logprob, no_speech_prob=no_speech_prob,
                   compression_ratio=1.2)


def three() -> Transcript:
    return Transcript(TranscriptInfo(source="/audio/talk.wav"), [
        speech(0.0, 2.0, " First sentence here."),
        speech(2.0, 4.0, " garbled garbled garbled", avg_logprob=-1.4),
        speech(4.0, 6.0, " Third sentence here."),
    ])


def test_a_better_rerun_replaces_the_range_fitted_between_its_neighbours():
    transcript = three()
    # The re-run starts a little before the previous segment ends and runs past the next one's start.
    merge = transcript.merge_rerun(2.0, 4.0, [speech(1.9, 3.0, " The second"), speech(3.0, 4.3, " sentence here."),
                                              speech(4.2, 4.8, " spill")], "Re-run 0:02–0:04")
    assert (merge.first, merge.replaced, merge.inserted, merge.refused, merge.changed) == (1, 1, 2, "", True)
    assert [(s.start_s, s.end_s, s.text) for s in transcript.segments] == [
        (0.0, 2.0, " First sentence here."), (2.0, 3.0, " The second"), (3.0, 4.0, " sentence here."),
        (4.0, 6.0, " Third sentence here.")]
    assert transcript.undo_description() == "Re-run 0:02–0:04"
    transcript.undo()
    assert [s.text for s in transcript.segments] == [" First sentence here.", " garbled garbled garbled",
                                                     " Third sentence here."]


def test_a_rerun_that_finds_no_speech_keeps_text_the_decoder_was_sure_of():
    transcript = three()
    merge = transcript.merge_rerun(2.0, 4.0, [])
    assert merge.refused == "The re-run found no speech there; the old text stays."
    assert not merge.changed and len(transcript) == 3 and not transcript.can_undo()


def test_a_rerun_that_finds_no_speech_removes_text_the_decoder_doubted():
    transcript = Transcript(TranscriptInfo(source="x"), [speech(0.0, 2.0, " Hello."),
                                                        speech(2.0, 4.0, " Thank you.", no_speech_prob=0.95,
                                                               avg_logprob=-1.2)])
    merge = transcript.merge_rerun(2.0, 4.0, [])
    assert (merge.replaced, merge.inserted, merge.changed) == (1, 0, True)
    assert [s.text for s in transcript.segments] == [" Hello."]


def test_an_empty_range_and_an_empty_rerun_change_nothing():
    transcript = three()
    merge = transcript.merge_rerun(6.5, 7.5, [])
    assert (merge.first, merge.replaced, merge.inserted, merge.refused, merge.changed) == (3, 0, 0, "", False)
    assert transcript.revision == three().revision
