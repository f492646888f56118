"""An engine process: a further GPU's own Engine, in a process of its own, served over a pipe. The parent's
handle (EngineProcess) starts it, sends it runs and jobs, and passes what comes back to the run listening
(multi_gpu's); the host of the loaded model keeps the processes (processes_for).

Each further GPU gets a process of its own with its own replica of the model, its own CPU-stage processes
and its own scheduler (why: desktop/engine/multi_gpu.py).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import multiprocessing.util  # noqa: F401 - its exit handler registers before ours (see _stop_every_shard)
import os
import queue
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for_objects
from pathlib import Path
from typing import Any, Protocol

from desktop.core.privacy import disable_telemetry
from desktop.engine.engine import Engine
from desktop.engine.events import DeviceFailure, EngineJob, Event, TranscribeOptions
from desktop.engine.host import EngineHost

log = logging.getLogger(__name__)

# How long a shard may take to end its run after the run was cancelled or abandoned, and to stop.
STOP_WAIT_S = 10.0
_POLL_S = 0.05


@dataclass(frozen=True)
class ProcessSpec:
    """Where a shard's model replica runs ("cuda" and a GPU index; "cpu" in tests)."""

    device: str
    device_index: int = 0

    @property
    def name(self) -> str:
        return f"GPU {self.device_index}" if self.device == "cuda" else f"{self.device} shard {self.device_index}"


@dataclass(frozen=True)
class ProcessModel:
    """What a shard loads: the parent's model, on the shard's device."""

    path: Path
    compute_type: str
    workers_per_gpu: int
    prepare_workers: int
    prepare_in_processes: bool | None = None  # None: the engine's choice for the device


# -- messages over the pipe (parent -> shard, then shard -> parent) ---------------------------------
@dataclass(frozen=True)
class StartRun:
    run_id: int
    options: TranscribeOptions


@dataclass(frozen=True)
class NextJob:
    """The parent's answer to WantJob: the next job, or None when the run's queue is done."""

    run_id: int
    job: EngineJob | None


@dataclass(frozen=True)
class CancelRun:
    run_id: int


@dataclass(frozen=True)
class CancelJob:
    job_id: int


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Ready:
    description: str


@dataclass(frozen=True)
class LoadFailed:
    reason: str


@dataclass(frozen=True)
class WantJob:
    run_id: int


@dataclass(frozen=True)
class RunEvent:
    run_id: int
    event: Event


@dataclass(frozen=True)
class RunDone:
    run_id: int
    summary: str


@dataclass(frozen=True)
class RunFailed:
    run_id: int
    reason: str
    device_failure: bool


# -- the shard process ---------------------------------------------------------------------------
def process_main(conn: Any, spec: ProcessSpec, model: ProcessModel) -> None:
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
            send(LoadFailed(loaded.device_note or f"the model did not load on {spec.name}"))
            return
        # Starts the CPU-stage processes and warms the GPU workers, as the app does at load.
        first = _new_engine(loaded, model)
        first.wait_ready()
    except Exception as exc:  # noqa: BLE001 - the parent says why, and runs without this shard
        send(LoadFailed(f"{type(exc).__name__}: {exc}"))
        _close_pools()
        return
    send(Ready(loaded.description))
    try:
        _serve_runs(conn, send, loaded, model, first)
    finally:
        # Told to stop, or the app is gone: what the CPU-stage processes are still preparing is wanted by no
        # run, and waiting for a long file's preparation would keep them alive for minutes after the app.
        from desktop.engine.prepare import terminate_worker_processes

        terminate_worker_processes(1.0)


def _new_engine(loaded: Any, model: ProcessModel) -> Engine:
    return Engine(loaded, prepare_workers=model.prepare_workers, prepare_in_processes=model.prepare_in_processes)


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


