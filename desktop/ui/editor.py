"""The transcript editor: the table of segments, its text delegate (uncertain words coloured, search matches
marked, typing saved as it goes), the find/replace bar, and the editing actions (split, merge, insert,
delete, nudge, next uncertain word, next flag, re-run flagged range), all on the keyboard.

Every edit goes through TranscriptModel.perform, so the rules stay in core and every edit is undoable.
"""

from __future__ import annotations

import html
import itertools
import math
import weakref
from collections.abc import Callable, Iterable

import shiboken6
from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QAction,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPalette,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QAbstractItemDelegate,
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.core.flags import flagged_run, next_flagged, next_uncertain
from desktop.core.search import SearchError, SearchOptions, find_all, find_next, replace_all, replace_one
from desktop.core.segment import Segment
from desktop.core.transcript import MIN_SEGMENT_S
from desktop.ui.timefmt import format_time
from desktop.ui.transcript_model import TEXT, UNCERTAIN_ROLE, TranscriptModel
from desktop.workers.signals import emit

# How long typing may go unsaved: the cell's text is committed (and so saved) this long after the last key.
LIVE_SAVE_MS = 400
NUDGE_STEP_S = 0.1
_INSERTED_SEGMENT_S = 2.0

_UNCERTAIN_STYLE = "background-color:#fde2c4; color:#9a3412; text-decoration:underline;"
_MATCH_STYLE = "background-color:#fff59d;"
_CURRENT_MATCH_STYLE = "background-color:#ffb74d;"
_session_ids = itertools.count(1)


class _TextEditor(QLineEdit):
    """The cell editor of the text column; `session` is the merge key of its live commits."""

    def __init__(self, parent: QWidget, index: QModelIndex) -> None:
        super().__init__(parent)
        self.session = ("typing", next(_session_ids))
        self.index = QPersistentModelIndex(index)
        self.save_timer = QTimer(self)
        self.save_timer.setSingleShot(True)
        self.save_timer.setInterval(LIVE_SAVE_MS)


