"""One engine process per extra GPU, above the engine: MultiGpuEngine runs this process's Engine and the
other GPUs' engine processes on one queue; open_engine decides which a loaded model gets.

With two GPUs in one process, the engine reached 1.3-1.4x one GPU on a queue of 828 short files, while
two independent processes, one GPU and half the queue each, reached about 1.75x
(benchmarks/results/2026-11-30-two-gpus-real-queue.md): one process has one CPU-stage pool, one CTranslate2
job queue and one GIL for both cards. So the engine in the app's process drives the first GPU, and each
further GPU gets a process of its own (a shard) with its own replica of the model, its own CPU-stage processes
and its own scheduler. That gives 1.45-1.57x one GPU against 1.35-1.42x in one process
(benchmarks/results/2026-11-30-engine-process-per-gpu.md): the rest of the way to 2x is not these limits.

Shards pull jobs from the run's queue one at a time, as their read-ahead wants them, so a faster
shard takes more and the queue keeps its order; their events come back over a pipe and are merged
into the run's events. A shard that dies in a run is a device failure: the run ends and the app
resumes the unfinished jobs on the CPU, as for a GPU error in its own process.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from typing import Any

from desktop.engine.engine import Engine
from desktop.engine.engine_process import (
    STOP_WAIT_S,
    CancelRun,
    EngineProcess,
    NextJob,
    ProcessModel,
    ProcessSpec,
    RunDone,
    RunEvent,
    RunFailed,
    StartRun,
    WantJob,
    processes_for,
    stop_engine_processes,
)
from desktop.engine.events import (
    DeviceFailure,
    EngineJob,
    Event,
    JobCancelled,
    JobFailed,
    JobFinished,
    TranscribeOptions,
)
from desktop.engine.host import EngineHost
from desktop.engine.loading import LoadedModel

log = logging.getLogger(__name__)

# Engine processes are started and stopped in engine_process; callers find them here too.
__all__ = [
    "EngineProcess", "MultiGpuEngine", "ProcessSpec", "open_engine", "processes_for", "run_across",
    "stop_engine_processes",
]

# A shard may hold at most this many unfinished jobs more than the least busy one: each engine reads up to
# 192 files ahead, and without this the first to ask took a whole short queue and the other GPUs idled.
MAX_JOBS_AHEAD = 2
_POLL_S = 0.05


# -- the parent's side -----------------------------------------------------------------------------
class _Dispenser:
    """The run's jobs, handed out one at a time to whichever shard asks first (the caller's iterator is
    not thread-safe), but never to one that holds more than MAX_JOBS_AHEAD unfinished jobs over the
    least busy shard taking part; remembers which shard took each job."""

    def __init__(self, jobs: Iterable[EngineJob], taken: dict[int, str]) -> None:
        self._jobs = iter(jobs)
        self._cond = threading.Condition()
        self._closed = False
        self.taken = taken  # job id -> the name of the shard that took it
        self._holding: dict[str, int] = {}  # shards taking part -> their jobs taken and not ended

    def next(self, taker: str) -> EngineJob | None:
        with self._cond:
            self._holding.setdefault(taker, 0)  # asking is taking part
            while not self._closed and self._holding[taker] > min(self._holding.values()) + MAX_JOBS_AHEAD:
                self._cond.wait(_POLL_S)
            if self._closed:
                return None
            try:
                job = next(self._jobs)
            except StopIteration:
                self._closed = True
                return None
            except Exception:  # noqa: BLE001 - a broken job source ends the run's queue, not the run
                log.exception("the job source failed")
                self._closed = True
                return None
            self.taken[job.job_id] = taker
            self._holding[taker] += 1
            return job

    def jobs(self, taker: str) -> Iterator[EngineJob]:
        while (job := self.next(taker)) is not None:
            yield job

    def ended(self, job_id: int) -> None:
        with self._cond:
            taker = self.taken.get(job_id)
            if taker in self._holding:
                self._holding[taker] -= 1
                self._cond.notify_all()

    def join(self, taker: str) -> None:
        """A shard takes part from now on: the others leave it its share even before it first asks."""
        with self._cond:
            self._holding.setdefault(taker, 0)

    def leave(self, taker: str) -> None:
        """A shard's run ended: the others no longer wait for it to take its share."""
        with self._cond:
            self._holding.pop(taker, None)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def exhausted(self) -> bool:
        """No job is left to hand out (the queue ran out, or the run is ending)."""
        return self._closed


@dataclass(frozen=True)
class _Merged:
    """What a shard's run puts on the run's merged queue: an event, or its end (with why, if failed)."""

    shard: str
    event: Event | None = None
    done: bool = False
    summary: str = ""
    failure: str | None = None
    device_failure: bool = False


