"""One engine process per extra GPU.

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

import atexit
import itertools
import logging
import multiprocessing
import multiprocessing.util  # noqa: F401 - its exit handler registers before ours (see _stop_every_shard)
import os
import queue
import threading
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for_objects
from pathlib import Path
from typing import Any

from desktop.core.privacy import disable_telemetry
from desktop.engine.events import (
    DeviceFailure,
    EngineJob,
    Event,
    JobCancelled,
    JobFailed,
    JobFinished,
    TranscribeOptions,
)

log = logging.getLogger(__name__)

# A shard may hold at most this many unfinished jobs more than the least busy one: each engine reads up to
# 192 files ahead, and without this the first to ask took a whole short queue and the other GPUs idled.
MAX_JOBS_AHEAD = 2
# How long a shard may take to end its run after the run was cancelled or abandoned, and to stop.
STOP_WAIT_S = 10.0
_POLL_S = 0.05


@dataclass(frozen=True)
class ShardSpec:
    """Where a shard's model replica runs ("cuda" and a GPU index; "cpu" in tests)."""

    device: str
    device_index: int = 0

    @property
    def name(self) -> str:
        return f"GPU {self.device_index}" if self.device == "cuda" else f"{self.device} shard {self.device_index}"


@dataclass(frozen=True)
class ShardModel:
    """What a shard loads: the parent's model, on the shard's device."""

    path: Path
    compute_type: str
    workers_per_gpu: int
    prepare_workers: int
    prepare_in_processes: bool | None = None  # None: the engine's choice for the device


# -- messages over the pipe (parent -> shard, then shard -> parent) ---------------------------------
@dataclass(frozen=True)
class _StartRun:
    run_id: int
    options: TranscribeOptions


@dataclass(frozen=True)
class _NextJob:
    """The parent's answer to _WantJob: the next job, or None when the run's queue is done."""

    run_id: int
    job: EngineJob | None


@dataclass(frozen=True)
class _CancelRun:
    run_id: int


@dataclass(frozen=True)
class _CancelJob:
    job_id: int


@dataclass(frozen=True)
class _Stop:
    pass


@dataclass(frozen=True)
class _Ready:
    description: str


@dataclass(frozen=True)
class _LoadFailed:
    reason: str


@dataclass(frozen=True)
class _WantJob:
    run_id: int


@dataclass(frozen=True)
class _RunEvent:
    run_id: int
    event: Event


@dataclass(frozen=True)
class _RunDone:
    run_id: int
    summary: str


@dataclass(frozen=True)
class _RunFailed:
    run_id: int
    reason: str
    device_failure: bool


# -- the shard process ---------------------------------------------------------------------------
def shard_main(conn: Any, spec: ShardSpec, model: ShardModel) -> None:
    """A shard's process: load the model on its device, then serve runs until told to stop or until
    the parent is gone (its end of the pipe closes)."""
    disable_telemetry()  # inherited from the parent too; this process loads onnxruntime
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s [{spec.name}] %(name)s: %(message)s")
    send_lock = threading.Lock()

    def send(message: object) -> None:
        with send_lock:
            conn.send(message)

    try:
        from desktop.engine.loading import load_model

        loaded = load_model(
            str(model.path), device=spec.device, compute_type=model.compute_type,
            device_indices=(spec.device_index,), workers_per_gpu=model.workers_per_gpu,
        )
        if loaded.device != spec.device:
            send(_LoadFailed(loaded.device_note or f"the model did not load on {spec.name}"))
            return
        # Starts the CPU-stage processes and warms the GPU workers, as the app does at load.
        first = _new_engine(loaded, model)
        first.wait_ready()
    except Exception as exc:  # noqa: BLE001 - the parent says why, and runs without this shard
        send(_LoadFailed(f"{type(exc).__name__}: {exc}"))
        _close_pools()
        return
    send(_Ready(loaded.description))
    try:
        _serve_runs(conn, send, loaded, model, first)
    finally:
        # Told to stop, or the app is gone: what the CPU-stage processes are still preparing is wanted by no
        # run, and waiting for a long file's preparation would keep them alive for minutes after the app.
        from desktop.engine.prepare import terminate_worker_processes

        terminate_worker_processes(1.0)


def _new_engine(loaded: Any, model: ShardModel) -> Any:
    from desktop.engine.engine import Engine

    return Engine(loaded, prepare_workers=model.prepare_workers, prepare_in_processes=model.prepare_in_processes,
                  remote_shards=())


def _close_pools() -> None:
    from desktop.engine.prepare import close_worker_processes

    close_worker_processes()


@dataclass
class _Serving:
    """A shard's current run, shared by its pipe's reader and its main loop (under a lock)."""

    engine: Any  # the engine per-job cancels go to
    run_id: int | None = None
    cancel: threading.Event | None = None
    ended_run_id: int = 0  # the last run that ended: later answers for it are for nobody


