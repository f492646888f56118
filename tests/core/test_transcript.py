"""The transcript's edit rules: ordered, non-overlapping segments, and undo/redo of every edit."""

from __future__ import annotations

import pytest

from desktop.core.segment import Segment, TranscriptInfo, Word
from desktop.core.transcript import EditError, Transcript


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VERBATIM_HOME", str(tmp_path / "home"))


INFO = TranscriptInfo(source="/audio/talk.wav", language="en", duration_s=30.0, model="base")


def words_for(start_s: float, *pieces: tuple[str, float, float]) -> tuple[Word, ...]:
    return tuple(Word(s, e, text, 0.9) for text, s, e in pieces)


def sample() -> Transcript:
    """Three segments with gaps between them; the first has word timings."""
    return Transcript(
        INFO,
        [
            Segment(0.0, 2.0, " Hello world", words_for(0.0, (" Hello", 0.0, 0.8), (" world", 1.2, 2.0))),
            Segment(3.0, 5.0, " Second one"),
            Segment(6.0, 9.0, " Third segment here"),
        ],
    )


def snapshot(t: Transcript) -> tuple[Segment, ...]:
    return tuple(t.segments)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, index: int, removed: int, inserted: int) -> None:
        self.calls.append((index, removed, inserted))


# -- construction ------------------------------------------------------------------------------
def test_constructor_keeps_segments_in_order():
    t = sample()
    assert len(t) == 3
    assert [s.start_s for s in t.segments] == [0.0, 3.0, 6.0]
    assert t[1].text == " Second one"
    assert t.text == "Hello world Second one Third segment here"
    assert not t.can_undo() and not t.can_redo()


def test_segments_is_a_copy():
    t = sample()
    seen = t.segments
    t.delete(0)
    assert len(seen) == 3
    assert len(t.segments) == 2


@pytest.mark.parametrize(
    "segments, message",
    [
        ([Segment(-0.5, 1.0, "x")], "before 0:00"),
        ([Segment(2.0, 2.0, "x")], "end after"),
        ([Segment(3.0, 2.0, "x")], "end after"),
        ([Segment(0.0, 2.0, "a"), Segment(1.0, 3.0, "b")], "start before"),
        ([Segment(5.0, 6.0, "a"), Segment(1.0, 2.0, "b")], "start before"),
    ],
)
def test_constructor_rejects_broken_segments(segments, message):
    with pytest.raises(EditError, match=message):
        Transcript(INFO, segments)


def test_touching_segments_and_float_noise_are_allowed():
    t = Transcript(INFO, [Segment(0.0, 1.0, "a"), Segment(1.0, 2.0, "b"), Segment(1.9999, 3.0, "c")])
    assert len(t) == 3


def test_text_skips_empty_segments():
    t = Transcript(INFO, [Segment(0.0, 1.0, " a "), Segment(1.0, 2.0, "   "), Segment(2.0, 3.0, "b")])
    assert t.text == "a b"


# -- streaming ---------------------------------------------------------------------------------
def test_append_streams_and_notifies():
    t = Transcript(INFO)
    calls = Recorder()
    t.subscribe(calls)
    t.append([Segment(0.0, 1.0, "a"), Segment(1.0, 2.0, "b")])
    t.append([Segment(2.5, 3.0, "c")])
    t.append([])
    assert [s.text for s in t.segments] == ["a", "b", "c"]
    assert calls.calls == [(0, 0, 2), (2, 0, 1)]
    assert not t.can_undo()  # the engine's output is the starting point, not an edit


def test_append_rejects_overlap_and_keeps_the_old_content():
    t = Transcript(INFO, [Segment(0.0, 2.0, "a")])
    calls = Recorder()
    t.subscribe(calls)
    with pytest.raises(EditError):
        t.append([Segment(2.0, 3.0, "b"), Segment(1.5, 4.0, "overlaps a")])
    assert [s.text for s in t.segments] == ["a"]
    with pytest.raises(EditError):
        t.append([Segment(1.0, 3.0, "overlaps the existing one")])
    with pytest.raises(EditError):
        t.append([Segment(3.0, 3.0, "empty span")])
    assert [s.text for s in t.segments] == ["a"]
    assert calls.calls == []


