"""What the model worker hands the window: its model's state, range re-run answers, and the outbox that
carries engine events from the worker thread to the GUI thread, coalesced per job (see model_worker.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from desktop.core.segment import Segment
from desktop.core.settings import Settings
from desktop.engine.draft import DraftResult
from desktop.engine.events import (
    JobCancelled,
    JobFailed,
    JobFinished,
    JobProgress,
    JobStarted,
    SegmentsDecoded,
)


@dataclass(frozen=True)
class ModelStatus:
    """Where the model is: stage is "loading", "downloading", "warming", "ready" or "failed"."""

    stage: str
    model: str
    device: str | None = None
    compute_type: str | None = None
    device_note: str | None = None
    done_bytes: int = 0
    total_bytes: int = 0
    error: str | None = None
    # A failed load after which the worker went on with a model that works: that model (a "ready" status)
    # and the settings the worker now runs with (that model's name, device and compute type, the rest as
    # chosen). None when no model could be loaded at all.
    still_using: ModelStatus | None = None
    effective_settings: Settings | None = None


@dataclass(frozen=True)
class RangeRequest:
    """Transcribe [start_s, end_s) of a job's source again (a flagged range); `request_id` names the answer."""

    request_id: int
    job_id: int
    source: Path
    start_s: float
    end_s: float


@dataclass(frozen=True)
class RangeOutcome:
    """A range re-run's answer: its segments (original time), or why it failed."""

    request: RangeRequest
    segments: tuple[Segment, ...] = ()
    error: str | None = None


@dataclass
class JobBatch:
    """A job's events since the last flush, coalesced: at most one of each kind, segments joined."""

    job_id: int
    started: JobStarted | None = None
    segments: list[Segment] = field(default_factory=list)
    progress: JobProgress | None = None
    end: JobFinished | JobFailed | JobCancelled | None = None


class Outbox:
    """Thread-safe, order-keeping, coalescing buffer between the worker thread and the GUI thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[object] = []
        self._open: dict[int, JobBatch] = {}

    def put(self, item: object) -> bool:
        """Add a model status or an engine event; True when the outbox was empty before."""
        with self._lock:
            was_empty = not self._items
            if isinstance(item, RangeOutcome | DraftResult):
                self._items.append(item)
                return was_empty
            if isinstance(item, ModelStatus):
                last = self._items[-1] if self._items else None
                if item.stage == "downloading" and isinstance(last, ModelStatus) and last.stage == "downloading":
                    self._items[-1] = item  # only the latest byte count matters
                else:
                    self._items.append(item)
                return was_empty
            batch = self._open.get(item.job_id)  # type: ignore[attr-defined]
            if batch is not None and isinstance(item, JobStarted) and (batch.started or batch.segments or batch.progress):
                batch = None  # the job starts again (resumed on another device): keep the two runs apart
            if batch is None:
                batch = JobBatch(item.job_id)  # type: ignore[attr-defined]
                self._items.append(batch)
                self._open[batch.job_id] = batch
            if isinstance(item, JobStarted):
                batch.started = item
            elif isinstance(item, SegmentsDecoded):
                batch.segments.extend(item.segments)
            elif isinstance(item, JobProgress):
                batch.progress = item
            else:
                batch.end = item  # type: ignore[assignment]
                del self._open[batch.job_id]
            return was_empty

    def take(self) -> list[object]:
        with self._lock:
            items, self._items = self._items, []
            self._open.clear()
            return items
