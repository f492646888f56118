"""What a finished job tells its user besides its segments (JobFinished.notices)."""

from __future__ import annotations

from collections.abc import Iterable

from desktop.engine.events import EngineJob

NO_SPEECH = "no speech found"


def job_notices(job: EngineJob, decode_notices: Iterable[str], segment_count: int) -> tuple[str, ...]:
    """The decoder's notices, and "no speech found" when a whole file gave no segment: an empty
    transcript of noise or of a second's sound would otherwise look like a transcription that lost its
    text. (A resumed or re-run range has segments outside what this run saw, so it says nothing.)"""
    notices = list(decode_notices)
    whole_file = job.start_at_s <= 0 and job.end_at_s is None
    if whole_file and segment_count == 0:
        notices.append(NO_SPEECH)
    return tuple(notices)
