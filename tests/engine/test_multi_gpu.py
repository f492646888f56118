"""Engine processes per extra GPU (multi_gpu, "shards" below), exercised with CPU shards of the real model: they share the
queue, give the text this process gives, cancel, and a dead shard ends the run as a device failure."""

from __future__ import annotations

import threading

import pytest

from desktop.engine.engine import Engine
from desktop.engine.events import (
    DeviceFailure,
    EngineJob,
    JobCancelled,
    JobFinished,
    JobStarted,
    SegmentsDecoded,
    TranscribeOptions,
)
from desktop.engine.host import host_of
from desktop.engine.multi_gpu import MultiGpuEngine, ProcessSpec, stop_engine_processes

pytestmark = pytest.mark.model

TEXTS = [
    ("The quick brown fox jumps over the lazy dog.", "en"),
    ("Guten Tag. Das ist ein Test der Spracherkennung.", "de"),
    ("Buenos días. Hoy vamos a la playa.", "es"),
    ("Please call Stella and ask her to bring these things.", "en"),
]
# Batches of two: this process then reads at most 8 files ahead, and the shard gets some of twelve.
OPTIONS = TranscribeOptions(temperatures=(0.0,), batch_size=2)
READY_S = 120


@pytest.fixture
def shard_engine(loaded_model):
    """An engine on the CPU model with one remote CPU shard, both ready; the shard stops afterwards."""
    engine = MultiGpuEngine(loaded_model, processes=[ProcessSpec("cpu", 0)])
    assert engine.wait_ready(timeout_s=READY_S)
    yield engine
    stop_engine_processes(host_of(loaded_model))


@pytest.fixture
def queue_files(make_speech):
    # Twelve files: more than this process's read-ahead (see OPTIONS), so the shard gets some.
    return [make_speech(text, voice) for text, voice in TEXTS] * 3


def texts_by_job(events) -> dict[int, str]:
    out: dict[int, list[str]] = {}
    for event in events:
        if isinstance(event, SegmentsDecoded):
            out.setdefault(event.job_id, []).extend(s.text for s in event.segments)
    return {job: " ".join(parts) for job, parts in out.items()}


def test_a_shard_shares_the_queue_and_gives_the_same_text(loaded_model, shard_engine, queue_files):
    jobs = [EngineJob(i, f) for i, f in enumerate(queue_files)]
    events = list(shard_engine.run(jobs, OPTIONS, threading.Event()))
    assert set(shard_engine.process_of_job.values()) == {"local", ProcessSpec("cpu", 0).name}
    assert len(shard_engine.process_summaries) == 1 and "batches" in shard_engine.process_summaries[0]
    for job in jobs:
        own = [e for e in events if e.job_id == job.job_id]
        assert isinstance(own[0], JobStarted) and isinstance(own[-1], JobFinished), own
        assert sum(isinstance(e, JobFinished) for e in own) == 1
    # The same model and input give the same text in either process.
    alone = list(Engine(loaded_model).run(jobs, OPTIONS, threading.Event()))
    assert texts_by_job(events) == texts_by_job(alone)
    remote = [job for job, taker in shard_engine.process_of_job.items() if taker != "local"]
    assert remote and all(texts_by_job(events)[job] for job in remote)


def test_cancelling_ends_every_shards_jobs(shard_engine, queue_files):
    cancel = threading.Event()
    seen = []
    for event in shard_engine.run([EngineJob(i, f) for i, f in enumerate(queue_files)], OPTIONS, cancel):
        seen.append(event)
        if isinstance(event, JobFinished):
            cancel.set()
    ended = [e.job_id for e in seen if isinstance(e, JobFinished | JobCancelled)]
    taken = shard_engine.process_of_job
    # Every job handed to a shard ends exactly once; jobs never handed out never start.
    assert sorted(ended) == sorted(taken)
    assert any(isinstance(e, JobCancelled) for e in seen)
    # The shard serves the next run as if nothing happened.
    again = list(shard_engine.run([EngineJob(100, queue_files[0])], OPTIONS, threading.Event()))
    assert isinstance(again[-1], JobFinished) and again[-1].job_id == 100


def test_a_shard_that_dies_mid_run_is_a_device_failure(loaded_model, shard_engine, queue_files):
    shard = shard_engine.processes[0]
    name = shard.spec.name
    seen = []
    with pytest.raises(DeviceFailure, match=f"the engine process for {name} stopped"):
        for event in shard_engine.run([EngineJob(i, f) for i, f in enumerate(queue_files * 2)], OPTIONS,
                                      threading.Event()):
            seen.append(event)
            if shard_engine.process_of_job.get(event.job_id) == name:
                shard.process.kill()
    # The jobs this process was working on are not cancelled: the app resumes every unfinished job on the CPU.
    assert not [e for e in seen if isinstance(e, JobCancelled)]
    # The next engine for the model starts a new shard in its place.
    engine = MultiGpuEngine(loaded_model, processes=[ProcessSpec("cpu", 0)])
    assert engine.processes[0] is not shard and engine.wait_ready(timeout_s=READY_S)