class _ProcessRun:
    """One run on one remote shard: answers its requests for jobs from the dispenser (on a thread of its
    own, as the caller's job source may block) and puts its events on the merged queue."""

    def __init__(
        self, shard: EngineProcess, run_id: int, options: TranscribeOptions, dispenser: _Dispenser,
        merged: queue.Queue[_Merged],
    ) -> None:
        self.shard = shard
        self.run_id = run_id
        self.options = options
        self.dispenser = dispenser
        self.merged = merged
        self.finished = threading.Event()
        self._finish_lock = threading.Lock()
        self._wants: queue.Queue[bool] = queue.Queue()
        self._cancelled = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._serve, name=f"verbatim-shard-run-{self.shard.spec.device_index}",
                         daemon=True).start()

    def _serve(self) -> None:
        # A shard still loading joins the run when it is ready; a run whose queue ran out (or that was
        # cancelled) before then ends without it.
        ready = self.shard.ready
        while not ready.done():
            if self.dispenser.exhausted or self._cancelled.is_set():
                self._finish(_Merged(self.shard.spec.name, done=True))
                return
            futures_wait([ready], timeout=_POLL_S)
        if ready.exception() is not None:  # it failed to start (logged): the run goes on without it
            self._finish(_Merged(self.shard.spec.name, done=True))
            return
        self.shard.begin(self)
        self.dispenser.join(self.shard.spec.name)
        if self._cancelled.is_set() or not self.shard.send(StartRun(self.run_id, self.options)):
            self._finish(_Merged(self.shard.spec.name, done=True))
            return
        while self._wants.get():
            job = None if self._cancelled.is_set() else self.dispenser.next(self.shard.spec.name)
            self.shard.send(NextJob(self.run_id, job))

    def receive(self, message: object) -> None:
        if isinstance(message, WantJob):
            self._wants.put(True)
        elif isinstance(message, RunEvent):
            self.merged.put(_Merged(self.shard.spec.name, event=message.event))
        elif isinstance(message, RunDone):
            self._finish(_Merged(self.shard.spec.name, done=True, summary=message.summary))
        elif isinstance(message, RunFailed):
            self._finish(_Merged(self.shard.spec.name, done=True, failure=message.reason,
                                 device_failure=message.device_failure))

    def died(self, exit_code: int | None) -> None:
        self._finish(_Merged(self.shard.spec.name, done=True, device_failure=True,
                             failure=f"the engine process for {self.shard.spec.name} stopped (exit code {exit_code})"))

    def cancel(self) -> None:
        if not self._cancelled.is_set() and not self.finished.is_set():
            self._cancelled.set()
            self.shard.send(CancelRun(self.run_id))

    def abandon(self) -> None:
        """The caller stopped reading the run: cancel the shard's part, and let this run's thread end now
        (the shard's own end of the run, whenever it comes, is for nobody)."""
        self.cancel()
        self._finish(None)

    def _finish(self, message: _Merged | None) -> None:
        with self._finish_lock:  # (the pipe's reader and this run's thread may both get here)
            if self.finished.is_set():
                return
            self.finished.set()
        self._wants.put(False)
        self.shard.end(self)
        self.dispenser.leave(self.shard.spec.name)
        if message is not None:
            self.merged.put(message)


_run_ids = itertools.count(1)