def test_replace_all_swaps_content_and_clears_history():
    t = sample()
    t.delete(0)
    calls = Recorder()
    t.subscribe(calls)
    t.replace_all([Segment(0.0, 1.0, "new")])
    assert [s.text for s in t.segments] == ["new"]
    assert calls.calls == [(0, 2, 1)]
    assert not t.can_undo() and not t.can_redo()


def test_replace_all_rejects_overlap_and_keeps_old_content():
    t = sample()
    before = snapshot(t)
    with pytest.raises(EditError):
        t.replace_all([Segment(0.0, 2.0, "a"), Segment(1.0, 3.0, "b")])
    assert snapshot(t) == before


# -- set_text ----------------------------------------------------------------------------------
def test_set_text_drops_words_and_undoes():
    t = sample()
    before = snapshot(t)
    t.set_text(0, " Hello there")
    assert t[0].text == " Hello there"
    assert t[0].words == ()
    assert (t[0].start_s, t[0].end_s) == (0.0, 2.0)
    assert t.undo_description() == "Edit text"
    t.undo()
    assert snapshot(t) == before
    assert t[0].words  # undo brings the word timings back
    t.redo()
    assert t[0].text == " Hello there" and t[0].words == ()


def test_set_text_to_the_same_text_is_not_an_edit():
    t = sample()
    calls = Recorder()
    t.subscribe(calls)
    t.set_text(1, " Second one")
    assert not t.can_undo()
    assert calls.calls == []


# -- set_times ---------------------------------------------------------------------------------
def test_set_times_rounds_to_ms_and_keeps_words_inside():
    t = sample()
    t.set_times(0, 0.5, 2.00041)
    assert (t[0].start_s, t[0].end_s) == (0.5, 2.0)
    # " Hello" started before the new start, so its timing no longer belongs to the segment.
    assert [w.text for w in t[0].words] == [" world"]
    t.undo()
    assert [w.text for w in t[0].words] == [" Hello", " world"]


def test_set_times_to_touch_neighbours_is_allowed():
    t = sample()
    t.set_times(1, 2.0, 6.0)
    assert (t[1].start_s, t[1].end_s) == (2.0, 6.0)


@pytest.mark.parametrize(
    "index, start_s, end_s, message",
    [
        (1, 4.0, 4.0, "end after"),
        (1, 4.5, 3.5, "end after"),
        (0, -1.0, 1.0, "before 0:00"),
        (1, 1.5, 5.0, "start before"),  # into segment 1
        (1, 3.0, 6.5, "start before"),  # into segment 3
        (0, 0.0, 3.5, "start before"),
    ],
)
def test_set_times_rejects_bad_times(index, start_s, end_s, message):
    t = sample()
    before = snapshot(t)
    calls = Recorder()
    t.subscribe(calls)
    with pytest.raises(EditError, match=message):
        t.set_times(index, start_s, end_s)
    assert snapshot(t) == before
    assert not t.can_undo()
    assert calls.calls == []


def test_set_times_unchanged_is_not_an_edit():
    t = sample()
    t.set_times(1, 3.0001, 4.9999)  # rounds back to the same times
    assert not t.can_undo()


def test_overlap_message_names_both_segments():
    t = sample()
    with pytest.raises(EditError) as caught:
        t.set_times(1, 1.5, 5.0)
    assert "Segment 2 would start before segment 1 ends (0:01.500 < 0:02.000)" in str(caught.value)


# -- split -------------------------------------------------------------------------------------
def test_split_proportional_time_and_texts():
    t = Transcript(INFO, [Segment(10.0, 20.0, "aaaaa bbbbb")])
    t.split(0, 5)
    assert [s.text for s in t.segments] == ["aaaaa", "bbbbb"]
    assert (t[0].start_s, t[0].end_s) == (10.0, 14.545)
    assert (t[1].start_s, t[1].end_s) == (14.545, 20.0)


def test_split_at_given_time_partitions_words():
    t = sample()
    t.split(0, 6, at_s=1.0)
    left, right = t[0], t[1]
    assert (left.text, right.text) == (" Hello", " world")  # keeps whisper's leading space
    assert (left.start_s, left.end_s, right.start_s, right.end_s) == (0.0, 1.0, 1.0, 2.0)
    assert [w.text for w in left.words] == [" Hello"]
    assert [w.text for w in right.words] == [" world"]
    assert len(t) == 4
    assert t.undo_description() == "Split segment"