def _serve_runs(conn: Any, send: Callable[[object], None], loaded: Any, model: ShardModel, first: Any) -> None:
    runs: queue.Queue[_StartRun | None] = queue.Queue()
    answers: dict[int, queue.Queue[EngineJob | None]] = {}
    current = _Serving(first)
    state_lock = threading.Lock()

    def answers_for(run_id: int) -> queue.Queue[EngineJob | None]:
        with state_lock:
            if run_id <= current.ended_run_id:
                return queue.Queue()
            return answers.setdefault(run_id, queue.Queue())

    def receive() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                # The parent is gone: nobody waits for this process's work. Its CPU-stage processes
                # go first (they would outlive it), for a few seconds at most.
                closing = threading.Thread(target=_close_pools, daemon=True)
                closing.start()
                closing.join(STOP_WAIT_S / 2)
                os._exit(0)
            if isinstance(message, _StartRun):
                runs.put(message)
            elif isinstance(message, _NextJob):
                answers_for(message.run_id).put(message.job)
            elif isinstance(message, _CancelRun):
                with state_lock:
                    if current.run_id == message.run_id and current.cancel is not None:
                        current.cancel.set()
                answers_for(message.run_id).put(None)
            elif isinstance(message, _CancelJob):
                with state_lock:
                    engine = current.engine
                engine.cancel_job(message.job_id)
            elif isinstance(message, _Stop):
                # A run still going ends first (cancelled, its wait for a job answered), then the loop.
                with state_lock:
                    if current.cancel is not None:
                        current.cancel.set()
                    waiting = list(answers.values())
                for replies in waiting:
                    replies.put(None)
                runs.put(None)
                return

    threading.Thread(target=receive, name="verbatim-shard-receive", daemon=True).start()
    while (start := runs.get()) is not None:
        run_id = start.run_id
        cancel = threading.Event()
        engine = _new_engine(loaded, model)
        with state_lock:
            current.run_id, current.cancel, current.engine = run_id, cancel, engine
        replies = answers_for(run_id)

        def jobs(run_id: int = run_id, replies: queue.Queue[EngineJob | None] = replies) -> Iterator[EngineJob]:
            while True:
                send(_WantJob(run_id))
                job = replies.get()
                if job is None:
                    return
                yield job

        try:
            for event in engine.run(jobs(), start.options, cancel):
                send(_RunEvent(run_id, event))
            send(_RunDone(run_id, engine.stats.summary()))
        except DeviceFailure as exc:
            send(_RunFailed(run_id, str(exc), device_failure=True))
        except Exception as exc:  # noqa: BLE001 - the parent ends the run with this reason
            log.error("the run failed:\n%s", traceback.format_exc())
            send(_RunFailed(run_id, f"{type(exc).__name__}: {exc}", device_failure=False))
        finally:
            with state_lock:
                answers.pop(run_id, None)
                current.run_id, current.cancel = None, None
                current.ended_run_id = max(current.ended_run_id, run_id)


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


class RemoteShard:
    """The parent's handle on one shard process."""

    def __init__(self, spec: ShardSpec, model: ShardModel) -> None:
        self.spec = spec
        context = multiprocessing.get_context("spawn")  # the parent holds CUDA contexts and threads
        self._conn, child_conn = context.Pipe()
        # Not a daemon: a daemon process may not have children, and a shard has its CPU-stage processes.
        self.process = context.Process(
            target=shard_main, args=(child_conn, spec, model), name=f"verbatim-shard-{spec.device_index}"
        )
        self.process.start()
        child_conn.close()
        self.ready: Future[str] = Future()
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        # Reaping the process (join, exitcode) from two threads at once can leave exitcode None for a
        # moment (the loser's waitpid fails), so it happens under this lock.
        self._reap_lock = threading.Lock()
        self._run: _ShardRun | None = None
        threading.Thread(target=self._receive, name=f"verbatim-shard-{spec.device_index}", daemon=True).start()

    def running(self) -> bool:
        with self._reap_lock:
            return self.process.is_alive()

    @property
    def is_ready(self) -> bool:
        """Loaded and reading its pipe."""
        return self.ready.done() and self.ready.exception() is None

    def cancel_job(self, job_id: int) -> None:
        # Only once it reads its pipe: a loading shard does not yet, and a full pipe would block.
        if self.is_ready:
            self.send(_CancelJob(job_id))

    def send(self, message: object) -> bool:
        try:
            with self._send_lock:
                self._conn.send(message)
            return True
        except (OSError, ValueError):
            return False

    def _receive(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, _Ready):
                log.info("%s ready: %s", self.spec.name, message.description)
                self.ready.set_result(message.description)
                continue
            if isinstance(message, _LoadFailed):
                log.warning("the engine process for %s did not start: %s", self.spec.name, message.reason)
                self.ready.set_exception(RuntimeError(message.reason))
                continue
            with self._lock:
                run = self._run
            if run is not None and getattr(message, "run_id", None) == run.run_id:
                run.receive(message)
        wait_for_objects([self.process.sentinel], timeout=STOP_WAIT_S)  # ended (or about to): not reaped here
        with self._reap_lock:
            exit_code = self.process.exitcode
        if not self.ready.done():
            self.ready.set_exception(RuntimeError(f"the engine process for {self.spec.name} stopped while loading"))
        with self._lock:
            run = self._run
        if run is not None:
            run.died(exit_code)

    def begin(self, run: _ShardRun) -> None:
        with self._lock:
            self._run = run

    def end(self, run: _ShardRun) -> None:
        with self._lock:
            if self._run is run:
                self._run = None

    def wait_stopped(self) -> None:
        """Wait for the process told to stop to end (terminated if it will not), and close the pipe."""
        with self._reap_lock:
            self.process.join(timeout=STOP_WAIT_S)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(timeout=STOP_WAIT_S)
        self._conn.close()