class TextDelegate(QStyledItemDelegate):
    """Paints the text column as rich text (uncertain words, search matches) and edits it in a line edit
    whose text is committed as the user types."""

    def __init__(self, view: QTableView) -> None:
        super().__init__(view)
        self._view = view
        self._active: weakref.ReferenceType[_TextEditor] | None = None
        # (row, start, end) of the current search match; all matches of `search` are marked lightly.
        self.current_match: tuple[int, int, int] | None = None
        self.search: SearchOptions | None = None

    # -- editing -----------------------------------------------------------------------------------
    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QWidget:
        if index.column() != TEXT:
            return super().createEditor(parent, option, index)
        editor = _TextEditor(parent, QModelIndex(index))
        editor.setFrame(False)
        editor.textEdited.connect(lambda _text: editor.save_timer.start())
        editor.save_timer.timeout.connect(lambda: emit(self.commitData, editor))
        self._active = weakref.ref(editor)
        return editor

    def active_editor(self) -> _TextEditor | None:
        editor = self._active() if self._active is not None else None
        # The view deletes a closed editor later; the Python wrapper can outlive it.
        if editor is None or not shiboken6.isValid(editor) or not editor.isVisible() or not editor.index.isValid():
            return None
        return editor

    def setEditorData(self, editor: QWidget, index: QModelIndex | QPersistentModelIndex) -> None:
        if isinstance(editor, _TextEditor):
            text = str(index.data(Qt.ItemDataRole.EditRole) or "")
            # A live commit changes the model under the open editor; rewriting the same text would move
            # the cursor while the user types.
            if editor.text().strip() != text:
                editor.setText(text)
            return
        super().setEditorData(editor, index)

    def setModelData(self, editor: QWidget, model, index: QModelIndex | QPersistentModelIndex) -> None:
        if isinstance(editor, _TextEditor) and isinstance(model, TranscriptModel):
            editor.save_timer.stop()
            model.set_text(index.row(), editor.text(), merge_key=editor.session)
            return
        super().setModelData(editor, model, index)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # Escape leaves the cell; what was typed is kept (it is already saved), and Ctrl+Z takes it back.
        if isinstance(watched, _TextEditor) and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() == Qt.Key.Key_Escape:
                emit(self.commitData, watched)
                emit(self.closeEditor, watched, QAbstractItemDelegate.EndEditHint.NoHint)
                return True
        return super().eventFilter(watched, event)

    # -- painting ----------------------------------------------------------------------------------
    def _document(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex, width: int) -> QTextDocument:
        document = QTextDocument()
        document.setDefaultFont(option.font)
        document.setDocumentMargin(2)
        document.setTextWidth(max(width, 10))
        document.setHtml(self.html_for(index))
        return document

    def html_for(self, index: QModelIndex | QPersistentModelIndex) -> str:
        """The cell's text as HTML: uncertain words and search matches wrapped in styled spans."""
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        marks: list[tuple[int, int, str]] = []
        for span in index.data(UNCERTAIN_ROLE) or []:
            marks.append((span.start, span.end, _UNCERTAIN_STYLE))
        if self.search is not None:
            try:
                options = self.search
                pattern = options.compile()
                for found in pattern.finditer(text):
                    if found.end() > found.start():
                        current = self.current_match == (index.row(), found.start(), found.end())
                        marks.append((found.start(), found.end(), _CURRENT_MATCH_STYLE if current else _MATCH_STYLE))
            except SearchError:
                pass
        return _marked_html(text, marks)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        if index.column() != TEXT:
            super().paint(painter, option, index)
            return
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget = opt.widget  # type: ignore[attr-defined]
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        rect = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, opt, widget)
        document = self._document(opt, index, rect.width())
        painter.save()
        top = rect.top() + max(0, (rect.height() - int(document.size().height())) // 2)
        painter.translate(rect.left(), top)
        painter.setClipRect(QRect(0, 0, rect.width(), rect.height()))
        context = QAbstractTextDocumentLayout.PaintContext()
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)  # type: ignore[attr-defined]
        group = QPalette.ColorGroup.Active
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        foreground = index.data(Qt.ItemDataRole.ForegroundRole)
        color = foreground.color() if foreground is not None and not selected else opt.palette.color(group, role)  # type: ignore[attr-defined]
        context.palette.setColor(QPalette.ColorRole.Text, color)
        document.documentLayout().draw(painter, context)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        if index.column() != TEXT:
            return super().sizeHint(option, index)
        width = self._view.columnWidth(TEXT) - 8
        document = self._document(option, index, width)
        return QSize(width, int(document.size().height()) + 6)


def _marked_html(text: str, marks: Iterable[tuple[int, int, str]]) -> str:
    """HTML of `text` with each (start, end, css) range wrapped in a span; overlapping marks are dropped
    after the first, so the HTML always nests."""
    out: list[str] = []
    position = 0
    for start, end, css in sorted(marks):
        if start < position:
            continue
        out.append(html.escape(text[position:start]))
        out.append(f'<span style="{css}">{html.escape(text[start:end])}</span>')
        position = end
    out.append(html.escape(text[position:]))
    return "".join(out)