def run_across(
    local: Callable[[Iterable[EngineJob], threading.Event], Iterator[Event]],
    remotes: Sequence[EngineProcess],
    jobs: Iterable[EngineJob],
    options: TranscribeOptions,
    cancel: threading.Event,
    summaries: list[str],
    taken: dict[int, str],
) -> Iterator[Event]:
    """The run's events from this process's engine (`local`, run on a thread) and every remote shard,
    as they come; `summaries` gets each remote's RunStats summary, `taken` which shard took each job
    ("local" or the shard's name). Cancelling ends every shard's run (each says JobCancelled for its jobs); a shard's
    device failure, or its process dying, ends the run with DeviceFailure once the others stopped."""
    run_id = next(_run_ids)
    dispenser = _Dispenser(jobs, taken)
    merged: queue.Queue[_Merged] = queue.Queue()
    local_cancel = threading.Event()

    def run_local() -> None:
        end = _Merged("local", done=True)
        try:
            for event in local(dispenser.jobs("local"), local_cancel):
                merged.put(_Merged("local", event=event))
        except DeviceFailure as exc:
            end = _Merged("local", done=True, failure=str(exc), device_failure=True)
        except Exception as exc:  # noqa: BLE001 - re-raised below, on the caller's thread
            log.exception("the engine run failed")
            end = _Merged("local", done=True, failure=f"{type(exc).__name__}: {exc}")
        dispenser.leave("local")
        merged.put(end)

    shard_runs = [_ProcessRun(shard, run_id, options, dispenser, merged) for shard in remotes]
    for shard in remotes:  # ready ones take part from the start (this process's engine asks first)
        if shard.is_ready:
            dispenser.join(shard.spec.name)
    local_thread = threading.Thread(target=run_local, name="verbatim-local-run", daemon=True)
    local_thread.start()
    for shard_run in shard_runs:
        shard_run.start()
    running = 1 + len(shard_runs)
    failures: list[_Merged] = []
    ended: set[int] = set()  # jobs whose last event (finished, failed, cancelled) has come

    def stop_all() -> None:
        dispenser.close()
        local_cancel.set()
        for shard_run in shard_runs:
            shard_run.cancel()

    try:
        while running:
            if cancel.is_set() and not local_cancel.is_set():
                stop_all()
            try:
                message = merged.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            event = message.event
            if event is not None:
                if isinstance(event, JobCancelled) and failures and not cancel.is_set():
                    # The others stop because one GPU failed, not because the user cancelled: their
                    # jobs are not cancelled but unfinished, and the app resumes them on the CPU.
                    continue
                if isinstance(event, JobFinished | JobFailed | JobCancelled):
                    ended.add(event.job_id)
                    dispenser.ended(event.job_id)
                yield event
            if message.done:
                running -= 1
                if message.summary:
                    summaries.append(f"{message.shard}: {message.summary}")
                if message.failure is not None:
                    failures.append(message)
                    stop_all()  # the others end their runs; their events still come out
        if failures:
            first = next((f for f in failures if f.device_failure), failures[0])
            if first.device_failure:
                raise DeviceFailure(first.failure)
            raise RuntimeError(f"{first.shard}: {first.failure}")
        # A job handed to a shard just as the run was cancelled may never have reached its engine; every
        # job taken ends with an event all the same.
        for job_id in [job for job in taken if job not in ended]:
            if cancel.is_set():
                yield JobCancelled(job_id)
            else:
                log.error("job %s was handed to %s and never ended", job_id, taken[job_id])
                yield JobFailed(job_id, "the transcription lost track of this file; run it again")
    finally:
        stop_all()
        for shard_run in shard_runs:
            shard_run.abandon()  # (a no-op for runs that ended)
        # This process's run ends before the next may start: its end closes the engine's thread pools.
        local_thread.join(timeout=STOP_WAIT_S)


class MultiGpuEngine(Engine):
    """An Engine on this process's GPUs, with an engine process for each further GPU: they take jobs from
    the same queue. Without further GPUs, an Engine."""

    def __init__(
        self,
        model: LoadedModel,
        prepare_workers: int | None = None,
        parallel_batches: int | None = None,
        prepare_in_processes: bool | None = None,
        host: EngineHost | None = None,
        processes: Sequence[ProcessSpec] | None = None,
    ) -> None:
        # None: one per GPU in model.shard_gpus.
        if processes is None:
            processes = [ProcessSpec("cuda", index) for index in model.shard_gpus] if model.device == "cuda" else []
        super().__init__(model, prepare_workers, parallel_batches, prepare_in_processes, host,
                         engines=1 + len(processes))
        self.processes: list[EngineProcess] = []
        if processes:
            process_model = ProcessModel(
                model.path, model.compute_type, model.workers_per_gpu, self.prepare_workers, prepare_in_processes
            )
            self.processes = processes_for(self.host, processes, process_model)
            self._starting.extend(process.ready for process in self.processes)
        self.process_summaries: list[str] = []  # the engine processes' RunStats summaries of the last run
        self.process_of_job: dict[int, str] = {}  # in the last run, which engine process took each job

    def cancel_job(self, job_id: int) -> None:
        super().cancel_job(job_id)
        for process in self.processes:
            process.cancel_job(job_id)

    def run(self, jobs: Iterable[EngineJob], options: TranscribeOptions, cancel: threading.Event) -> Iterator[Event]:
        """With engine processes, they and this process's engine take jobs from the same queue."""
        self.process_summaries, self.process_of_job = [], {}
        if not self.processes:
            return super().run(jobs, options, cancel)

        def local(shared_jobs: Iterable[EngineJob], local_cancel: threading.Event) -> Iterator[Event]:
            return Engine.run(self, shared_jobs, options, local_cancel)

        return run_across(local, self.processes, jobs, options, cancel, self.process_summaries, self.process_of_job)


def open_engine(model: LoadedModel, **settings: Any) -> MultiGpuEngine:
    """The engine for a loaded model: with an engine process for each of its further GPUs, if it has any."""
    return MultiGpuEngine(model, **settings)
