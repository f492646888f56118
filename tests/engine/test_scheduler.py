"""The batching policy alone, without a model: fakes prepare files into chunks of given lengths and
compute batches at once (or when a test lets them), and the scheduler's events are checked."""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

from desktop.core.segment import Segment
from desktop.engine.audio import AudioError
from desktop.engine.events import (
    DeviceFailure,
    EngineJob,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobProgress,
    JobStarted,
    SegmentsDecoded,
)
from desktop.engine.prepare import Chunk
from desktop.engine.scheduler import BatchLimits, Item, JobState, Limits, Prepared, Scheduler


def prepared(durations: list[float]) -> Prepared:
    chunks, end_s = [], 0.0
    for i, d in enumerate(durations):
        end_s += d
        chunks.append(Chunk(i, np.zeros((80, 1), np.float32), end_s - d, d, end_s))
    return Prepared(duration_s=end_s, chunks=chunks, timeline=None, start_at_s=0.0)


class Fakes:
    """A queue of files with chunks of the given seconds. compute() records each batch as
    [(job, chunk)] and gives each item its own text; prepare() of a job in `slow` waits for its event."""

    def __init__(self, files: dict[int, list[float]]) -> None:
        self.files = files
        self.batches: list[list[tuple[int, int]]] = []
        self.prepared_order: list[int] = []
        self.slow: dict[int, threading.Event] = {}
        self.failing_jobs: set[int] = set()
        self.failing_batches: set[int] = set()  # by the job of their first item
        self.hold_batches: dict[int, threading.Event] = {}  # by the job of their first item
        self.lock = threading.Lock()
        self.prepared_all = threading.Condition()  # notified as files are prepared

    def prepare(self, job: EngineJob) -> Prepared:
        if job.job_id in self.slow:
            assert self.slow[job.job_id].wait(10)
        if job.job_id in self.failing_jobs:
            raise AudioError(f"job {job.job_id} is not audio")
        with self.lock:
            self.prepared_order.append(job.job_id)
        with self.prepared_all:
            self.prepared_all.notify_all()
        return prepared(self.files[job.job_id])

    def compute(self, batch: list[Item]) -> list[str]:
        first = batch[0].state.job.job_id
        with self.lock:
            self.batches.append([(i.state.job.job_id, i.chunk.index) for i in batch])
        if first in self.hold_batches:
            assert self.hold_batches[first].wait(10)
        if first in self.failing_batches:
            raise RuntimeError("the model failed")
        for item in batch:
            item.state.language = "en"
        return [f"job {i.state.job.job_id} chunk {i.chunk.index}" for i in batch]

    @staticmethod
    def segments(item: Item, text: str) -> list[Segment]:
        return [Segment(item.chunk.offset_s, item.chunk.offset_s + item.chunk.duration_s, text)]

    def scheduler(self, limits: Limits, **kwargs) -> Scheduler[str]:
        return Scheduler(self.prepare, self.compute, self.segments, limits, **kwargs)

    def jobs(self) -> list[EngineJob]:
        return [EngineJob(job_id, Path(f"{job_id}.wav")) for job_id in self.files]


@pytest.fixture
def all_ready_at_first_look(monkeypatch):
    """The scheduler's first look waits until every file of the queue is prepared (n files)."""
    from concurrent.futures import wait as futures_wait

    from desktop.engine import scheduler as scheduler_module

    real_ready_fills = scheduler_module.ready_fills

    def hold(fakes: Fakes) -> None:
        looked = threading.Event()
        n = len(fakes.files)

        def ready_fills(states, limits):
            if not looked.is_set():
                looked.set()
                with fakes.prepared_all:  # the feeder puts each file on the list just after submitting it
                    for _ in range(1000):
                        if len(states) >= n:
                            break
                        fakes.prepared_all.wait(0.01)
                futures_wait([s.future for s in states], timeout=10)
                assert len(states) == n and all(s.future.done() for s in states)
            return real_ready_fills(states, limits)

        monkeypatch.setattr(scheduler_module, "ready_fills", ready_fills)

    return hold


def run(scheduler: Scheduler, jobs, cancel: threading.Event | None = None) -> list:
    return list(scheduler.run(jobs, cancel or threading.Event()))


def of_job(events, job_id):
    return [e for e in events if e.job_id == job_id]


def test_each_job_gets_started_segments_progress_finished_in_time_order():
    fakes = Fakes({0: [10.0, 20.0, 5.0], 1: [3.0], 2: [30.0, 30.0]})
    events = run(fakes.scheduler(Limits(BatchLimits(2, math.inf), batches_in_flight=3, prepare_workers=2)),
                 fakes.jobs())
    for job_id, durations in fakes.files.items():
        mine = of_job(events, job_id)
        assert isinstance(mine[0], JobStarted) and mine[0].language == "en"
        assert isinstance(mine[-1], JobFinished)
        assert all(isinstance(e, SegmentsDecoded | JobProgress) for e in mine[1:-1])
        texts = [s.text for e in mine if isinstance(e, SegmentsDecoded) for s in e.segments]
        assert texts == [f"job {job_id} chunk {i}" for i in range(len(durations))]  # every chunk once, in order
        progress = [e.done_s for e in mine if isinstance(e, JobProgress)]
        assert progress == sorted(progress) and progress[-1] == pytest.approx(sum(durations))