class _ShardRun:
    """One run on one remote shard: answers its requests for jobs from the dispenser (on a thread of its
    own, as the caller's job source may block) and puts its events on the merged queue."""

    def __init__(
        self, shard: RemoteShard, run_id: int, options: TranscribeOptions, dispenser: _Dispenser,
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
        if self._cancelled.is_set() or not self.shard.send(_StartRun(self.run_id, self.options)):
            self._finish(_Merged(self.shard.spec.name, done=True))
            return
        while self._wants.get():
            job = None if self._cancelled.is_set() else self.dispenser.next(self.shard.spec.name)
            self.shard.send(_NextJob(self.run_id, job))

    def receive(self, message: object) -> None:
        if isinstance(message, _WantJob):
            self._wants.put(True)
        elif isinstance(message, _RunEvent):
            self.merged.put(_Merged(self.shard.spec.name, event=message.event))
        elif isinstance(message, _RunDone):
            self._finish(_Merged(self.shard.spec.name, done=True, summary=message.summary))
        elif isinstance(message, _RunFailed):
            self._finish(_Merged(self.shard.spec.name, done=True, failure=message.reason,
                                 device_failure=message.device_failure))

    def died(self, exit_code: int | None) -> None:
        self._finish(_Merged(self.shard.spec.name, done=True, device_failure=True,
                             failure=f"the engine process for {self.shard.spec.name} stopped (exit code {exit_code})"))

    def cancel(self) -> None:
        if not self._cancelled.is_set() and not self.finished.is_set():
            self._cancelled.set()
            self.shard.send(_CancelRun(self.run_id))

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


def run_sharded(
    local: Callable[[Iterable[EngineJob], threading.Event], Iterator[Event]],
    remotes: Sequence[RemoteShard],
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

    shard_runs = [_ShardRun(shard, run_id, options, dispenser, merged) for shard in remotes]
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


# -- the shards of each loaded model ---------------------------------------------------------------
# Weak keys: a model the user let go of stops its shards (and frees their GPUs).
_shards: weakref.WeakKeyDictionary[Any, dict[tuple[ShardSpec, ShardModel], RemoteShard]] = weakref.WeakKeyDictionary()
_shards_lock = threading.Lock()
_every_shard: weakref.WeakSet[RemoteShard] = weakref.WeakSet()


def shards_for(owner: Any, specs: Sequence[ShardSpec], model: ShardModel) -> list[RemoteShard]:
    """The shard processes serving `owner` (the loaded model) on `specs`, started on first use and
    kept while the model is (a new one replaces a shard that died)."""
    with _shards_lock:
        known = _shards.get(owner)
        if known is None:
            known = _shards[owner] = {}
            weakref.finalize(owner, _stop_shards, known)
        out = []
        for spec in specs:
            shard = known.get((spec, model))
            if shard is None or not shard.running():
                shard = known[(spec, model)] = RemoteShard(spec, model)
                _every_shard.add(shard)
            out.append(shard)
        return out


def stop_shards(owner: Any) -> None:
    """Stop the shard processes of a loaded model (the app when it lets a model go; tests)."""
    with _shards_lock:
        known = _shards.pop(owner, None)
    if known:
        _stop_shards(known)


def _stop_shards(known: dict[tuple[ShardSpec, ShardModel], RemoteShard]) -> None:
    shards = list(known.values())
    known.clear()
    _stop(shards)


def _stop(shards: list[RemoteShard]) -> None:
    for shard in shards:  # all told first, so they stop side by side
        shard.send(_Stop())
    for shard in shards:
        shard.wait_stopped()


@atexit.register
def _stop_every_shard() -> None:
    # Runs before multiprocessing's own exit handler (registered earlier), which would wait for these
    # non-daemon processes forever.
    _stop(list(_every_shard))
