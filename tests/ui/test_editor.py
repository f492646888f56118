"""The transcript editor driven from the keyboard in the real window: typing (saved as it goes), split at the
cursor, merge, insert, delete, nudge, find/replace, undo; each checked in the Qt model AND in the SQLite
library reopened from disk. Also flags, uncertain words and the shortcuts dialog."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLineEdit

from desktop.core.jobs import JobState
from desktop.core.segment import Segment, Word
from desktop.core.settings import Settings
from desktop.core.store import Store
from desktop.ui.editor import LIVE_SAVE_MS
from desktop.ui.main_window import MainWindow
from desktop.ui.transcript_model import END, FLAGS_ROLE, START, TEXT, UNCERTAIN_ROLE
from desktop.workers.model_worker import ModelWorker

ALT = Qt.KeyboardModifier.AltModifier
CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


def _words(start_s: float, *pieces: tuple[str, float]) -> tuple[Word, ...]:
    return tuple(Word(start_s + i * 0.5, start_s + i * 0.5 + 0.4, text, p) for i, (text, p) in enumerate(pieces))


SEGMENTS = [
    Segment(0.0, 2.0, " The meeting starts at nine.", _words(0.0, (" The", 0.95), (" meeting", 0.9),
                                                              (" starts", 0.3), (" at", 0.9), (" nine.", 0.41)),
            avg_logprob=-0.3, no_speech_prob=0.01, compression_ratio=1.2),
    Segment(3.0, 5.0, " Bring the cat report.", avg_logprob=-0.2, no_speech_prob=0.02, compression_ratio=1.1),
    Segment(6.0, 9.0, " Thank you. Thank you. Thank you. Thank you.", avg_logprob=-0.4, no_speech_prob=0.1,
            compression_ratio=1.4),
    Segment(9.0, 11.0, " The cat left early.", avg_logprob=-0.2, no_speech_prob=0.02, compression_ratio=1.1),
]


class Editor:
    """A window over a library holding one finished job; `stored()` reads the job back from a fresh Store."""

    def __init__(self, qtbot, segments=SEGMENTS):
        self.store = Store(owner=True)
        job = self.store.add_job("/audio/meeting.wav")
        self.store.mark_started(job.id, 11.0, "en", 0.99, "base")
        self.store.append_segments(job.id, segments)
        self.store.set_state(job.id, JobState.DONE)
        self.job_id = job.id
        self.worker = ModelWorker(Settings())  # never started: these tests need no model
        self.window = MainWindow(self.store, self.worker, Settings())
        self.window.show_error = lambda title, message: pytest.fail(f"{title}: {message}")
        qtbot.addWidget(self.window)
        self.window.show()
        qtbot.waitExposed(self.window)
        self.editor = self.window.editor
        self.model = self.window.transcript_model
        self.view = self.editor.view
        assert self.model.rowCount() == len(segments)

    def texts(self) -> list[str]:
        return [self.model.index(r, TEXT).data() for r in range(self.model.rowCount())]

    def stored(self) -> list[Segment]:
        with Store(self.store.path) as fresh:
            return fresh.segments(self.job_id)

    def stored_texts(self) -> list[str]:
        return [s.text.strip() for s in self.stored()]

    def open_cell(self, qtbot, row: int) -> QLineEdit:
        index = self.model.index(row, TEXT)
        self.view.setFocus()
        self.view.setCurrentIndex(index)
        qtbot.keyClick(self.view, Qt.Key.Key_F2)
        editor = self.editor.delegate.active_editor()
        assert isinstance(editor, QLineEdit)
        return editor

    def press_return(self, qtbot, cell: QLineEdit) -> None:
        """Enter in a cell; Qt commits and closes the editor from the event loop, so wait for that."""
        qtbot.keyClick(cell, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: self.editor.delegate.active_editor() is None, timeout=1000)

    def close(self) -> None:
        self.window.close()
        self.store.close()


@pytest.fixture
def ed(qtbot):
    made = Editor(qtbot)
    yield made
    made.close()


def test_typing_is_saved_while_the_cell_is_open_and_undoes_in_one_step(qtbot, qtmodeltester, ed):
    qtmodeltester.check(ed.model)
    cell = ed.open_cell(qtbot, 1)
    cell.end(False)
    qtbot.keyClicks(cell, " today")
    # Still editing, nothing pressed after the last key: the text reaches the library on its own.
    qtbot.waitUntil(lambda: ed.stored_texts()[1] == "Bring the cat report. today", timeout=LIVE_SAVE_MS + 1000)
    assert ed.editor.delegate.active_editor() is cell
    qtbot.keyClick(cell, Qt.Key.Key_Backspace)
    qtbot.keyClicks(cell, "y!")
    ed.press_return(qtbot, cell)
    assert ed.texts()[1] == "Bring the cat report. today!"
    assert ed.stored_texts()[1] == "Bring the cat report. today!"
    assert ed.stored()[1].text.startswith(" ")  # Whisper's leading space is kept for exports
    # All that typing is one undo step.
    ed.window.undo_action.trigger()
    assert ed.texts()[1] == "Bring the cat report."
    assert ed.stored_texts()[1] == "Bring the cat report."
    ed.window.redo_action.trigger()
    assert ed.stored_texts()[1] == "Bring the cat report. today!"


def test_split_at_the_cursor_uses_word_times_then_merge_and_undo(qtbot, ed):
    cell = ed.open_cell(qtbot, 0)
    cell.setCursorPosition(len("The meeting"))
    qtbot.keyClick(cell, Qt.Key.Key_Return, CTRL)  # Ctrl+Return: split here
    assert ed.texts()[:2] == ["The meeting", "starts at nine."]
    # The cut falls between the words' times ("meeting" ends 0.9, "starts" begins 1.0), not in proportion.
    assert ed.model.index(0, END).data() == "0:00.950" and ed.model.index(1, START).data() == "0:00.950"
    assert [s.text.strip() for s in ed.stored()[:2]] == ["The meeting", "starts at nine."]
    assert ed.view.currentIndex().row() == 1

    ed.view.setCurrentIndex(ed.model.index(0, TEXT))
    qtbot.keyClick(ed.view, Qt.Key.Key_J, CTRL)  # merge back
    assert ed.texts()[0] == "The meeting starts at nine." and ed.model.rowCount() == 4
    assert len(ed.stored()) == 4

    ed.window.undo_action.trigger()  # undo the merge
    assert ed.model.rowCount() == 5 and len(ed.stored()) == 5
    ed.window.undo_action.trigger()  # undo the split
    assert ed.texts() == [s.text.strip() for s in SEGMENTS]
    assert ed.stored() == SEGMENTS  # words and decoder statistics come back too


def test_split_without_an_open_cell_explains_itself(qtbot, ed):
    ed.view.setFocus()
    ed.view.setCurrentIndex(ed.model.index(0, TEXT))
    qtbot.keyClick(ed.view, Qt.Key.Key_Return, CTRL)
    assert ed.model.rowCount() == 4
    assert "put the cursor" in ed.window.statusBar().currentMessage()


def test_insert_and_delete_from_the_keyboard_and_undo(qtbot, ed):
    ed.view.setFocus()
    ed.view.setCurrentIndex(ed.model.index(0, TEXT))
    qtbot.keyClick(ed.view, Qt.Key.Key_I, CTRL)  # a new segment in the gap 2.0-3.0, opened for typing
    cell = ed.editor.delegate.active_editor()
    assert cell is not None and ed.model.rowCount() == 5
    qtbot.keyClicks(cell, "Inserted words.")
    ed.press_return(qtbot, cell)
    assert ed.texts()[1] == "Inserted words."
    assert [(s.start_s, s.end_s) for s in ed.stored()[:3]] == [(0.0, 2.0), (2.0, 3.0), (3.0, 5.0)]

    ed.view.setCurrentIndex(ed.model.index(2, TEXT))
    qtbot.keyClick(ed.view, Qt.Key.Key_D, CTRL | SHIFT)
    assert "Bring the cat report." not in ed.texts() and len(ed.stored()) == 4
    ed.window.undo_action.trigger()
    assert ed.stored_texts()[2] == "Bring the cat report."
    ed.window.undo_action.trigger()  # the typed text
    ed.window.undo_action.trigger()  # the insert
    assert ed.stored() == SEGMENTS


def test_nudging_times_by_keyboard_never_overlaps(qtbot, ed):
    ed.view.setFocus()
    ed.view.setCurrentIndex(ed.model.index(1, START))
    qtbot.keyClick(ed.view, Qt.Key.Key_Left, ALT)
    assert ed.model.index(1, START).data() == "0:02.900"
    qtbot.keyClick(ed.view, Qt.Key.Key_Right, ALT | SHIFT)
    assert ed.model.index(1, END).data() == "0:05.100"
    assert (ed.stored()[1].start_s, ed.stored()[1].end_s) == (2.9, 5.1)
    # Segment 3 ends exactly where segment 4 starts: its end cannot move later.
    ed.view.setCurrentIndex(ed.model.index(2, END))
    qtbot.keyClick(ed.view, Qt.Key.Key_Right, ALT | SHIFT)
    assert ed.model.index(2, END).data() == "0:09.000"
    assert "overlap the next" in ed.window.edit_error.text()
    # Ten steps earlier for segment 2's start stop at segment 1's end.
    ed.view.setCurrentIndex(ed.model.index(1, START))
    for _ in range(10):
        qtbot.keyClick(ed.view, Qt.Key.Key_Left, ALT)
    assert ed.stored()[1].start_s == 2.0
    # 2 + 9 moves were made; the refused ones left nothing to undo.
    for _ in range(11):
        ed.window.undo_action.trigger()
    assert ed.stored() == SEGMENTS
    assert not ed.window.undo_action.isEnabled()


def test_find_and_replace_all_is_one_undo_step(qtbot, ed):
    qtbot.keyClick(ed.view, Qt.Key.Key_H, CTRL)
    bar = ed.editor.find_bar
    assert bar.isVisible()
    bar.find_field.setText("cat")
    bar.word_box.setChecked(True)
    assert bar.status.text() == "2 found"
    qtbot.keyClick(bar.find_field, Qt.Key.Key_Return)  # next match
    assert ed.view.currentIndex().row() == 1 and ed.editor.delegate.current_match == (1, 10, 13)
    assert 'background-color:#ffb74d;">cat</span>' in ed.editor.delegate.html_for(ed.model.index(1, TEXT))
    bar.replace_field.setText("dog")
    bar.replace_all_button.click()
    assert ed.texts()[1] == "Bring the dog report." and ed.texts()[3] == "The dog left early."
    assert ed.stored_texts()[1] == "Bring the dog report." and ed.stored_texts()[3] == "The dog left early."
    assert "replace 2 matches" in ed.window.undo_action.text().lower()
    ed.window.undo_action.trigger()
    assert ed.stored() == SEGMENTS

    # A regular expression with a group; a broken one is reported, nothing changes.
    bar.regex_box.setChecked(True)
    bar.find_field.setText("(")
    assert "Invalid regular expression" in bar.status.text()
    bar.find_field.setText(r"(\w+) report")
    bar.replace_field.setText(r"report on \1")
    assert ed.editor.replace_everywhere() == 1
    assert ed.stored_texts()[1] == "Bring the report on cat."
    qtbot.keyClick(bar.find_field, Qt.Key.Key_Escape)
    assert not bar.isVisible()


def test_replace_one_match_at_a_time(qtbot, ed):
    ed.editor.find_bar.open_bar()
    bar = ed.editor.find_bar
    bar.find_field.setText("Thank you")
    bar.replace_field.setText("Thanks")
    assert ed.editor.find()
    bar.replace_button.click()
    assert ed.texts()[2] == "Thanks. Thank you. Thank you. Thank you."
    assert ed.editor.delegate.current_match == (2, 8, 17)  # moved on to the next one
    assert ed.stored_texts()[2] == "Thanks. Thank you. Thank you. Thank you."


def test_flagged_segment_is_marked_and_next_flag_finds_it(qtbot, qtmodeltester, ed):
    qtmodeltester.check(ed.model)
    flags = ed.model.index(2, TEXT).data(FLAGS_ROLE)
    assert [f.kind for f in flags] == ["loop"]
    assert not ed.model.index(0, START).data(Qt.ItemDataRole.DecorationRole)
    assert not ed.model.index(2, START).data(Qt.ItemDataRole.DecorationRole).isNull()
    assert "repeats 4 times" in ed.model.index(2, START).data(Qt.ItemDataRole.ToolTipRole)
    ed.view.setCurrentIndex(ed.model.index(0, TEXT))
    qtbot.keyClick(ed.view, Qt.Key.Key_F7)
    assert ed.view.currentIndex().row() == 2
    assert "looped" in ed.window.statusBar().currentMessage()
    assert ed.editor.flagged_rows() == (2, 2)
    # Fixing the text clears the flag.
    assert ed.model.setData(ed.model.index(2, TEXT), "Thank you.", Qt.ItemDataRole.EditRole)
    assert ed.model.index(2, TEXT).data(FLAGS_ROLE) == ()
    assert ed.model.index(2, START).data(Qt.ItemDataRole.DecorationRole) is None


def test_uncertain_words_are_coloured_and_f8_selects_them(qtbot, ed):
    spans = ed.model.index(0, TEXT).data(UNCERTAIN_ROLE)
    assert [s.word.text for s in spans] == [" starts", " nine."]
    html = ed.editor.delegate.html_for(ed.model.index(0, TEXT))
    assert '<span style="background-color:#fde2c4; color:#9a3412; text-decoration:underline;">starts</span>' in html
    assert "nine.</span>" in html and ">meeting<" not in html
    assert "starts” 30%" in ed.model.index(0, TEXT).data(Qt.ItemDataRole.ToolTipRole)
    ed.view.setFocus()
    qtbot.keyClick(ed.view, Qt.Key.Key_F8)
    cell = ed.editor.delegate.active_editor()
    assert cell is not None and cell.selectedText() == "starts"
    assert "30% sure" in ed.window.statusBar().currentMessage()
    qtbot.keyClick(cell, Qt.Key.Key_F8)
    cell = ed.editor.delegate.active_editor()
    assert cell is not None and cell.selectedText() == "nine."
    # Typing over the selected word corrects it.
    qtbot.keyClicks(cell, "ten.")
    ed.press_return(qtbot, cell)
    assert ed.stored_texts()[0] == "The meeting starts at ten."
    QApplication.processEvents()
    # The words no longer match the edited text, so nothing is marked uncertain any more there.
    assert ed.model.index(0, TEXT).data(UNCERTAIN_ROLE) == []


def test_shortcuts_dialog_is_generated_from_the_actions(qtbot, ed):
    dialog = ed.window.shortcuts_dialog()
    qtbot.addWidget(dialog)
    listed = dict(dialog.listed())
    for action in (ed.editor.split_action, ed.editor.merge_action, ed.editor.next_uncertain_action,
                   ed.editor.rerun_action, ed.editor.start_earlier_action, ed.window.undo_action):
        keys = action.shortcut().toString()
        assert keys in " ".join(listed), keys
    assert listed["F8"] == "Review: Next uncertain word"
    assert listed["Alt+Shift+Left"] == "Edit: End earlier"
    # Change a shortcut: the dialog follows.
    ed.editor.merge_action.setShortcut("Ctrl+Shift+M")
    assert dict(ed.window.shortcuts_dialog().listed())["Ctrl+Shift+M"] == "Edit: Merge with next"


def test_escape_leaves_the_cell_keeping_what_was_typed(qtbot, ed):
    cell = ed.open_cell(qtbot, 3)
    cell.end(False)
    qtbot.keyClicks(cell, " Again")
    qtbot.keyClick(cell, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: ed.editor.delegate.active_editor() is None, timeout=1000)
    assert ed.stored_texts()[3] == "The cat left early. Again"
    ed.window.undo_action.trigger()
    assert ed.stored_texts()[3] == "The cat left early."


def test_insert_without_a_gap_is_refused_with_a_reason(qtbot, ed):
    ed.view.setFocus()
    ed.view.setCurrentIndex(ed.model.index(2, TEXT))  # segment 3 ends where segment 4 starts
    qtbot.keyClick(ed.view, Qt.Key.Key_I, CTRL)
    assert ed.model.rowCount() == 4 and ed.stored() == SEGMENTS
    assert "no time free after segment 3" in ed.window.edit_error.text()