def test_split_undo_redo():
    t = sample()
    before = snapshot(t)
    calls = Recorder()
    t.subscribe(calls)
    t.split(2, 7, at_s=7.0)
    after = snapshot(t)
    t.undo()
    assert snapshot(t) == before
    t.redo()
    assert snapshot(t) == after
    assert calls.calls == [(2, 1, 2), (2, 2, 1), (2, 1, 2)]


@pytest.mark.parametrize(
    "at_char, at_s, message",
    [
        (0, None, "inside the text"),
        (12, None, "inside the text"),
        (-1, None, "inside the text"),
        (1, None, "need some text"),  # " " | "Hello world": the left part is blank
        (6, 0.0, "inside the segment"),
        (6, 2.0, "inside the segment"),
        (6, 5.0, "inside the segment"),
    ],
)
def test_split_errors(at_char, at_s, message):
    t = sample()
    before = snapshot(t)
    with pytest.raises(EditError, match=message):
        t.split(0, at_char, at_s)
    assert snapshot(t) == before
    assert not t.can_undo()


def test_split_without_time_snaps_to_word_boundary():
    words = words_for(0.0, (" Hello", 0.0, 1.6), (" world", 1.7, 2.0))
    t = Transcript(INFO, [Segment(0.0, 2.0, " Hello world", words)])
    t.split(0, 6)
    assert [w.text for w in t[0].words] == [" Hello"]
    assert [w.text for w in t[1].words] == [" world"]


# -- merge -------------------------------------------------------------------------------------
def test_merge_with_next_joins_text_times_and_words():
    t = sample()
    before = snapshot(t)
    calls = Recorder()
    t.subscribe(calls)
    t.merge_with_next(0)
    assert len(t) == 2
    merged = t[0]
    assert (merged.start_s, merged.end_s) == (0.0, 5.0)
    assert merged.text == " Hello world Second one"
    assert [w.text for w in merged.words] == [" Hello", " world"]
    assert t.undo_description() == "Merge segments"
    t.undo()
    assert snapshot(t) == before
    t.redo()
    assert t[0].text == " Hello world Second one"
    assert calls.calls == [(0, 2, 1), (0, 1, 2), (0, 2, 1)]


@pytest.mark.parametrize("index", [2, 3, -1])
def test_merge_without_next_is_an_error(index):
    t = sample()
    with pytest.raises(EditError, match="no next segment"):
        t.merge_with_next(index)
    assert len(t) == 3


# -- insert / delete / replace_range -------------------------------------------------------------
def test_insert_in_a_gap_and_undo():
    t = sample()
    before = snapshot(t)
    calls = Recorder()
    t.subscribe(calls)
    t.insert(1, Segment(2.0, 3.0, " inserted"))
    assert [s.text for s in t.segments][:3] == [" Hello world", " inserted", " Second one"]
    t.undo()
    assert snapshot(t) == before
    t.redo()
    assert t[1].text == " inserted"
    assert calls.calls == [(1, 0, 1), (1, 1, 0), (1, 0, 1)]


@pytest.mark.parametrize(
    "index, segment",
    [
        (1, Segment(1.5, 3.0, "overlaps the first")),
        (1, Segment(2.0, 3.5, "overlaps the second")),
        (0, Segment(3.0, 4.0, "out of order")),
        (3, Segment(8.0, 10.0, "overlaps the last")),
        (1, Segment(2.5, 2.5, "empty span")),
    ],
)
def test_insert_rejects_overlap(index, segment):
    t = sample()
    before = snapshot(t)
    with pytest.raises(EditError):
        t.insert(index, segment)
    assert snapshot(t) == before
    assert not t.can_undo()


def test_insert_at_end():
    t = sample()
    t.insert(3, Segment(9.0, 10.0, " last"))
    assert t[3].text == " last"
    t.undo()
    assert len(t) == 3


