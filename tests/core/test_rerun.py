"""Whether a range re-run replaces the old text: only when it is not flagged itself, not degenerate, and the
model was about as sure of it. Segments here look like the base model's (its decoder statistics)."""

from __future__ import annotations

import pytest

from desktop.core.flags import segment_flags
from desktop.core.rerun import LOGPROB_TOLERANCE, choose_rerun, degenerate, mean_logprob
from desktop.core.segment import Segment, Word

# A correct sentence, flagged only because the speaker really said "words" four times.
WORDS_SENTENCE = Segment(12.40, 15.12, " And here's some more words, words, words, words.",
                         avg_logprob=-0.28, no_speech_prob=0.02, compression_ratio=1.08)


def speech(start_s: float, end_s: float, text: str, avg_logprob: float = -0.25, no_speech_prob: float = 0.02,
           compression_ratio: float = 1.2) -> Segment:
    return Segment(start_s, end_s, text, avg_logprob=avg_logprob, no_speech_prob=no_speech_prob,
                   compression_ratio=compression_ratio)


def test_the_words_words_words_case_keeps_the_old_sentence():
    assert segment_flags([WORDS_SENTENCE])[0]  # the false flag that made the user re-run it
    # What the re-run gave: four 20 ms segments of the same word over and over, confidently.
    rerun = [speech(12.40 + 0.02 * i, 12.42 + 0.02 * i, " words words words words words words", avg_logprob=-0.12,
                    compression_ratio=3.1) for i in range(4)]
    decision = choose_rerun([WORDS_SENTENCE], rerun)
    assert not decision.accept
    assert decision.reason == "it repeats itself"
    assert decision.message == "The re-run's text was no better (it repeats itself); the old text stays."


def test_segments_too_short_for_their_words_are_degenerate_even_without_repetition():
    rerun = [speech(12.40, 12.42, " And here's some more words."), speech(12.42, 15.1, " Then the rest.")]
    assert not any(segment_flags(rerun))
    decision = choose_rerun([WORDS_SENTENCE], rerun)
    assert not decision.accept and "too short" in decision.reason
    # A one-word answer may be brief; four words in 0.12 s may not.
    assert not degenerate(speech(1.0, 1.08, " Yes."))
    assert degenerate(speech(1.0, 1.12, " I went there yesterday."))
    assert degenerate(speech(1.0, 1.09, " Hello world."))


def test_a_clean_confident_rerun_replaces_a_hallucinated_loop():
    old = [speech(0.0, 2.8, " Thank you. Thank you. Thank you. Thank you.", avg_logprob=-0.61, compression_ratio=2.9)]
    new = [speech(0.0, 1.36, " The quick brown fox", avg_logprob=-0.31),
           speech(1.36, 2.8, " jumps over the lazy dog.", avg_logprob=-0.22)]
    decision = choose_rerun(old, new)
    assert decision.accept and decision.reason == "" and decision.message == ""


def test_the_same_sentence_again_is_still_flagged_so_nothing_changes():
    again = [speech(12.40, 15.08, " And here's some more words, words, words, words.", avg_logprob=-0.25)]
    decision = choose_rerun([WORDS_SENTENCE], again)
    assert not decision.accept and decision.reason == "it repeats itself"


def test_a_less_confident_rerun_keeps_the_old_text_within_a_tolerance():
    old = [speech(3.3, 5.4, " Seven green parrots sing in the garden.", avg_logprob=-0.21)]
    unsure = [speech(3.3, 5.4, " Seven green carrots sing in a cart.", avg_logprob=-0.93)]
    decision = choose_rerun(old, unsure)
    assert not decision.accept
    assert decision.message == ("The re-run's text was no better (the model was less sure of it: average "
                                "log-probability -0.93 against -0.21); the old text stays.")
    nearly = [speech(3.3, 5.4, " Seven green parrots sing in the garden.", avg_logprob=-0.21 - LOGPROB_TOLERANCE / 2)]
    assert choose_rerun(old, nearly).accept
    # Hand-made old segments carry no statistics: nothing to compare, the other checks decide.
    assert choose_rerun([Segment(3.3, 5.4, " typed by hand")], unsure).accept


def test_a_rerun_the_model_thought_was_no_speech_is_refused():
    old = [speech(20.0, 23.0, " So that was the plan for the week.", avg_logprob=-0.45)]
    ghost = [speech(20.0, 23.0, " Thanks for watching!", avg_logprob=-0.83, no_speech_prob=0.91)]
    decision = choose_rerun(old, ghost)
    assert not decision.accept and decision.reason == "the model thought there was probably no speech"


def test_an_empty_rerun_removes_only_text_the_decoder_doubted_was_speech():
    loop = [speech(0.0, 2.8, " Thank you. Thank you. Thank you. Thank you.", avg_logprob=-0.3)]
    decision = choose_rerun(loop, [])
    assert not decision.accept
    assert decision.message == "The re-run found no speech there; the old text stays."
    assert not choose_rerun([WORDS_SENTENCE], [speech(12.4, 15.1, " ")]).accept
    ghost = [speech(20.0, 23.0, " Thanks for watching!", avg_logprob=-0.83, no_speech_prob=0.91)]
    assert choose_rerun(ghost, []).accept


def test_mean_logprob_weights_segments_by_their_words():
    segments = [speech(0.0, 1.0, " one two three", avg_logprob=-0.1), speech(1.0, 2.0, " four", avg_logprob=-0.5),
                Segment(2.0, 3.0, " hand made words here")]
    assert mean_logprob(segments) == pytest.approx((3 * -0.1 + 1 * -0.5) / 4)
    assert mean_logprob([Segment(0.0, 1.0, " hand made")]) is None


def test_word_timestamps_do_not_change_the_decision():
    words = tuple(Word(0.0 + 0.3 * i, 0.3 + 0.3 * i, f" w{i}", 0.9) for i in range(5))
    new = [Segment(0.0, 1.5, " w0 w1 w2 w3 w4", words=words, avg_logprob=-0.2, no_speech_prob=0.01,
                   compression_ratio=1.1)]
    assert choose_rerun([WORDS_SENTENCE], new).accept
