"""Loop and hallucination flags, and uncertain words, found from the segments alone."""

from __future__ import annotations

import pytest

from desktop.core.flags import (
    flagged_run,
    next_flagged,
    next_uncertain,
    repeated_phrase,
    segment_flags,
    text_compression_ratio,
    uncertain_words,
    word_spans,
)
from desktop.core.segment import Segment, Word


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thank you. Thank you. Thank you. Thank you.", ("thank you", 4)),
        ("I went to the shop, I went to the shop.", ("i went to the shop", 2)),
        ("I went to the shop and I went to the shop", None),  # not back to back
        ("no no no no no", ("no", 5)),
        ("no no no", None),  # ordinary emphasis
        ("very very good", None),
        ("The quick brown fox jumps over the lazy dog.", None),
        ("", None),
    ],
)
def test_repeated_phrase(text, expected):
    assert repeated_phrase(text) == expected


def test_compression_ratio_matches_whisper_definition():
    assert text_compression_ratio("") == 0.0
    assert text_compression_ratio("the same words " * 20) > 2.4
    assert text_compression_ratio("A short, ordinary sentence about the weather today.") < 2.4


def test_segment_flags_name_their_reason():
    segments = [
        Segment(0, 2, " Hello there, how are you doing today?", avg_logprob=-0.2, no_speech_prob=0.01,
                compression_ratio=1.3),
        Segment(2, 4, " Thank you. Thank you. Thank you. Thank you. Thank you.", compression_ratio=1.5),
        Segment(4, 6, " And then we went home.", compression_ratio=2.9),
        Segment(6, 8, " Thanks for watching!", avg_logprob=-0.8, no_speech_prob=0.85),
        Segment(8, 9, " See you soon."),
        Segment(9, 10, " See you soon."),
        Segment(10, 11, " Okay."),
        Segment(11, 12, " Okay."),  # a one-word answer repeated is normal
    ]
    flags = segment_flags(segments)
    kinds = [tuple(f.kind for f in row) for row in flags]
    assert kinds == [(), ("loop", "compression"), ("compression",), ("no-speech",), (), ("loop",), (), ()]
    assert "“thank you” repeats 5 times" in flags[1][0].reason
    assert "2.9×" in flags[2][0].reason
    assert "0.85" in flags[3][0].reason
    assert "segment before" in flags[5][0].reason


def test_next_flagged_and_runs():
    flags = [(), ("x",), ("x",), (), ("x",)]
    assert next_flagged(flags, 0) == 1
    assert next_flagged(flags, 2) == 4
    assert next_flagged(flags, 4) == 1  # wraps
    assert next_flagged(flags, 1, backwards=True) == 4
    assert next_flagged([(), ()], 0) is None
    assert flagged_run(flags, 2) == (1, 2)
    assert flagged_run(flags, 4) == (4, 4)
    assert flagged_run(flags, 3) is None


def _words(*pieces: tuple[str, float]) -> tuple[Word, ...]:
    return tuple(Word(float(i), i + 1.0, text, p) for i, (text, p) in enumerate(pieces))


def test_word_spans_locate_words_in_the_shown_text():
    segment = Segment(0, 3, " Hello brave world.", _words((" Hello", 0.9), (" brave", 0.3), (" world.", 0.45)))
    assert [(s.start, s.end) for s in word_spans(segment)] == [(0, 5), (6, 11), (12, 18)]
    assert [s.word.text for s in uncertain_words(segment)] == [" brave", " world."]
    assert [s.word.text for s in uncertain_words(segment, threshold=0.4)] == [" brave"]
    # Edited text: words that are no longer there are skipped, not misplaced.
    edited = Segment(0, 3, " Hello world.", segment.words)
    assert [(s.start, s.word.text) for s in word_spans(edited)] == [(0, " Hello"), (6, " world.")]


def test_next_uncertain_walks_forward_and_back_and_wraps():
    segments = [
        Segment(0, 3, " one two three", _words((" one", 0.2), (" two", 0.9), (" three", 0.1))),
        Segment(3, 4, " four", _words((" four", 0.95))),
        Segment(4, 6, " five six", _words((" five", 0.9), (" six", 0.3))),
    ]
    found = next_uncertain(segments, 0, -1)
    assert found is not None and (found[0], found[1].word.text) == (0, " one")
    found = next_uncertain(segments, 0, found[1].start)
    assert found is not None and (found[0], found[1].start) == (0, 8)
    found = next_uncertain(segments, 0, 8)
    assert found is not None and (found[0], found[1].word.text) == (2, " six")
    found = next_uncertain(segments, 2, 5)
    assert found is not None and found[0] == 0 and found[1].start == 0  # wraps
    back = next_uncertain(segments, 0, 0, backwards=True)
    assert back is not None and back[0] == 2
    assert next_uncertain([Segment(0, 1, " x")], 0, -1) is None