def test_batches_pack_chunks_of_several_files_in_queue_order(all_ready_at_first_look):
    fakes = Fakes({0: [5.0, 5.0], 1: [4.0, 30.0], 2: [3.0]})
    all_ready_at_first_look(fakes)
    scheduler = fakes.scheduler(Limits(BatchLimits(10, 14.0), batches_in_flight=1, prepare_workers=3))
    events = run(scheduler, fakes.jobs())
    chunks = [pair for batch in fakes.batches for pair in batch]
    assert chunks == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]  # queue order, across files
    assert any(len({job for job, _ in batch}) > 1 for batch in fakes.batches)  # a batch held several files
    assert sum(isinstance(e, JobFinished) for e in events) == 3


def test_a_batch_takes_chunks_until_seconds_or_count_run_out():
    def state(job_id, durations):
        future: Future = Future()
        future.set_result(prepared(durations))
        return JobState(EngineJob(job_id, Path("x")), future, prepared=future.result())

    from desktop.engine import scheduler as scheduler_module

    fakes = Fakes({})
    scheduler = fakes.scheduler(Limits(BatchLimits(10, 14.0)))
    states = [state(0, [5.0, 5.0]), state(1, [4.0, 30.0]), state(2, [3.0])]
    batch = scheduler._next_batch(states, BatchLimits(chunks=10, seconds=14.0), [])
    # 5 + 5 + 4 = 14 s: the batch is full by seconds with three chunks, in queue order.
    assert [(i.state.job.job_id, i.chunk.index) for i in batch] == [(0, 0), (0, 1), (1, 0)]
    batch = scheduler._next_batch(states, BatchLimits(chunks=1, seconds=math.inf), [])
    assert [(i.state.job.job_id, i.chunk.index) for i in batch] == [(1, 1)]
    assert scheduler_module.ready_fills(states, BatchLimits(chunks=2, seconds=math.inf)) is False  # one left
    assert scheduler_module.ready_fills(states, BatchLimits(chunks=9, seconds=3.0)) is True
    assert scheduler._next_batch(states, None, []) == []  # settling only


@pytest.mark.parametrize("parallel", [1, 3])
def test_limits_are_respected(parallel):
    files = {i: [float(1 + i % 7)] * (1 + i % 3) for i in range(40)}
    fakes = Fakes(files)
    in_flight, most = [0], [0]
    lock = threading.Lock()
    real_compute = fakes.compute

    def compute(batch):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            return real_compute(batch)
        finally:
            with lock:
                in_flight[0] -= 1

    limits = Limits(BatchLimits(6, 12.0), batches_in_flight=parallel, prepare_workers=4)
    events = list(Scheduler(fakes.prepare, compute, fakes.segments, limits).run(fakes.jobs(), threading.Event()))
    assert sum(isinstance(e, JobFinished) for e in events) == len(files)
    assert most[0] <= parallel
    for batch in fakes.batches:
        assert len(batch) <= 6
        seconds = [files[job][chunk] for job, chunk in batch]
        assert sum(seconds[:-1]) < 12.0  # the last chunk may cross the limit, never one after it


def test_the_first_batch_on_one_decoder_takes_half_even_when_more_is_ready(all_ready_at_first_look):
    """Twelve files, all ready when the scheduler first looks: 4 then 8 (CPU batches of 8)."""
    fakes = Fakes({i: [3.0] for i in range(12)})
    all_ready_at_first_look(fakes)
    scheduler = fakes.scheduler(Limits(BatchLimits(8, math.inf), batches_in_flight=1, prepare_workers=12))
    events = run(scheduler, fakes.jobs())
    assert sum(isinstance(e, JobFinished) for e in events) == 12
    assert [len(batch) for batch in fakes.batches] == [4, 8]


def test_several_decoders_start_with_opening_shares(all_ready_at_first_look):
    fakes = Fakes({i: [3.0] for i in range(8)})
    all_ready_at_first_look(fakes)
    scheduler = fakes.scheduler(Limits(BatchLimits(8, math.inf), batches_in_flight=4, prepare_workers=8))
    events = run(scheduler, fakes.jobs())
    assert sum(isinstance(e, JobFinished) for e in events) == 8
    assert [len(batch) for batch in fakes.batches][:3] == [2, 2, 2]  # a quarter each while decoders are idle