def test_a_shard_that_cannot_load_leaves_the_run_to_the_others(loaded_model, queue_files):
    # No GPU here: the shard's model would fall back to the CPU, and a shard refuses to.
    engine = MultiGpuEngine(loaded_model, processes=[ProcessSpec("cuda", 0)])
    try:
        assert not engine.wait_ready(timeout_s=READY_S)
        events = list(engine.run([EngineJob(i, f) for i, f in enumerate(queue_files[:4])], OPTIONS,
                                 threading.Event()))
        assert sorted(e.job_id for e in events if isinstance(e, JobFinished)) == [0, 1, 2, 3]
        assert set(engine.process_of_job.values()) == {"local"}
    finally:
        stop_engine_processes(host_of(loaded_model))


def test_a_shard_with_cpu_stage_processes_stops_cleanly(loaded_model, queue_files):
    # A spawned process whose pools outlived it would never end (multiprocessing waits for them), and
    # the app's exit would wait with it.
    engine = MultiGpuEngine(loaded_model, prepare_workers=2, prepare_in_processes=True, processes=[ProcessSpec("cpu", 0)])
    try:
        assert engine.wait_ready(timeout_s=READY_S)
        events = list(engine.run([EngineJob(i, f) for i, f in enumerate(queue_files)], OPTIONS, threading.Event()))
        assert len([e for e in events if isinstance(e, JobFinished)]) == len(queue_files)
        shard = engine.processes[0]
    finally:
        stop_engine_processes(host_of(loaded_model))
    assert shard.process.exitcode == 0  # it ended on its own, not killed by stop()


class LoadingShard:
    """Stands in for a shard process that is still loading its model (it never becomes ready)."""

    def __init__(self):
        from concurrent.futures import Future

        self.spec = ProcessSpec("cuda", 1)
        self.ready = Future()
        self.is_ready = False
        self.sent = []

    def begin(self, run):
        raise AssertionError("a shard that is not ready must not join the run")

    def end(self, run):
        pass

    def send(self, message):
        self.sent.append(message)
        return True


def test_a_shard_still_loading_does_not_hold_up_the_run(loaded_model, queue_files):
    from desktop.engine.multi_gpu import run_across

    engine = Engine(loaded_model)
    taken: dict[int, str] = {}
    jobs = [EngineJob(i, f) for i, f in enumerate(queue_files[:3])]
    shard = LoadingShard()

    def local(shared_jobs, cancel):
        return engine.run(shared_jobs, OPTIONS, cancel)

    events = list(run_across(local, [shard], jobs, OPTIONS, threading.Event(), [], taken))
    assert sorted(e.job_id for e in events if isinstance(e, JobFinished)) == [0, 1, 2]
    assert set(taken.values()) == {"local"} and not shard.sent


def test_a_run_closed_early_ends_its_shard_part_and_the_next_run_works(shard_engine, queue_files):
    run = shard_engine.run([EngineJob(i, f) for i, f in enumerate(queue_files)], OPTIONS, threading.Event())
    next(run)
    run.close()  # the caller stopped reading (the app closing, an exception in its loop)
    for thread in threading.enumerate():
        if thread.name.startswith("verbatim-shard-run-"):
            thread.join(timeout=READY_S)
            assert not thread.is_alive()  # it no longer waits for the shard's requests
    again = list(shard_engine.run([EngineJob(100, queue_files[1])], OPTIONS, threading.Event()))
    assert isinstance(again[-1], JobFinished) and again[-1].job_id == 100


def test_a_short_queue_is_shared_between_the_shards(shard_engine, queue_files):
    # Default batches: this process alone would read all four files ahead; the shard takes its share.
    options = TranscribeOptions(temperatures=(0.0,))
    events = list(shard_engine.run([EngineJob(i, f) for i, f in enumerate(queue_files[:4])], options,
                                   threading.Event()))
    assert sorted(e.job_id for e in events if isinstance(e, JobFinished)) == [0, 1, 2, 3]
    takers = list(shard_engine.process_of_job.values())
    assert "local" in takers and ProcessSpec("cpu", 0).name in takers


def test_every_remote_shard_takes_part(loaded_model, queue_files):
    """Three or more GPUs: each engine process beyond the first gets files, not only one of them."""
    engine = MultiGpuEngine(loaded_model, processes=[ProcessSpec("cpu", 0), ProcessSpec("cpu", 1)])
    try:
        assert engine.wait_ready(timeout_s=READY_S)
        jobs = [EngineJob(i, f) for i, f in enumerate(queue_files * 2)]
        events = list(engine.run(jobs, OPTIONS, threading.Event()))
        assert sum(isinstance(e, JobFinished) for e in events) == len(jobs)
        takers = set(engine.process_of_job.values())
        assert {ProcessSpec("cpu", 0).name, ProcessSpec("cpu", 1).name} <= takers, engine.process_of_job
    finally:
        stop_engine_processes(host_of(loaded_model))
