"""The editor's table model over a core Transcript: display, edits through core rules, undo, structure
changes announced correctly (checked by Qt's model tester)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from desktop.core.segment import Segment, TranscriptInfo
from desktop.core.transcript import Transcript
from desktop.ui.timefmt import format_time, parse_time
from desktop.ui.transcript_model import END, START, TEXT, TranscriptModel

EDIT = Qt.ItemDataRole.EditRole


@pytest.fixture
def model(qtmodeltester):
    transcript = Transcript(
        TranscriptInfo("/a.wav"),
        [Segment(0.0, 2.0, " Hello there."), Segment(3.0, 5.0, " Second."), Segment(6.0, 65.5, " Third one.")],
    )
    shown = TranscriptModel()
    shown.set_transcript(transcript)
    qtmodeltester.check(shown)
    return shown


def test_rows_show_times_and_text(model):
    assert model.rowCount() == 3 and model.columnCount() == 3
    assert [model.index(2, c).data() for c in (START, END, TEXT)] == ["0:06.000", "1:05.500", "Third one."]
    assert model.headerData(TEXT, Qt.Orientation.Horizontal) == "Text"


def test_text_edit_keeps_the_leading_space_and_can_be_undone(model):
    edited: list[bool] = []
    model.edited.connect(lambda: edited.append(True))
    assert model.setData(model.index(1, TEXT), "Changed.", EDIT)
    assert model.transcript[1].text == " Changed."
    assert edited == [True]
    model.undo()
    assert model.index(1, TEXT).data() == "Second."
    model.redo()
    assert model.index(1, TEXT).data() == "Changed."


def test_time_edits_go_through_core_rules(model):
    failures: list[str] = []
    model.edit_failed.connect(failures.append)
    assert model.setData(model.index(1, START), "2.5", EDIT)
    assert model.transcript[1].start_s == 2.5
    assert not model.setData(model.index(1, START), "0:01.000", EDIT)  # overlaps segment 1
    assert failures and "would start before" in failures[-1]
    assert model.index(1, START).data() == "0:02.500"


def test_times_are_read_only_while_running_but_text_is_not(model):
    model.times_editable = False
    assert not model.flags(model.index(0, START)) & Qt.ItemFlag.ItemIsEditable
    assert model.flags(model.index(0, TEXT)) & Qt.ItemFlag.ItemIsEditable
    assert not model.setData(model.index(0, END), "0:01.000", EDIT)


def test_split_merge_append_and_undo_keep_rows_in_step(model):
    transcript = model.transcript
    transcript.split(0, 6)
    assert model.rowCount() == 4 and model.index(1, TEXT).data() == "there."
    transcript.merge_with_next(2)
    assert model.rowCount() == 3 and model.index(2, TEXT).data() == "Second. Third one."
    transcript.append([Segment(70.0, 71.0, " Streamed.")])
    assert model.rowCount() == 4
    transcript.undo()
    transcript.undo()
    assert [model.index(r, TEXT).data() for r in range(model.rowCount())] == [
        "Hello there.", "Second.", "Third one.", "Streamed."
    ]


def test_a_replaced_transcript_no_longer_drives_the_model(model):
    old = model.transcript
    fresh = Transcript(TranscriptInfo("/b.wav"), [Segment(0.0, 1.0, " B")])
    model.set_transcript(fresh)
    old.append([Segment(100.0, 101.0, " late")])
    assert model.rowCount() == 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("83.5", 83.5), ("1:23.5", 83.5), ("0:01:23,500", 83.5), ("2:00:00.000", 7200.0)],
)
def test_time_parsing(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)
    assert parse_time(format_time(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "1:75", "1:2:3:4", "-3"])
def test_bad_times_are_refused(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_each_transcript_has_its_own_undo_stack_which_goes_with_it(model):
    import gc
    import weakref

    first = model.transcript
    assert model.setData(model.index(0, TEXT), "One.", EDIT)
    other = Transcript(TranscriptInfo("/b.wav"), [Segment(0.0, 1.0, " B")])
    model.set_transcript(other)
    assert not model.undo_stack().canUndo()
    assert model.setData(model.index(0, TEXT), "B2", EDIT)
    # An edit of a transcript that is not shown (a re-run's answer arriving later) goes on its own stack.
    assert model.perform(lambda: first.set_text(1, " Two."), first)
    assert model.undo_stack(first).count() == 2 and model.undo_stack(other).count() == 1
    model.set_transcript(first)
    model.undo()
    model.undo()
    assert (first[0].text, first[1].text) == (" Hello there.", " Second.")
    # A refused edit reaches no stack.
    assert not model.perform(lambda: first.set_times(1, 0.0, 1.0))
    assert model.undo_stack(first).index() == 0
    gone = weakref.ref(other)
    del other
    gc.collect()
    assert gone() is None