def _serve_runs(conn: Any, send: Callable[[object], None], loaded: Any, model: ProcessModel, first: Any) -> None:
    runs: queue.Queue[StartRun | None] = queue.Queue()
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
            if isinstance(message, StartRun):
                runs.put(message)
            elif isinstance(message, NextJob):
                answers_for(message.run_id).put(message.job)
            elif isinstance(message, CancelRun):
                with state_lock:
                    if current.run_id == message.run_id and current.cancel is not None:
                        current.cancel.set()
                answers_for(message.run_id).put(None)
            elif isinstance(message, CancelJob):
                with state_lock:
                    engine = current.engine
                engine.cancel_job(message.job_id)
            elif isinstance(message, Stop):
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
                send(WantJob(run_id))
                job = replies.get()
                if job is None:
                    return
                yield job

        try:
            for event in engine.run(jobs(), start.options, cancel):
                send(RunEvent(run_id, event))
            send(RunDone(run_id, engine.stats.summary()))
        except DeviceFailure as exc:
            send(RunFailed(run_id, str(exc), device_failure=True))
        except Exception as exc:  # noqa: BLE001 - the parent ends the run with this reason
            log.error("the run failed:\n%s", traceback.format_exc())
            send(RunFailed(run_id, f"{type(exc).__name__}: {exc}", device_failure=False))
        finally:
            with state_lock:
                answers.pop(run_id, None)
                current.run_id, current.cancel = None, None
                current.ended_run_id = max(current.ended_run_id, run_id)



class RunListener(Protocol):
    """The parent's side of one run on an engine process (multi_gpu's)."""

    run_id: int

    def receive(self, message: object) -> None: ...

    def died(self, exit_code: int | None) -> None: ...


class EngineProcess:
    """The parent's handle on one shard process."""

    def __init__(self, spec: ProcessSpec, model: ProcessModel) -> None:
        self.spec = spec
        context = multiprocessing.get_context("spawn")  # the parent holds CUDA contexts and threads
        self._conn, child_conn = context.Pipe()
        # Not a daemon: a daemon process may not have children, and a shard has its CPU-stage processes.
        self.process = context.Process(
            target=process_main, args=(child_conn, spec, model), name=f"verbatim-shard-{spec.device_index}"
        )
        self.process.start()
        child_conn.close()
        self.ready: Future[str] = Future()
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        # Reaping the process (join, exitcode) from two threads at once can leave exitcode None for a
        # moment (the loser's waitpid fails), so it happens under this lock.
        self._reap_lock = threading.Lock()
        self._run: RunListener | None = None
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
            self.send(CancelJob(job_id))

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
            if isinstance(message, Ready):
                log.info("%s ready: %s", self.spec.name, message.description)
                self.ready.set_result(message.description)
                continue
            if isinstance(message, LoadFailed):
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

    def begin(self, run: RunListener) -> None:
        with self._lock:
            self._run = run

    def end(self, run: RunListener) -> None:
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


# -- the engine processes of each loaded model ----------------------------------------------------
_processes_lock = threading.Lock()
_every_shard: weakref.WeakSet[EngineProcess] = weakref.WeakSet()


def processes_for(host: EngineHost, specs: Sequence[ProcessSpec], model: ProcessModel) -> list[EngineProcess]:
    """The engine processes serving `host`'s model on `specs`, started on first use and kept by the host
    while the model is loaded (a new one replaces one that died)."""
    with _processes_lock:
        known: dict[tuple[ProcessSpec, ProcessModel], EngineProcess] = host.engine_processes
        if not known:
            host.on_close(lambda: _stop_known(known))
        out = []
        for spec in specs:
            shard = known.get((spec, model))
            if shard is None or not shard.running():
                shard = known[(spec, model)] = EngineProcess(spec, model)
                _every_shard.add(shard)
            out.append(shard)
        return out


def stop_engine_processes(host: EngineHost) -> None:
    """Stop the engine processes of a loaded model (the app when it lets a model go; tests)."""
    _stop_known(host.engine_processes)


def _stop_known(known: dict[Any, EngineProcess]) -> None:
    with _processes_lock:
        shards = list(known.values())
        known.clear()
    _stop(shards)


def _stop(shards: list[EngineProcess]) -> None:
    for shard in shards:  # all told first, so they stop side by side
        shard.send(Stop())
    for shard in shards:
        shard.wait_stopped()


@atexit.register
def _stop_every_shard() -> None:
    # Runs before multiprocessing's own exit handler (registered earlier), which would wait for these
    # non-daemon processes forever.
    _stop(list(_every_shard))
