"""What goes into the engine (jobs, options) and what comes out of it (events)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from desktop.core.segment import Segment

TASKS = ("transcribe", "translate")


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = None  # None: detect per file
    task: str = "transcribe"
    beam_size: int = 5
    word_timestamps: bool = False
    initial_prompt: str | None = None
    hotwords: str | None = None
    vad: bool = True
    # Items per decoder batch; None picks by device (see Engine).
    batch_size: int | None = None
    # Temperature fallback for chunks whose output looks degenerate (loops, very low confidence).
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float = 2.4
    log_prob_threshold: float = -1.0
    no_speech_threshold: float = 0.6

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if self.beam_size < 1:
            raise ValueError("beam size must be at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch size must be at least 1")


@dataclass(frozen=True)
class EngineJob:
    """One input. `audio` (16 kHz mono float32) is used instead of reading `source` when given."""

    job_id: int
    source: Path
    audio: np.ndarray | None = None
    # Skip audio before this point (crash resume); segments come out in original time.
    start_at_s: float = 0.0
    # Stop reading here (a re-run of a range); None: the whole input.
    end_at_s: float | None = None


@dataclass(frozen=True)
class JobStarted:
    job_id: int
    duration_s: float
    language: str
    language_probability: float
    # Where this run of the job begins (a resume after a crash or a device fallback); 0 from the start.
    start_at_s: float = 0.0


@dataclass(frozen=True)
class SegmentsDecoded:
    job_id: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class JobProgress:
    job_id: int
    done_s: float
    total_s: float


@dataclass(frozen=True)
class JobFinished:
    job_id: int
    # What the user should know about a job that succeeded: a damaged stretch that could not be read, a
    # second audio track that was not transcribed, no speech found. One short sentence each.
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobFailed:
    job_id: int
    reason: str


class DeviceFailure(RuntimeError):
    """The GPU failed while decoding (not out of memory, which halves the batch): the run ends, and the
    caller may load the model on the CPU and resume the jobs from their progress."""


@dataclass(frozen=True)
class JobCancelled:
    job_id: int


# The last event of a job's run, whichever way it ended; `isinstance(event, JobEnd)` tells them apart.
JobEnd = JobFinished | JobFailed | JobCancelled

Event = Union[JobStarted, SegmentsDecoded, JobProgress, JobFinished, JobFailed, JobCancelled]  # noqa: UP007 - py3.10 runtime alias