class FindBar(QWidget):
    """Find and replace in the shown transcript: hidden until Ctrl+F / Ctrl+H, closed with Escape."""

    def __init__(self, editor: TranscriptEditor) -> None:
        super().__init__(editor)
        self._editor = editor
        self.find_field = QLineEdit()
        self.find_field.setPlaceholderText("Find")
        self.find_field.setClearButtonEnabled(True)
        self.replace_field = QLineEdit()
        self.replace_field.setPlaceholderText("Replace with")
        self.case_box = QCheckBox("Aa")
        self.case_box.setToolTip("Match case")
        self.word_box = QCheckBox("Word")
        self.word_box.setToolTip("Whole words only")
        self.regex_box = QCheckBox(".*")
        self.regex_box.setToolTip("Regular expression (Python syntax; \\1 in the replacement for a group)")
        self.status = QLabel()
        self.status.setMinimumWidth(90)
        buttons: list[QToolButton] = []
        for text, tip, slot in (
            ("▲", "Previous match (Shift+F3)", lambda: editor.find(backwards=True)),
            ("▼", "Next match (F3)", lambda: editor.find()),
            ("Replace", "Replace this match and go to the next", editor.replace_current),
            ("All", "Replace every match (one undo step)", editor.replace_everywhere),
            ("✕", "Close (Escape)", self.close_bar),
        ):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.setAutoRaise(True)
            button.clicked.connect(lambda _checked=False, s=slot: s())
            buttons.append(button)
        self.replace_button, self.replace_all_button = buttons[2], buttons[3]

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        layout.addWidget(self.find_field, 2)
        layout.addWidget(buttons[0])
        layout.addWidget(buttons[1])
        layout.addWidget(self.case_box)
        layout.addWidget(self.word_box)
        layout.addWidget(self.regex_box)
        layout.addWidget(self.replace_field, 2)
        layout.addWidget(self.replace_button)
        layout.addWidget(self.replace_all_button)
        layout.addWidget(self.status)
        layout.addWidget(buttons[4])

        self.find_field.textChanged.connect(lambda _t: editor.search_changed())
        self.find_field.returnPressed.connect(lambda: editor.find())
        self.replace_field.returnPressed.connect(editor.replace_current)
        for box in (self.case_box, self.word_box, self.regex_box):
            box.toggled.connect(lambda _on: editor.search_changed())
        self.hide()

    def options(self) -> SearchOptions:
        return SearchOptions(self.find_field.text(), self.case_box.isChecked(), self.word_box.isChecked(),
                             self.regex_box.isChecked())

    def open_bar(self, replace: bool = False) -> None:
        self.show()
        field = self.replace_field if replace and self.find_field.text() else self.find_field
        field.setFocus()
        field.selectAll()
        self._editor.search_changed()

    def close_bar(self) -> None:
        self.hide()
        self._editor.search_changed()
        self._editor.view.setFocus()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close_bar()
            return
        super().keyPressEvent(event)


