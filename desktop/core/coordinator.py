"""Writing a run's events to the library, so that what is saved is always a state a resume can start from.

The window and `verbatim record` both drive the engine and keep its results in the library; this is the one
place that decides what is written when:

- A job's segments are held until the progress event that covers them (or the job's end), then written with
  that resume point in one transaction. So the saved resume point never runs ahead of the saved text: a
  crash, or a write refused by a full disk, resumes exactly where the saved text ends.
- An edit made while the job runs saves the whole transcript, streamed segments included; those are then
  no longer pending.
- Any refused write raises StoreWriteError, and the job it belongs to takes no further writes until it is
  started again (`started`): its later events are dropped, since their segments would land after a gap.

No Qt here: the caller shows what went wrong and decides what to stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from desktop.core.jobs import Job, JobState
from desktop.core.segment import Segment
from desktop.core.store import Store, source_is_busy
from desktop.core.transcript import Transcript, fit_after

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resumable:
    """A job to hand to the engine when the app starts: from scratch, or from where a crash left it."""

    job: Job
    start_at_s: float
    interrupted: bool


class JobCoordinator:
    def __init__(self, store: Store) -> None:
        self.store = store
        # The transcripts the window shows, by job id; a running job's grows as segments stream in.
        self.transcripts: dict[int, Transcript] = {}
        self._pending: dict[int, list[Segment]] = {}
        # Jobs whose last write failed: nothing more is written for them until they start again.
        self._halted: set[int] = set()

    # -- start-up ----------------------------------------------------------------------------------
    def resumable(self) -> list[Resumable]:
        """Jobs a crash left running (from their resume point) and jobs still queued, in queue order.
        Needs the library's owner; a job whose source another live process holds (a recording that
        `verbatim record` is still making or transcribing) is not taken."""
        interrupted = set(self.store.recover_interrupted())
        found: list[Resumable] = []
        for job in self.store.jobs():
            if job.id in interrupted:
                found.append(Resumable(job, self.store.resume_point(job.id), interrupted=True))
            elif job.state == JobState.QUEUED and not source_is_busy(job.source):
                found.append(Resumable(job, 0.0, interrupted=False))
        return found

    # -- a run's events ----------------------------------------------------------------------------
    def started(self, job_id: int, duration_s: float, language: str, language_probability: float, model: str,
                start_at_s: float = 0.0) -> Transcript:
        """The engine began the job. A resume keeps what was committed before its start point."""
        self._halted.discard(job_id)
        self._pending.pop(job_id, None)
        self.store.mark_started(job_id, duration_s, language, language_probability, model, start_at_s)
        if start_at_s > 0:
            transcript = self.store.load_transcript(job_id)
        else:
            transcript = Transcript(self.store.info(job_id))
        self.transcripts[job_id] = transcript
        return transcript

    def decoded(self, job_id: int, segments: Sequence[Segment]) -> list[Segment]:
        """New segments, fitted behind the transcript's last one and shown at once; saved with the next
        progress or the job's end. Returns them as fitted."""
        if job_id in self._halted:
            return []
        transcript = self.transcript(job_id)
        previous_end_s = transcript[len(transcript) - 1].end_s if len(transcript) else 0.0
        fitted = fit_after(previous_end_s, segments)
        transcript.append(fitted)
        self._pending.setdefault(job_id, []).extend(fitted)
        return fitted

    def progressed(self, job_id: int, done_s: float) -> None:
        """Everything before done_s is decoded: its segments and the resume point, in one transaction."""
        if job_id in self._halted:
            return
        pending = self._pending.get(job_id, [])
        self._write(job_id, lambda: self.store.append_segments(job_id, pending, done_s=done_s))
        self._pending.pop(job_id, None)

    def ended(self, job_id: int, state: JobState, error: str | None = None) -> None:
        """The job is done, failed or cancelled: its last segments and its state, in one transaction."""
        if job_id in self._halted:
            return
        pending = self._pending.get(job_id, [])
        self._write(job_id, lambda: self.store.finish_job(job_id, pending, state, error))
        self._pending.pop(job_id, None)

    def edited(self, job_id: int, transcript: Transcript) -> None:
        """The user changed the transcript: all of it is saved, streamed segments included."""
        self.store.save_transcript(job_id, transcript)
        self._pending.pop(job_id, None)

    # -- queue operations --------------------------------------------------------------------------
    def requeue(self, job_id: int) -> Transcript:
        """Retry: the job goes back to the queue from scratch, with an empty transcript (a new object, so a
        re-run answer still on its way for the old one is recognised as stale)."""
        self.store.requeue(job_id)
        transcript = self.transcripts[job_id] = Transcript(self.store.info(job_id))
        return transcript

    def reorder(self, order: Sequence[int]) -> None:
        """The queue's new order (job ids, first to run first)."""
        self.store.set_order(order)

    # -- reading -----------------------------------------------------------------------------------
    def transcript(self, job_id: int) -> Transcript:
        transcript = self.transcripts.get(job_id)
        if transcript is None:
            transcript = self.store.load_transcript(job_id)
            self.transcripts[job_id] = transcript
        return transcript

    def forget(self, job_id: int) -> None:
        self.transcripts.pop(job_id, None)
        self._pending.pop(job_id, None)
        self._halted.discard(job_id)

    def is_halted(self, job_id: int) -> bool:
        return job_id in self._halted

    def halted(self) -> list[int]:
        return sorted(self._halted)

    def _write(self, job_id: int, write: Callable[[], None]) -> None:
        try:
            write()
        except Exception:
            self._halted.add(job_id)
            self._pending.pop(job_id, None)
            raise

