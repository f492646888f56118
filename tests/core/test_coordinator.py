"""The coordinator's queue operations on a real library: retry starts a job from scratch, reorder is kept."""

from __future__ import annotations

import pytest

from desktop.core.coordinator import JobCoordinator
from desktop.core.jobs import JobState
from desktop.core.segment import Segment
from desktop.core.store import Store


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("VERBATIM_HOME", str(tmp_path / "home"))
    with Store(owner=True) as opened:
        yield opened


def test_requeue_empties_the_transcript_and_the_job_runs_from_scratch(store):
    jobs = JobCoordinator(store)
    job = store.add_job("/audio/a.wav")
    jobs.started(job.id, 10.0, "en", 0.9, "base")
    jobs.decoded(job.id, [Segment(0.0, 2.0, " one")])
    jobs.ended(job.id, JobState.FAILED, "boom")
    old = jobs.transcript(job.id)

    fresh = jobs.requeue(job.id)

    assert fresh is not old and len(fresh) == 0 and jobs.transcript(job.id) is fresh
    again = store.job(job.id)
    assert (again.state, again.error) == (JobState.QUEUED, None)
    assert len(store.load_transcript(job.id)) == 0 and store.resume_point(job.id) == 0.0


def test_reorder_is_saved(store):
    ids = [store.add_job(f"/audio/{name}.wav").id for name in "abc"]
    JobCoordinator(store).reorder([ids[2], ids[0]])
    assert [job.id for job in store.jobs()] == [ids[2], ids[0], ids[1]]
