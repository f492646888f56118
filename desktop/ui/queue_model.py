"""The queue panel's table model (one row per job) and the delegate that draws its progress bars."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionProgressBar

from desktop.core.jobs import Job, JobState
from desktop.ui.resources import icon
from desktop.ui.timefmt import format_duration, format_eta
from desktop.workers.signals import emit

Index = QModelIndex | QPersistentModelIndex

NAME, DURATION, STATE, PROGRESS, ETA = range(5)
_HEADERS = ("Name", "Duration", "State", "Progress", "ETA")
# The delegate reads the fraction done (0..1) from this role; DisplayRole has the same as text.
ProgressRole = Qt.ItemDataRole.UserRole + 1
JobIdRole = Qt.ItemDataRole.UserRole + 2
_FAILED_COLOR = QColor("#e5484d")


@dataclass
class QueueRow:
    job: Job
    done_s: float = 0.0
    total_s: float | None = None
    started_at_s: float | None = None  # time.monotonic() at job start, for the measured speed

    @property
    def fraction(self) -> float:
        if self.job.state == JobState.DONE:
            return 1.0
        total = self.total_s or self.job.duration_s
        return min(1.0, self.done_s / total) if total else 0.0

    def eta_s(self, now_s: float) -> float | None:
        """Seconds left at the speed measured so far for this job (None until there is a measure)."""
        total = self.total_s or self.job.duration_s
        if self.job.state != JobState.RUNNING or not total or self.started_at_s is None or self.done_s <= 0:
            return None
        speed = self.done_s / max(now_s - self.started_at_s, 1e-3)  # audio seconds per second
        return max(0.0, total - self.done_s) / speed


class QueueModel(QAbstractTableModel):
    def __init__(self, jobs: list[Job] | None = None, parent=None) -> None:
        super().__init__(parent)
        self._rows = [QueueRow(job, done_s=job.done_s) for job in jobs or []]

    # -- reading -----------------------------------------------------------------------------------
    def job(self, row: int) -> Job:
        return self._rows[row].job

    def jobs(self) -> list[Job]:
        return [r.job for r in self._rows]

    def job_ids(self) -> list[int]:
        return [r.job.id for r in self._rows]

    def row_of(self, job_id: int) -> int | None:
        for row, entry in enumerate(self._rows):
            if entry.job.id == job_id:
                return row
        return None

    def entry(self, job_id: int) -> QueueRow | None:
        row = self.row_of(job_id)
        return None if row is None else self._rows[row]

    # -- changes -----------------------------------------------------------------------------------
    def add(self, job: Job) -> None:
        row = len(self._rows)
        self.beginInsertRows(QModelIndex(), row, row)
        self._rows.append(QueueRow(job, done_s=job.done_s))
        self.endInsertRows()

    def insert(self, row: int, job: Job) -> None:
        self.beginInsertRows(QModelIndex(), row, row)
        self._rows.insert(row, QueueRow(job, done_s=job.done_s))
        self.endInsertRows()

    def update(self, job_id: int, **changes) -> None:
        """Change fields of the job (state, duration_s, language, error, done_s)."""
        row = self.row_of(job_id)
        if row is None:
            return
        entry = self._rows[row]
        entry.job = dataclasses.replace(entry.job, **changes)
        state = changes.get("state")
        if state == JobState.RUNNING:
            entry.started_at_s = time.monotonic()
            entry.done_s = 0.0
            entry.total_s = entry.job.duration_s
        elif state == JobState.QUEUED:
            entry.started_at_s = None
            entry.done_s = 0.0
        self._row_changed(row)

    def set_progress(self, job_id: int, done_s: float, total_s: float) -> None:
        row = self.row_of(job_id)
        if row is None:
            return
        entry = self._rows[row]
        entry.done_s, entry.total_s = done_s, total_s
        emit(self.dataChanged, self.index(row, PROGRESS), self.index(row, ETA))

    def remove(self, job_id: int) -> None:
        row = self.row_of(job_id)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._rows[row]
        self.endRemoveRows()

    def move(self, job_id: int, delta: int) -> bool:
        """Move a job up (delta < 0) or down; False when it cannot move."""
        row = self.row_of(job_id)
        if row is None:
            return False
        target = max(0, min(len(self._rows) - 1, row + delta))
        if target == row:
            return False
        # Qt's destination is the row *before which* the moved row lands, in the pre-move numbering.
        destination = target + 1 if target > row else target
        self.beginMoveRows(QModelIndex(), row, row, QModelIndex(), destination)
        self._rows.insert(target, self._rows.pop(row))
        self.endMoveRows()
        return True

    def refresh_eta(self) -> None:
        running = [r for r, e in enumerate(self._rows) if e.job.state == JobState.RUNNING]
        if running:
            emit(self.dataChanged, self.index(min(running), ETA), self.index(max(running), ETA))

    def _row_changed(self, row: int) -> None:
        emit(self.dataChanged, self.index(row, 0), self.index(row, len(_HEADERS) - 1))

    # -- Qt model ----------------------------------------------------------------------------------
    def rowCount(self, parent: Index | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(_HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return _HEADERS[section] if 0 <= section < len(_HEADERS) else None
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        entry = self._rows[index.row()]
        job = entry.job
        column = index.column()
        if role == JobIdRole:
            return job.id
        # Waiting and failed jobs have no bar: a row of empty bars is only noise.
        has_bar = job.state in (JobState.RUNNING, JobState.DONE) or (job.state == JobState.CANCELLED and entry.done_s)
        if role == ProgressRole:
            return entry.fraction if column == PROGRESS and has_bar else None
        if role == Qt.ItemDataRole.DisplayRole:
            if column == NAME:
                return Path(job.source).name
            if column == DURATION:
                return format_duration(entry.total_s or job.duration_s)
            if column == STATE:
                return job.state.value.capitalize()
            if column == PROGRESS:
                return f"{round(entry.fraction * 100)}%" if has_bar else ""
            if column == ETA:
                if job.state == JobState.QUEUED:
                    return "waiting"
                eta = entry.eta_s(time.monotonic())
                return format_eta(eta) if eta is not None else ""
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == STATE and job.error:
                return job.error
            if column == NAME:
                return job.source if not job.error else f"{job.source}\n{job.error}"
            return None
        if role == Qt.ItemDataRole.DecorationRole and column == STATE:
            return icon(f"state-{job.state.value}")
        if role == Qt.ItemDataRole.ForegroundRole and column == STATE and job.state == JobState.FAILED:
            return _FAILED_COLOR
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (DURATION, ETA):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class ProgressDelegate(QStyledItemDelegate):
    """Draws the Progress column as the platform's progress bar."""

    def paint(self, painter, option, index) -> None:
        fraction = index.data(ProgressRole)
        if fraction is None:
            super().paint(painter, option, index)
            return
        # Selection background first, so a selected row looks selected behind the bar.
        QApplication.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, option.widget)
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(4, 5, -4, -5)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(round(fraction * 1000))
        bar.text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.palette = option.palette
        QApplication.style().drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)