def test_delete_and_undo():
    t = sample()
    before = snapshot(t)
    calls = Recorder()
    t.subscribe(calls)
    t.delete(1)
    assert [s.text for s in t.segments] == [" Hello world", " Third segment here"]
    assert t.undo_description() == "Delete segment"
    t.undo()
    assert snapshot(t) == before
    assert t.redo_description() == "Delete segment"
    t.redo()
    assert len(t) == 2
    assert calls.calls == [(1, 1, 0), (1, 0, 1), (1, 1, 0)]


def test_delete_out_of_range_is_an_error():
    t = sample()
    with pytest.raises(IndexError):
        t.delete(3)
    assert not t.can_undo()


def test_replace_range_and_undo():
    t = sample()
    before = snapshot(t)
    calls = Recorder()
    t.subscribe(calls)
    new = [Segment(2.5, 4.0, " x"), Segment(4.0, 5.5, " y"), Segment(5.5, 6.0, " z")]
    t.replace_range(1, 1, new, "Retranscribe")
    assert [s.text for s in t.segments] == [" Hello world", " x", " y", " z", " Third segment here"]
    assert t.undo_description() == "Retranscribe"
    t.undo()
    assert snapshot(t) == before
    t.redo()
    assert len(t) == 5
    assert calls.calls == [(1, 1, 3), (1, 3, 1), (1, 1, 3)]


def test_replace_range_rejects_overlap_and_bad_segments():
    t = sample()
    before = snapshot(t)
    with pytest.raises(EditError):
        t.replace_range(1, 1, [Segment(1.0, 4.0, "overlaps the first")], "x")
    with pytest.raises(EditError):
        t.replace_range(1, 1, [Segment(3.5, 4.0, "a"), Segment(3.8, 4.5, "b")], "x")
    with pytest.raises(EditError):
        t.replace_range(1, 1, [Segment(-1.0, 4.0, "negative")], "x")
    assert snapshot(t) == before
    assert not t.can_undo()


# -- history -------------------------------------------------------------------------------------
def test_undo_and_redo_walk_a_chain_of_edits():
    t = sample()
    states = [snapshot(t)]
    t.set_text(1, " changed")
    states.append(snapshot(t))
    t.set_times(2, 6.5, 8.0)
    states.append(snapshot(t))
    t.split(2, 6, at_s=7.0)
    states.append(snapshot(t))
    t.merge_with_next(0)
    states.append(snapshot(t))
    t.delete(0)
    states.append(snapshot(t))

    for expected in reversed(states[:-1]):
        t.undo()
        assert snapshot(t) == expected
    assert not t.can_undo()
    t.undo()  # nothing left: a no-op
    assert snapshot(t) == states[0]

    for expected in states[1:]:
        t.redo()
        assert snapshot(t) == expected
    assert not t.can_redo()
    t.redo()
    assert snapshot(t) == states[-1]


def test_a_new_edit_clears_redo():
    t = sample()
    t.set_text(0, " one")
    t.set_text(1, " two")
    t.undo()
    assert t.can_redo()
    t.set_text(2, " three")
    assert not t.can_redo()
    assert t.redo_description() == ""
    t.redo()  # nothing to redo
    assert t[1].text == " Second one"
    assert t[2].text == " three"


def test_a_rejected_edit_keeps_redo():
    t = sample()
    t.set_text(0, " one")
    t.undo()
    with pytest.raises(EditError):
        t.set_times(1, 0.0, 5.0)
    assert t.can_redo()


def test_descriptions_follow_the_history():
    t = sample()
    assert (t.undo_description(), t.redo_description()) == ("", "")
    t.delete(2)
    t.set_text(0, "x")
    assert t.undo_description() == "Edit text"
    t.undo()
    assert (t.undo_description(), t.redo_description()) == ("Delete segment", "Edit text")


def test_every_listener_is_called():
    t = sample()
    first, second = Recorder(), Recorder()
    t.subscribe(first)
    t.subscribe(second)
    t.set_text(0, "x")
    t.undo()
    assert first.calls == second.calls == [(0, 1, 1), (0, 1, 1)]


def test_negative_index_is_rejected_or_handled():
    t = sample()
    calls = Recorder()
    t.subscribe(calls)
    try:
        t.delete(-1)
    except IndexError:
        assert len(t) == 3 and calls.calls == [] and not t.can_undo()
    else:
        assert [s.text for s in t.segments] == [" Hello world", " Second one"]
        assert calls.calls == [(2, 1, 0)]