def test_cancelling_a_job_and_the_run():
    """Job 0 is cancelled while its batch computes (its text never comes out); the run is cancelled once job
    2 finished: every job ends once, the rest cancelled."""
    fakes = Fakes({i: [2.0] for i in range(8)})
    hold = threading.Event()
    fakes.hold_batches = {0: hold}
    real_compute = fakes.compute
    scheduler: Scheduler[str]

    def compute(batch):
        if batch[0].state.job.job_id == 2:  # job 0's batch is still held
            scheduler.cancels.add(0)
            hold.set()
        return real_compute(batch)

    limits = Limits(BatchLimits(1, math.inf), batches_in_flight=2, prepare_workers=2)
    scheduler = Scheduler(fakes.prepare, compute, fakes.segments, limits)
    cancel = threading.Event()
    events = []
    for event in scheduler.run(fakes.jobs(), cancel):
        events.append(event)
        if isinstance(event, JobFinished) and event.job_id == 2:
            cancel.set()
    assert [type(e) for e in of_job(events, 0)] == [JobCancelled]
    assert isinstance(of_job(events, 1)[-1], JobFinished) and isinstance(of_job(events, 2)[-1], JobFinished)
    for job_id in range(8):
        ends = [e for e in of_job(events, job_id) if isinstance(e, JobFinished | JobCancelled | JobFailed)]
        assert len(ends) <= 1
        assert ends or not of_job(events, job_id)  # a job seen is a job ended
    assert any(isinstance(e, JobCancelled) for j in range(3, 8) for e in of_job(events, j))


def test_a_failing_job_or_batch_does_not_stop_the_others():
    fakes = Fakes({0: [2.0], 1: [2.0], 2: [2.0], 3: [2.0]})
    fakes.failing_jobs = {1}
    fakes.failing_batches = {2}
    scheduler = fakes.scheduler(Limits(BatchLimits(1, math.inf), batches_in_flight=1, prepare_workers=2))
    events = run(scheduler, fakes.jobs())
    failed = {e.job_id: e.reason for e in events if isinstance(e, JobFailed)}
    assert failed == {1: "job 1 is not audio", 2: "the speech model failed: the model failed"}
    assert {e.job_id for e in events if isinstance(e, JobFinished)} == {0, 3}


def test_a_fatal_batch_failure_ends_the_run():
    fakes = Fakes({0: [2.0], 1: [2.0]})
    fakes.failing_batches = {0}
    scheduler = fakes.scheduler(Limits(BatchLimits(1, math.inf)), fatal=lambda exc: DeviceFailure(str(exc)))
    with pytest.raises(DeviceFailure, match="the model failed"):
        run(scheduler, fakes.jobs())


def test_a_silent_file_finishes_with_no_speech_and_the_fixed_language():
    fakes = Fakes({0: [], 1: [2.0]})
    events = run(fakes.scheduler(Limits(BatchLimits(4, math.inf)), silent_language="en"), fakes.jobs())
    silent = of_job(events, 0)
    assert [type(e) for e in silent] == [JobStarted, JobProgress, JobFinished]
    assert silent[0].language == "en" and silent[-1].notices == ("no speech found",)
    assert isinstance(of_job(events, 1)[-1], JobFinished)


def test_jobs_are_read_ahead_lazily():
    """Jobs come from a generator: at most the read-ahead's worth is taken before the first is emitted."""
    fakes = Fakes({i: [1.0] for i in range(100)})
    taken: list[int] = []

    def jobs():
        for job in fakes.jobs():
            taken.append(job.job_id)
            yield job

    limits = Limits(BatchLimits(2, math.inf), batches_in_flight=1, prepare_workers=2)
    events = fakes.scheduler(limits).run(jobs(), threading.Event())
    first = next(events)
    assert isinstance(first, JobStarted)
    # Sent and unemitted batches, plus files waiting: nowhere near the 100 of the queue.
    assert len(taken) <= limits.max_unemitted_batches * limits.batch.chunks + limits.max_pending_files + 1
    assert sum(isinstance(e, JobFinished) for e in events) == 100


def test_waiting_for_a_slow_file_does_not_spin(monkeypatch):
    """One file is ready, the next takes a while to prepare: the loop waits on that one (it used to
    spin on the ready file's finished future and starve the decoder threads)."""
    from desktop.engine import scheduler as scheduler_module

    fakes = Fakes({0: [9.0], 1: [9.0]})
    slow = threading.Event()
    fakes.slow = {1: slow}
    calls = {"n": 0}
    real_ready_fills = scheduler_module.ready_fills

    def counting(states, limits):
        calls["n"] += 1
        return real_ready_fills(states, limits)

    monkeypatch.setattr(scheduler_module, "ready_fills", counting)
    scheduler = fakes.scheduler(Limits(BatchLimits(96, 960.0), batches_in_flight=3, prepare_workers=2))
    finished = threading.Timer(0.6, slow.set)  # a long file's decoding, as the loop sees it
    finished.start()
    try:
        events = run(scheduler, fakes.jobs())
    finally:
        finished.cancel()
    assert sum(isinstance(e, JobFinished) for e in events) == 2
    # About one pass per 50 ms wait while the slow file prepares; a spinning loop makes thousands.
    assert calls["n"] < 200, calls
