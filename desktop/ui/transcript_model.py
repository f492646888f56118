"""The transcript editor's table model: start, end and text of each segment of a core Transcript.

Edits go through Transcript.set_text / set_times, so the rules (ordered, no overlap) live in core. The
model keeps its own copy of the rows because Transcript tells listeners after a change, while Qt wants
"rows about to change" before it: the copy is what views see until the model has announced the change.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor

from desktop.core.segment import Segment
from desktop.core.transcript import EditError, Transcript
from desktop.ui.timefmt import format_time, parse_time
from desktop.workers.signals import emit

Index = QModelIndex | QPersistentModelIndex

START, END, TEXT = range(3)
_HEADERS = ("Start", "End", "Text")
# Below this average log probability the decoder was unsure; the row is tinted so the user checks it.
LOW_CONFIDENCE_LOGPROB = -1.0
_LOW_CONFIDENCE = QColor("#d9822b")
# The segment being played: a translucent green, unlike the selection's blue, reads on light and dark palettes.
_PLAYING = QColor(34, 197, 94, 64)


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
        self._playing_row: int | None = None

    # -- the transcript shown ----------------------------------------------------------------------
    @property
    def transcript(self) -> Transcript | None:
        return self._transcript

    def set_transcript(self, transcript: Transcript | None) -> None:
        self.beginResetModel()
        self._transcript = transcript
        self._rows = list(transcript.segments) if transcript is not None else []
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
            emit(self.dataChanged, self.index(index, 0), self.index(index + same - 1, TEXT))
        if removed > same:
            first = index + same
            self.beginRemoveRows(QModelIndex(), first, index + removed - 1)
            del self._rows[first : index + removed]
            self.endRemoveRows()
        elif inserted > same:
            first = index + same
            last = index + inserted - 1
            self.beginInsertRows(QModelIndex(), first, last)
            self._rows[first:first] = [transcript[i] for i in range(first, last + 1)]
            self.endInsertRows()

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
        if role == Qt.ItemDataRole.ToolTipRole and column == TEXT:
            tip = segment.text.strip()
            if _is_unsure(segment):
                tip += "\n\n(The model was unsure here; check this segment.)"
            return tip
        if role == Qt.ItemDataRole.ForegroundRole and column == TEXT and _is_unsure(segment):
            return QBrush(_LOW_CONFIDENCE)
        if role == Qt.ItemDataRole.BackgroundRole and index.row() == self._playing_row:
            return QBrush(_PLAYING)
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
        try:
            if column == TEXT:
                text = str(value)
                # Whisper's segments start with a space; keep it so exports join words as before.
                if segment.text.startswith(" ") and text and not text.startswith(" "):
                    text = " " + text
                if text == segment.text:
                    return False
                self._transcript.set_text(row, text)
            else:
                seconds = parse_time(str(value))
                start_s, end_s = (seconds, segment.end_s) if column == START else (segment.start_s, seconds)
                self._transcript.set_times(row, start_s, end_s)
        except (EditError, ValueError) as exc:
            emit(self.edit_failed, str(exc))
            return False
        emit(self.edited)
        return True

    # -- undo --------------------------------------------------------------------------------------
    def undo(self) -> None:
        if self._transcript is not None and self._transcript.can_undo():
            self._transcript.undo()
            emit(self.edited)

    def redo(self) -> None:
        if self._transcript is not None and self._transcript.can_redo():
            self._transcript.redo()
            emit(self.edited)

    def rows(self) -> Sequence[Segment]:
        return tuple(self._rows)


def _is_unsure(segment: Segment) -> bool:
    return segment.avg_logprob is not None and segment.avg_logprob < LOW_CONFIDENCE_LOGPROB
