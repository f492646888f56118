"""Find and replace over a transcript: case, whole word, regular expressions, one undo step for all."""

from __future__ import annotations

import pytest

from desktop.core.search import (
    Match,
    SearchError,
    SearchOptions,
    find_all,
    find_next,
    replace_all,
    replace_one,
)
from desktop.core.segment import Segment, TranscriptInfo, Word
from desktop.core.transcript import Transcript


def sample() -> Transcript:
    return Transcript(
        TranscriptInfo("/a.wav"),
        [
            Segment(0.0, 2.0, " The cat sat.", (Word(0.0, 1.0, " The", 0.9), Word(1.0, 2.0, " cat sat.", 0.9))),
            Segment(3.0, 5.0, " Concatenate the CAT."),
            Segment(6.0, 8.0, " Nothing here."),
            Segment(9.0, 11.0, " cat 2024 and cat 1999"),
        ],
    )


def test_plain_search_ignores_case_by_default_and_reports_shown_offsets():
    matches = find_all(sample().segments, SearchOptions("cat"))
    assert matches == [Match(0, 4, 7), Match(1, 3, 6), Match(1, 16, 19), Match(3, 0, 3), Match(3, 13, 16)]


def test_case_sensitive_and_whole_word():
    segments = sample().segments
    assert [m.row for m in find_all(segments, SearchOptions("CAT", case_sensitive=True))] == [1]
    assert [(m.row, m.start) for m in find_all(segments, SearchOptions("cat", whole_word=True))] == [
        (0, 4), (1, 16), (3, 0), (3, 13)]


def test_regex_and_its_errors():
    segments = sample().segments
    assert [(m.row, m.start, m.end) for m in find_all(segments, SearchOptions(r"\d{4}", regex=True))] == [
        (3, 4, 8), (3, 17, 21)]
    # Without regex the same text is literal.
    assert find_all(segments, SearchOptions(r"\d{4}")) == []
    with pytest.raises(SearchError, match="Invalid regular expression"):
        find_all(segments, SearchOptions("(unclosed", regex=True))
    with pytest.raises(SearchError, match="Type something"):
        find_all(segments, SearchOptions(""))


def test_find_next_and_previous_wrap_around():
    segments = sample().segments
    options = SearchOptions("cat", whole_word=True)
    assert find_next(segments, options, 1, 0) == Match(1, 16, 19)
    assert find_next(segments, options, 3, 14) == Match(0, 4, 7)  # wraps to the start
    assert find_next(segments, options, 0, 4, backwards=True) == Match(3, 13, 16)  # wraps to the end
    assert find_next(segments, SearchOptions("dog"), 0, 0) is None


def test_replace_all_is_one_undoable_edit_that_keeps_the_leading_space():
    t = sample()
    before = tuple(t.segments)
    assert replace_all(t, SearchOptions("cat", whole_word=True), "dog") == 4
    assert [s.text for s in t.segments] == [" The dog sat.", " Concatenate the dog.", " Nothing here.",
                                             " dog 2024 and dog 1999"]
    assert t[0].words == ()  # edited text no longer matches its word timings
    assert t.undo_description() == "Replace 4 matches"
    t.undo()
    assert tuple(t.segments) == before
    t.redo()
    assert t[3].text == " dog 2024 and dog 1999"


def test_regex_replacement_uses_groups():
    t = sample()
    assert replace_all(t, SearchOptions(r"cat (\d+)", regex=True), r"\1 cats") == 2
    assert t[3].text == " 2024 cats and 1999 cats"
    with pytest.raises(SearchError, match="Invalid replacement"):
        replace_all(sample(), SearchOptions(r"cat", regex=True), r"\9")


def test_replace_all_without_matches_is_not_an_edit():
    t = sample()
    assert replace_all(t, SearchOptions("zebra"), "x") == 0
    assert not t.can_undo()


def test_replace_one_touches_only_that_match():
    t = sample()
    replace_one(t, SearchOptions("cat"), "dog", Match(3, 13, 16))
    assert t[3].text == " cat 2024 and dog 1999"
    t.undo()
    assert t[3].text == " cat 2024 and cat 1999"
