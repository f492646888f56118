"""The transcript editor's table model: start, end and text of each segment of a core Transcript.

Edits go through the core Transcript's operations, so the rules (ordered, no overlap) live in core. The
model keeps its own copy of the rows because Transcript tells listeners after a change, while Qt wants
"rows about to change" before it: the copy is what views see until the model has announced the change.

Undo: each transcript has a QUndoStack whose commands wrap core edits. An edit is applied by core first
(so a refused edit never reaches the stack); the command pushed afterwards then only walks core's own
history (undo -> Transcript.undo, redo -> Transcript.redo), which keeps the two in step.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QUndoCommand, QUndoStack

from desktop.core.flags import (
    UNCERTAIN_WORD_PROBABILITY,
    Flag,
    WordSpan,
    flag_tooltip,
    segment_flags,
    uncertain_words,
)
from desktop.core.segment import Segment
from desktop.core.transcript import EditError, Transcript
from desktop.ui.resources import icon
from desktop.ui.timefmt import format_time, parse_time
from desktop.workers.signals import emit

Index = QModelIndex | QPersistentModelIndex

START, END, TEXT = range(3)
_HEADERS = ("Start", "End", "Text")
# Below this average log probability the decoder was unsure; the row is tinted so the user checks it.
LOW_CONFIDENCE_LOGPROB = -1.0
_LOW_CONFIDENCE = QColor("#d9822b")
_FLAGGED_BACKGROUND = QColor("#fff4d6")
# The segment being played: a translucent green, unlike the selection's blue, reads on light and dark palettes.
_PLAYING_BACKGROUND = QColor(34, 197, 94, 64)

# Roles the editor's delegate reads.
FLAGS_ROLE = Qt.ItemDataRole.UserRole + 1  # tuple[Flag, ...]
UNCERTAIN_ROLE = Qt.ItemDataRole.UserRole + 2  # list[WordSpan] (empty unless confidence is shown)


class _CoreEdit(QUndoCommand):
    """An edit core has already applied; the stack's first redo() (on push) therefore does nothing."""

    def __init__(self, transcript: Transcript, text: str) -> None:
        super().__init__(text)
        # Weak: the stack lives as long as its transcript (see TranscriptModel._stacks), not the reverse.
        self._transcript = weakref.ref(transcript)
        self._applied = True

    def redo(self) -> None:
        if self._applied:
            self._applied = False
            return
        transcript = self._transcript()
        if transcript is not None:
            transcript.redo()

    def undo(self) -> None:
        transcript = self._transcript()
        if transcript is not None:
            transcript.undo()


_DRAFT = QColor("#7b8794")