def test_insert_past_the_end_undoes_cleanly():
    t = sample()
    before = snapshot(t)
    try:
        t.insert(10, Segment(9.0, 10.0, " late"))
    except IndexError:
        assert snapshot(t) == before
        return
    t.undo()
    assert snapshot(t) == before


# -- nudging times -----------------------------------------------------------------------------------
def test_nudge_moves_an_edge_and_undoes():
    t = sample()
    before = snapshot(t)
    assert t.nudge(1, "start", -0.1) == 2.9
    assert t.nudge(1, "end", 0.1) == 5.1
    assert (t[1].start_s, t[1].end_s) == (2.9, 5.1)
    t.undo()
    t.undo()
    assert snapshot(t) == before


@pytest.mark.parametrize(
    ("index", "edge", "delta_s", "expected_s"),
    [
        (1, "start", -5.0, 2.0),  # stops at the previous segment's end
        (1, "end", 5.0, 6.0),  # stops at the next segment's start
        (0, "start", -1.0, 0.0),  # never before 0:00
        (1, "start", 10.0, 4.95),  # keeps MIN_SEGMENT_S of the segment
        (1, "end", -10.0, 3.05),
        (2, "end", 100.0, 109.0),  # the last segment may grow freely
    ],
)
def test_nudge_clamps_instead_of_overlapping(index, edge, delta_s, expected_s):
    t = Transcript(INFO, [Segment(0.3, 2.0, " a"), Segment(3.0, 5.0, " b"), Segment(6.0, 9.0, " c")])
    assert t.nudge(index, edge, delta_s) == expected_s
    assert (t[index].start_s if edge == "start" else t[index].end_s) == expected_s
    for before, after in zip(t.segments, t.segments[1:]):
        assert after.start_s >= before.end_s


@pytest.mark.parametrize(
    ("index", "edge", "delta_s", "message"),
    [(0, "start", -0.1, "before 0:00"), (1, "start", 0.1, "too short"), (1, "end", 0.1, "overlap the next")],
)
def test_nudge_against_a_wall_is_refused_and_changes_nothing(index, edge, delta_s, message):
    t = Transcript(INFO, [Segment(0.0, 2.0, " a"), Segment(2.0, 2.05, " b"), Segment(2.05, 3.0, " c")])
    before = snapshot(t)
    with pytest.raises(EditError, match=message):
        t.nudge(index, edge, delta_s)
    assert snapshot(t) == before and not t.can_undo()


def test_nudge_keeps_only_words_inside():
    t = sample()
    t.nudge(0, "end", -0.5)
    assert [w.text for w in t[0].words] == [" Hello"]


def test_nudge_rejects_an_unknown_edge():
    with pytest.raises(ValueError, match="edge"):
        sample().nudge(0, "middle", 0.1)


# -- coalesced typing ----------------------------------------------------------------------------------
def test_text_edits_with_one_merge_key_are_one_undo_step():
    t = sample()
    depth = t.undo_depth
    for text in (" Hel", " Hello", " Hello you"):
        t.set_text(1, text, merge_key="typing-1")
    assert t.undo_depth == depth + 1
    assert t[1].text == " Hello you"
    t.undo()
    assert t[1].text == " Second one"
    t.redo()
    assert t[1].text == " Hello you"


def test_merge_key_does_not_join_other_rows_keys_or_after_undo():
    t = sample()
    t.set_text(1, " a", merge_key="k")
    t.set_text(2, " b", merge_key="k")  # another row
    t.set_text(2, " c", merge_key="other")  # another key
    assert t.undo_depth == 3
    t.undo()
    t.set_text(2, " d", merge_key="k")  # after an undo: a new step, redo is gone
    assert t.undo_depth == 3 and not t.can_redo()
    t.undo()
    assert t[2].text == " b"


def test_revision_counts_every_change_but_not_a_refused_one():
    t = sample()
    revision = t.revision
    t.set_text(0, " x")
    t.undo()
    t.redo()
    assert t.revision == revision + 3
    with pytest.raises(EditError):
        t.set_times(1, 0.0, 5.0)
    t.set_text(0, " x")  # unchanged: not an edit
    assert t.revision == revision + 3
