"""What lives as long as a loaded model, however many engines (one per run) drive it: the CPU stage's
worker processes, the GPU workers' warm-up, the fit of batches in GPU memory, and the engine processes
of further GPUs (desktop/engine/multi_gpu.py keeps them here).

An engine made without a host uses its model's (host_of): the app makes an engine when the model is
loaded, to start all this, and one per run."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from desktop.engine import gpu_memory
from desktop.engine.gpu_memory import (
    USABLE_SHARE,
    bytes_per_chunk,
    chunks_that_fit,
    decoder_shape,
    smallest_known,
)
from desktop.engine.loading import LoadedModel
from desktop.engine.prepare import (
    discard_worker_processes,
    start_worker_processes,
    worker_processes,
)

log = logging.getLogger(__name__)


class EngineHost:
    """One loaded model's long-lived parts. Thread-safe."""

    def __init__(self, model: LoadedModel) -> None:
        # Weak: the host of a model is found by the model (host_of), and must not keep it alive.
        self._model = weakref.ref(model)
        self._lock = threading.Lock()
        self._warming: Future[Any] | None = None
        self._memory_fit: dict[str, Any] | None = None  # free GPU memory and the model's shape, once
        # Further GPUs' engine processes, by what they serve (multi_gpu.processes_for), and how to stop them.
        self.engine_processes: dict[Any, Any] = {}
        self._on_close: list[Callable[[], None]] = []

    @property
    def model(self) -> LoadedModel:
        model = self._model()
        if model is None:
            raise RuntimeError("the model of this engine host was let go of")
        return model

    # -- the CPU stage's worker processes -----------------------------------------------------------
    def processes(self, processes: int, threads: int) -> tuple[ProcessPoolExecutor, Future[Any]]:
        """A pool of `processes` CPU-stage processes with `threads` threads each, and a future done when
        they have all started (they start now, in the background, while the user picks files)."""
        pool = worker_processes(dict(self.model.whisper.feat_kwargs), processes, threads)
        return pool, start_worker_processes(pool, processes)

    def replace_broken(self, broken: ProcessPoolExecutor, processes: int, threads: int) -> ProcessPoolExecutor:
        """A new pool for one whose worker died (the next job gets it)."""
        discard_worker_processes(broken)
        return worker_processes(dict(self.model.whisper.feat_kwargs), processes, threads)

    # -- the GPU workers' warm-up ---------------------------------------------------------------------
    def warm_once(self, warm: Callable[[], None]) -> Future[Any]:
        """Run `warm` once for this model, on a thread of its own (not once per engine: the app makes one
        per run); the future is done when it has (a failure is logged, not raised)."""
        with self._lock:
            if self._warming is not None:
                return self._warming
            warming: Future[Any] = Future()
            self._warming = warming

        def warm_up() -> None:
            try:
                warm()
            except Exception as exc:  # noqa: BLE001 - not an error yet: a real batch will say what fails
                log.warning("warming the GPU workers failed: %s", exc)
            warming.set_result(None)

        threading.Thread(target=warm_up, name="verbatim-warm", daemon=True).start()
        return warming

    # -- batches in GPU memory ------------------------------------------------------------------------
    def chunks_that_fit(self, beam_size: int) -> int | None:
        """The most chunks of a batch the smallest card's free memory holds at this beam size (None: unknown)."""
        with self._lock:
            fit = self._memory_fit
        if fit is None:
            # The card's memory just after the model loaded (LoadedModel reads it then); asked here, once
            # per model and outside the lock, only for a model loaded without it.
            model = self.model
            shape = decoder_shape(model.path)
            recorded = model.gpu_free_bytes
            frees = list(recorded) if recorded is not None else [gpu_memory.free_bytes(i) for i in model.device_indices]
            # The type CTranslate2 resolved ("int8" on CUDA may run in the model's own float type).
            compute_type = str(getattr(model.whisper.model, "compute_type", model.compute_type))
            value_bytes = 4 if compute_type in ("float32", "int8_float32") else 2
            free = smallest_known(frees)
            fit = {}
            if shape is not None and free is not None:
                fit = {"free": free, "shape": shape, "value_bytes": value_bytes}
            with self._lock:
                self._memory_fit = fit
        if not fit:
            return None
        # Every CTranslate2 worker on a card may decode a batch at the same time.
        share = USABLE_SHARE / max(1, self.model.workers_per_gpu)
        return chunks_that_fit(fit["free"], bytes_per_chunk(fit["shape"], beam_size, fit["value_bytes"]), share)

    # -- the end ---------------------------------------------------------------------------------------
    def on_close(self, stop: Callable[[], None]) -> None:
        with self._lock:
            self._on_close.append(stop)

    def close(self) -> None:
        """Stop what this model's engines started elsewhere (the engine processes of further GPUs)."""
        with self._lock:
            stops, self._on_close = self._on_close, []
        for stop in stops:
            stop()


# The host of each loaded model (by identity: a copy made with dataclasses.replace is another model),
# for callers that pass only the model. A model the user let go of closes its host (and frees the other
# GPUs); the host holds no reference to its model.
_hosts: dict[int, EngineHost] = {}
_hosts_lock = threading.Lock()


def host_of(model: LoadedModel) -> EngineHost:
    with _hosts_lock:
        host = _hosts.get(id(model))
        if host is None:
            host = _hosts[id(model)] = EngineHost(model)
            weakref.finalize(model, _let_go, id(model))
        return host


def _let_go(model_id: int) -> None:
    with _hosts_lock:
        host = _hosts.pop(model_id, None)
    if host is not None:
        host.close()
