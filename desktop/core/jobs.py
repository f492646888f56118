"""Jobs: one input (a file or a recording) on its way to a transcript."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class Job:
    id: int
    source: str
    state: JobState = JobState.QUEUED
    language: str | None = None
    duration_s: float | None = None
    error: str | None = None
    # Audio position up to which segments are committed (crash resume starts here).
    done_s: float = 0.0