class TranscriptEditor(QWidget):
    """The find bar over the table view, and the editor's actions (see `editing_actions()` etc.)."""

    rerun_requested = Signal(int, int)  # first row, last row of the flagged run to transcribe again
    message = Signal(str)  # a note for the status bar

    def __init__(self, model: TranscriptModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.view = QTableView()
        self.view.setModel(model)
        self.delegate = TextDelegate(self.view)
        self.view.setItemDelegateForColumn(TEXT, self.delegate)
        self.find_bar = FindBar(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.find_bar)
        layout.addWidget(self.view, 1)
        model.modelReset.connect(self._forget_match)
        self._build_actions()

    # -- actions -----------------------------------------------------------------------------------
    def _action(self, text: str, slot: Callable[[], object], shortcuts: Iterable[str], tip: str,
                window_wide: bool = False) -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setToolTip(tip)
        action.setStatusTip(tip)
        # Most editing keys act where the user is editing (the table and its cell editors); moving between
        # findings and finding work from anywhere in the window.
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut if window_wide
                                  else Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.split_action = a("&Split segment at cursor", self.split_at_cursor, ["Ctrl+Return"],
                              "Split the segment at the text cursor (while editing its text)")
        self.merge_action = a("&Merge with next", self.merge_with_next, ["Ctrl+J"],
                              "Join the segment with the one after it")
        self.insert_action = a("&Insert segment after", self.insert_after, ["Ctrl+I"],
                               "Add an empty segment in the gap after this one")
        self.delete_action = a("&Delete segment", self.delete_current, ["Ctrl+Shift+D"],
                               "Remove the segment")
        self.start_earlier_action = a("Start earlier", lambda: self.nudge("start", -NUDGE_STEP_S), ["Alt+Left"],
                                      f"Move the segment's start {NUDGE_STEP_S:g} s earlier")
        self.start_later_action = a("Start later", lambda: self.nudge("start", NUDGE_STEP_S), ["Alt+Right"],
                                    f"Move the segment's start {NUDGE_STEP_S:g} s later")
        self.end_earlier_action = a("End earlier", lambda: self.nudge("end", -NUDGE_STEP_S), ["Alt+Shift+Left"],
                                    f"Move the segment's end {NUDGE_STEP_S:g} s earlier")
        self.end_later_action = a("End later", lambda: self.nudge("end", NUDGE_STEP_S), ["Alt+Shift+Right"],
                                  f"Move the segment's end {NUDGE_STEP_S:g} s later")
        self.find_action = a("&Find…", lambda: self.find_bar.open_bar(), ["Ctrl+F"],
                             "Find in this transcript", window_wide=True)
        self.replace_action = a("&Replace…", lambda: self.find_bar.open_bar(replace=True), ["Ctrl+H"],
                                "Find and replace in this transcript", window_wide=True)
        self.find_next_action = a("Find &next", lambda: self.find(), ["F3"], "Next match", window_wide=True)
        self.find_previous_action = a("Find pre&vious", lambda: self.find(backwards=True), ["Shift+F3"],
                                      "Previous match", window_wide=True)
        self.next_uncertain_action = a("Next &uncertain word", lambda: self.go_to_uncertain(), ["F8"],
                                       "Select the next word the model was unsure of (word timestamps on)",
                                       window_wide=True)
        self.previous_uncertain_action = a("Previous uncertain word", lambda: self.go_to_uncertain(backwards=True),
                                           ["Shift+F8"], "Select the previous word the model was unsure of",
                                           window_wide=True)
        self.next_flag_action = a("Next &flag", lambda: self.go_to_flag(), ["F7"],
                                  "Go to the next segment flagged as a possible loop or hallucination",
                                  window_wide=True)
        self.previous_flag_action = a("Previous flag", lambda: self.go_to_flag(backwards=True), ["Shift+F7"],
                                      "Go to the previous flagged segment", window_wide=True)
        self.rerun_action = a("Re-run f&lagged range", self.rerun_flagged, ["Ctrl+Shift+R"],
                              "Transcribe the flagged segments' time range again (temperature fallback); "
                              "the new text replaces them as one undoable edit", window_wide=True)

    def editing_actions(self) -> list[QAction]:
        return [self.split_action, self.merge_action, self.insert_action, self.delete_action,
                self.start_earlier_action, self.start_later_action, self.end_earlier_action, self.end_later_action]

    def find_actions(self) -> list[QAction]:
        return [self.find_action, self.replace_action, self.find_next_action, self.find_previous_action]

    def review_actions(self) -> list[QAction]:
        return [self.next_uncertain_action, self.previous_uncertain_action, self.next_flag_action,
                self.previous_flag_action, self.rerun_action]

    # -- where the user is -------------------------------------------------------------------------
    def current_row(self) -> int | None:
        editor = self.delegate.active_editor()
        if editor is not None:
            return editor.index.row()
        index = self.view.currentIndex()
        return index.row() if index.isValid() else None

    def select_row(self, row: int, column: int = TEXT) -> None:
        index = self.model.index(row, column)
        self.view.setCurrentIndex(index)
        self.view.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)

    def _commit_open_editor(self) -> None:
        editor = self.delegate.active_editor()
        if editor is not None:
            emit(self.delegate.commitData, editor)

    def _close_open_editor(self) -> None:
        editor = self.delegate.active_editor()
        if editor is not None:
            emit(self.delegate.commitData, editor)
            emit(self.delegate.closeEditor, editor, QAbstractItemDelegate.EndEditHint.NoHint)

    def _row_or_say(self) -> int | None:
        row = self.current_row()
        if row is None or self.model.transcript is None:
            emit(self.message, "Select a segment first.")
            return None
        return row

    # -- structure edits ---------------------------------------------------------------------------
    def split_at_cursor(self) -> None:
        editor = self.delegate.active_editor()
        if editor is None:
            emit(self.message, "Edit the text (F2), put the cursor where the segment should split, then press "
                               f"{self.split_action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}.")
            return
        row, cursor = editor.index.row(), editor.cursorPosition()
        text = editor.text()
        self._close_open_editor()
        transcript = self.model.transcript
        if transcript is None:
            return
        # The editor shows the text without Whisper's leading space; core counts it.
        shown_offset = len(transcript[row].text) - len(transcript[row].text.lstrip())
        stripped_before = len(text) - len(text.lstrip())
        at_char = shown_offset + max(cursor - stripped_before, 0)
        if self.model.perform(lambda: transcript.split(row, at_char)):
            self.select_row(row + 1)

    def merge_with_next(self) -> None:
        self._close_open_editor()
        row = self._row_or_say()
        transcript = self.model.transcript
        if row is not None and transcript is not None and self.model.perform(lambda: transcript.merge_with_next(row)):
            self.select_row(row)

    def insert_after(self) -> None:
        self._close_open_editor()
        transcript = self.model.transcript
        if transcript is None:
            return
        row = self.current_row()
        rows = self.model.rows()
        if row is None:
            row = len(rows) - 1
        start_s = rows[row].end_s if row >= 0 else 0.0
        following = rows[row + 1].start_s if row + 1 < len(rows) else None
        end_s = start_s + _INSERTED_SEGMENT_S if following is None else min(following, start_s + _INSERTED_SEGMENT_S)
        if end_s - start_s < MIN_SEGMENT_S:
            emit(self.model.edit_failed, f"There is no time free after segment {row + 1}; move its end or the next "
                                         "segment's start first (Alt+Shift+Left, Alt+Right).")
            return
        segment = Segment(round(start_s, 3), round(end_s, 3), " ")
        if self.model.perform(lambda: transcript.insert(row + 1, segment)):
            self.select_row(row + 1)
            self.view.edit(self.model.index(row + 1, TEXT))

    def delete_current(self) -> None:
        self._close_open_editor()
        row = self._row_or_say()
        transcript = self.model.transcript
        if row is not None and transcript is not None and self.model.perform(lambda: transcript.delete(row)):
            if self.model.rowCount():
                self.select_row(min(row, self.model.rowCount() - 1))

    def nudge(self, edge: str, delta_s: float) -> None:
        if not self.model.times_editable:
            emit(self.model.edit_failed, "Times can be changed once the job is done.")
            return
        self._commit_open_editor()
        row = self._row_or_say()
        transcript = self.model.transcript
        if row is not None and transcript is not None:
            self.model.perform(lambda: transcript.nudge(row, edge, delta_s))

    # -- find and replace --------------------------------------------------------------------------
    def search_changed(self) -> None:
        options = self.find_bar.options() if self.find_bar.isVisible() and self.find_bar.find_field.text() else None
        self.delegate.search = options
        self.delegate.current_match = None
        self.find_bar.status.setText("")
        if options is not None:
            try:
                count = len(find_all(self.model.rows(), options))
                self.find_bar.status.setText("No matches" if not count else f"{count} found")
            except SearchError as exc:
                self.delegate.search = None
                self.find_bar.status.setText(str(exc))
        self.view.viewport().update()

    def _forget_match(self) -> None:
        self.delegate.current_match = None
        if self.find_bar.isVisible():
            self.search_changed()

    def find(self, backwards: bool = False) -> bool:
        """Select the next (previous) match after the current one or the current cell; True if found."""
        if not self.find_bar.isVisible() or not self.find_bar.find_field.text():
            self.find_bar.open_bar()
            return False
        options = self.find_bar.options()
        self._commit_open_editor()
        current = self.delegate.current_match
        if current is not None:
            row, char = current[0], current[1] + (0 if backwards else 1)
        else:
            row, char = self.current_row() or 0, 0
        try:
            match = find_next(self.model.rows(), options, row, char, backwards)
        except SearchError as exc:
            self.find_bar.status.setText(str(exc))
            return False
        if match is None:
            self.find_bar.status.setText("No matches")
            return False
        self.delegate.search = options
        self.delegate.current_match = (match.row, match.start, match.end)
        self.select_row(match.row)
        total = find_all(self.model.rows(), options)
        position = total.index(match) + 1 if match in total else 0
        self.find_bar.status.setText(f"{position} of {len(total)}")
        self.view.viewport().update()
        return True

    def replace_current(self) -> None:
        transcript = self.model.transcript
        current = self.delegate.current_match
        if transcript is None:
            return
        if current is None:
            self.find()
            return
        options = self.find_bar.options()
        matches = [m for m in find_all(self.model.rows(), options) if (m.row, m.start, m.end) == current]
        if not matches:
            self.find()
            return
        replacement = self.find_bar.replace_field.text()
        try:
            done = self.model.perform(lambda: replace_one(transcript, options, replacement, matches[0]))
        except SearchError as exc:
            self.find_bar.status.setText(str(exc))
            return
        if done:
            # Go on from just after the replaced text (find() looks from one past the current match's start).
            after = current[1] + len(replacement) - 1
            self.delegate.current_match = (current[0], after, after)
            self.find()

    def replace_everywhere(self) -> int:
        transcript = self.model.transcript
        if transcript is None or not self.find_bar.find_field.text():
            return 0
        options = self.find_bar.options()
        replacement = self.find_bar.replace_field.text()
        count = 0

        def edit() -> None:
            nonlocal count
            count = replace_all(transcript, options, replacement)

        self._close_open_editor()
        try:
            self.model.perform(edit)
        except SearchError as exc:
            self.find_bar.status.setText(str(exc))
            return 0
        noun = "match" if count == 1 else "matches"
        self.find_bar.status.setText(f"Replaced {count} {noun}" if count else "No matches")
        emit(self.message, f"Replaced {count} {noun} (one undo step)." if count else "Nothing to replace.")
        self.delegate.current_match = None
        return count

    # -- review ------------------------------------------------------------------------------------
    def go_to_uncertain(self, backwards: bool = False) -> bool:
        if not self.model.show_confidence or not any(s.words for s in self.model.rows()):
            emit(self.message, "No word confidence here: turn on word timestamps in Settings and transcribe again.")
            return False
        editor = self.delegate.active_editor()
        row = self.current_row()
        if row is None:
            row, char = (0, -1) if not backwards else (self.model.rowCount(), 0)
        elif editor is not None and editor.hasSelectedText():
            char = editor.selectionStart()
        else:
            char = -1 if not backwards else 1 << 30
        self._close_open_editor()
        found = next_uncertain(self.model.rows(), row, char, self.model.uncertain_threshold, backwards)
        if found is None:
            emit(self.message, "No uncertain words in this transcript.")
            return False
        found_row, span = found
        self.select_row(found_row)
        self.view.edit(self.model.index(found_row, TEXT))
        opened = self.delegate.active_editor()
        if opened is not None:
            opened.setSelection(span.start, span.end - span.start)
        # Rounded down, so a word under the threshold never reads as "50% sure".
        sure = math.floor(span.word.probability * 100)
        emit(self.message, f"“{span.word.text.strip()}”: the model was {sure}% sure "
                           f"(segment {found_row + 1}, {format_time(span.word.start_s)}).")
        return True

    def go_to_flag(self, backwards: bool = False) -> bool:
        flags = self.model.all_flags()
        row = self.current_row()
        start = row if row is not None else (-1 if not backwards else len(flags))
        found = next_flagged(flags, start, backwards) if flags else None
        if found is None:
            emit(self.message, "No flagged segments in this transcript.")
            return False
        self._close_open_editor()
        self.select_row(found, 0)
        emit(self.message, f"Segment {found + 1}: " + " ".join(f.reason for f in flags[found]))
        return True

    def flagged_rows(self) -> tuple[int, int] | None:
        """The run of flagged segments at the current row, or the next one after it."""
        flags = self.model.all_flags()
        row = self.current_row()
        run = flagged_run(flags, row) if row is not None else None
        if run is None and flags:
            following = next_flagged(flags, row if row is not None else -1)
            run = flagged_run(flags, following) if following is not None else None
        return run

    def rerun_flagged(self) -> None:
        run = self.flagged_rows()
        if run is None:
            emit(self.message, "No flagged segments to re-run.")
            return
        self._close_open_editor()
        self.select_row(run[0], 0)
        emit(self.rerun_requested, run[0], run[1])


class ShortcutsDialog(QDialog):
    """Every action with a shortcut, read from the actions themselves so the list cannot go stale."""

    def __init__(self, groups: Iterable[tuple[str, Iterable[QAction]]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = [(group, action) for group, actions in groups for action in actions if action.shortcuts()]
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["Shortcut", "Action", "What it does"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        for i, (group, action) in enumerate(rows):
            keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts())
            name = action.text().replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…")
            self.table.setItem(i, 0, QTableWidgetItem(keys))
            self.table.setItem(i, 1, QTableWidgetItem(f"{group}: {name}"))
            self.table.setItem(i, 2, QTableWidgetItem(action.toolTip() if action.toolTip() != action.text() else ""))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        note = QLabel("In the transcript: F2 or typing edits a cell (saved as you type), Enter or Escape leaves "
                      "it, Tab moves to the next cell.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(760, 560)

    def listed(self) -> list[tuple[str, str]]:
        """(shortcut, action) as shown."""
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text()) for r in range(self.table.rowCount())]