class TranscriptModel(QAbstractTableModel):
    edited = Signal()  # the user changed the transcript (edit, undo or redo): time to save it
    edit_failed = Signal(str)  # an edit was refused; the message is for the user

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._transcript: Transcript | None = None
        self._rows: list[Segment] = []
        self._subscribed: weakref.WeakSet[Transcript] = weakref.WeakSet()
        # While the job runs, times stay fixed: new segments are appended after the last one.
        self.times_editable = True
        self._flags: list[tuple[Flag, ...]] = []
        self._stacks: weakref.WeakKeyDictionary[Transcript, QUndoStack] = weakref.WeakKeyDictionary()
        # Word confidence is shown only when the words have probabilities (word timestamps on).
        self.show_confidence = True
        self.uncertain_threshold = UNCERTAIN_WORD_PROBABILITY
        self._playing_row: int | None = None
        # A recording's live draft: shown grey and italic, not editable (the full pass replaces it).
        self.draft = False

    # -- the transcript shown ----------------------------------------------------------------------
    @property
    def transcript(self) -> Transcript | None:
        return self._transcript

    def set_transcript(self, transcript: Transcript | None, draft: bool = False) -> None:
        self.beginResetModel()
        self.draft = draft
        self._transcript = transcript
        self._rows = list(transcript.segments) if transcript is not None else []
        self._flags = segment_flags(self._rows)
        self._playing_row = None
        if transcript is not None and transcript not in self._subscribed:
            self._subscribed.add(transcript)
            transcript.subscribe(lambda i, removed, inserted, t=transcript: self._changed(t, i, removed, inserted))
        self.endResetModel()

    # -- playback highlight ------------------------------------------------------------------------
    @property
    def playing_row(self) -> int | None:
        return self._playing_row

    def set_playing_row(self, row: int | None) -> None:
        """Tint the row of the segment being played (None: no row)."""
        if row is not None and not 0 <= row < len(self._rows):
            row = None
        previous, self._playing_row = self._playing_row, row
        for changed in {previous, row} - {None} if previous != row else ():
            if changed < len(self._rows):
                emit(self.dataChanged, self.index(changed, 0), self.index(changed, TEXT),
                     [Qt.ItemDataRole.BackgroundRole])

    def segment(self, row: int) -> Segment:
        return self._rows[row]

    def _changed(self, transcript: Transcript, index: int, removed: int, inserted: int) -> None:
        if transcript is not self._transcript:
            return
        same = min(removed, inserted)
        if same:
            self._rows[index : index + same] = transcript.segments[index : index + same]
            self._refresh_flags(index, index + same)
            emit(self.dataChanged, self.index(index, 0), self.index(index + same - 1, TEXT))
        if removed > same:
            first = index + same
            self.beginRemoveRows(QModelIndex(), first, index + removed - 1)
            del self._rows[first : index + removed]
            del self._flags[first : index + removed]
            self.endRemoveRows()
        elif inserted > same:
            first = index + same
            last = index + inserted - 1
            self.beginInsertRows(QModelIndex(), first, last)
            self._rows[first:first] = [transcript[i] for i in range(first, last + 1)]
            self._flags[first:first] = [()] * (last + 1 - first)
            self._refresh_flags(first, last + 1)
            self.endInsertRows()
        # A segment's flags depend on the one before it ("same text as before"), so the row after the
        # change is looked at again too.
        after = index + inserted
        if after < len(self._rows):
            old_flags = self._flags[after]
            self._refresh_flags(after, after + 1)
            if self._flags[after] != old_flags:
                emit(self.dataChanged, self.index(after, 0), self.index(after, TEXT))

    def _refresh_flags(self, first: int, stop: int) -> None:
        context = max(first - 1, 0)
        fresh = segment_flags(self._rows[context:stop])
        self._flags[first:stop] = fresh[first - context :]

    # -- Qt model ----------------------------------------------------------------------------------
    def rowCount(self, parent: Index | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(_HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return _HEADERS[section] if 0 <= section < len(_HEADERS) else None
        return str(section + 1)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if self.draft:
            return flags
        if index.column() == TEXT or self.times_editable:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        segment = self._rows[index.row()]
        column = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if column == START:
                return format_time(segment.start_s)
            if column == END:
                return format_time(segment.end_s)
            return segment.text.strip()
        flags = self._flags[index.row()] if index.row() < len(self._flags) else ()
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == START and flags:
                return flag_tooltip(flags)
            if column != TEXT:
                return None
            tip = segment.text.strip()
            if flags:
                tip += "\n\n" + flag_tooltip(flags)
            if _is_unsure(segment):
                tip += "\n\n(The model was unsure here; check this segment.)"
            unsure_words = self.uncertain_spans(index.row())
            if unsure_words:
                listed = ", ".join(f"“{s.word.text.strip()}” {math.floor(s.word.probability * 100)}%" for s in unsure_words[:8])
                tip += f"\n\nUncertain words: {listed}"
            return tip
        if self.draft and role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(_DRAFT)
        if self.draft and role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setItalic(True)
            return font
        if role == Qt.ItemDataRole.ForegroundRole and column == TEXT and _is_unsure(segment):
            return QBrush(_LOW_CONFIDENCE)
        if role == Qt.ItemDataRole.DecorationRole and column == START and flags:
            return icon("flag")
        if role == Qt.ItemDataRole.BackgroundRole:
            if index.row() == self._playing_row:
                return QBrush(_PLAYING_BACKGROUND)
            if flags:
                return QBrush(_FLAGGED_BACKGROUND)
        if role == FLAGS_ROLE:
            return flags
        if role == UNCERTAIN_ROLE:
            return self.uncertain_spans(index.row())
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (START, END):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def setData(self, index: Index, value, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or self._transcript is None:
            return False
        if not self.flags(index) & Qt.ItemFlag.ItemIsEditable:
            return False
        row, column = index.row(), index.column()
        segment = self._rows[row]
        if column == TEXT:
            return self.set_text(row, str(value))
        try:
            seconds = parse_time(str(value))
        except ValueError as exc:
            emit(self.edit_failed, str(exc))
            return False
        start_s, end_s = (seconds, segment.end_s) if column == START else (segment.start_s, seconds)
        transcript = self._transcript
        return self.perform(lambda: transcript.set_times(row, start_s, end_s))

    def set_text(self, row: int, text: str, merge_key: object = None) -> bool:
        """Set a row's shown text. Edits with the same `merge_key` (one typing session, saved as it goes)
        are one undo step."""
        if self._transcript is None or not 0 <= row < len(self._rows):
            return False
        segment = self._rows[row]
        # Whisper's segments start with a space; keep it so exports join words as before.
        if segment.text.startswith(" ") and text and not text.startswith(" "):
            text = " " + text
        if text == segment.text:
            return False
        transcript = self._transcript
        return self.perform(lambda: transcript.set_text(row, text, merge_key=merge_key))

    # -- edits through the undo stack --------------------------------------------------------------
    def undo_stack(self, transcript: Transcript | None = None) -> QUndoStack | None:
        transcript = transcript or self._transcript
        if transcript is None:
            return None
        stack = self._stacks.get(transcript)
        if stack is None:
            # Not parented to the model: it goes when its transcript goes (a removed job's history with it).
            stack = self._stacks[transcript] = QUndoStack()
        return stack

    def perform(self, edit: Callable[[], object], transcript: Transcript | None = None) -> bool:
        """Run a core edit of `transcript` (default: the one shown). A refused edit is reported through
        edit_failed and changes nothing; an applied one goes on that transcript's undo stack (or joins the
        step it coalesced into) and emits `edited`. True when the transcript changed."""
        transcript = transcript or self._transcript
        if transcript is None:
            return False
        depth, revision = transcript.undo_depth, transcript.revision
        try:
            edit()
        except (EditError, ValueError, IndexError) as exc:
            emit(self.edit_failed, str(exc))
            return False
        if transcript.revision == revision:
            return False
        if transcript.undo_depth > depth:
            stack = self.undo_stack(transcript)
            assert stack is not None
            stack.push(_CoreEdit(transcript, transcript.undo_description()))
        if transcript is self._transcript:
            emit(self.edited)
        return True

    def undo(self) -> None:
        stack = self.undo_stack()
        if stack is not None and stack.canUndo() and self._transcript is not None and self._transcript.can_undo():
            stack.undo()
            emit(self.edited)

    def redo(self) -> None:
        stack = self.undo_stack()
        if stack is not None and stack.canRedo() and self._transcript is not None and self._transcript.can_redo():
            stack.redo()
            emit(self.edited)

    def rows(self) -> Sequence[Segment]:
        return tuple(self._rows)

    # -- review: flags and word confidence ---------------------------------------------------------
    def flags_of(self, row: int) -> tuple[Flag, ...]:
        return self._flags[row] if 0 <= row < len(self._flags) else ()

    def all_flags(self) -> list[tuple[Flag, ...]]:
        return list(self._flags)

    def uncertain_spans(self, row: int) -> list[WordSpan]:
        if not self.show_confidence or not 0 <= row < len(self._rows):
            return []
        return uncertain_words(self._rows[row], self.uncertain_threshold)

    def set_show_confidence(self, shown: bool) -> None:
        if shown != self.show_confidence:
            self.show_confidence = shown
            if self._rows:
                emit(self.dataChanged, self.index(0, TEXT), self.index(len(self._rows) - 1, TEXT))


def _is_unsure(segment: Segment) -> bool:
    return segment.avg_logprob is not None and segment.avg_logprob < LOW_CONFIDENCE_LOGPROB
