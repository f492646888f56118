"""The model worker: one QThread that owns the speech model for the life of the app.

It loads and warms the model once, then transcribes whatever is queued by driving `Engine.run` with a
generator over its own thread-safe queue. The model is reloaded only when the user picks another model,
device or compute type.

The ModelWorker object itself lives in the GUI thread and its QThread runs the serving loop. Why not the
usual moveToThread: the loop blocks inside the engine for the whole app, so the worker thread's event loop
never runs, and PySide delivers signals connected to plain callables through the sender's thread.

Why events go through an outbox instead of straight out as signals: the engine can produce hundreds of
events per second (many short files finishing in one batch), and one queued signal per event would flood
the GUI thread. The worker thread only appends to the outbox (coalescing segments and progress per job);
a timer in the GUI thread empties it at most every `flush_interval_ms` and emits the signals there. So the
window gets at most ~20 deliveries a second, in engine order, and a burst's last events are never held
back waiting for a next event (the engine can be silent for seconds while it decodes).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from desktop.core.segment import Segment
from desktop.core.settings import Settings
from desktop.engine.draft import DraftRequest, DraftResult
from desktop.engine.events import (
    DeviceFailure,
    EngineJob,
    Event,
    JobCancelled,
    JobEnd,
    JobFailed,
    JobFinished,
    JobProgress,
    SegmentsDecoded,
    TranscribeOptions,
)
from desktop.workers.messages import JobBatch, ModelStatus, Outbox, RangeOutcome, RangeRequest
from desktop.workers.signals import emit

log = logging.getLogger(__name__)

# Every QThread a host started, so tests can check that none is left running.
_threads: weakref.WeakSet[QThread] = weakref.WeakSet()


def running_threads() -> list[QThread]:
    return [thread for thread in list(_threads) if thread.isRunning()]


def transcribe_options(settings: Settings) -> TranscribeOptions:
    return TranscribeOptions(
        language=settings.language,
        task=settings.task,
        beam_size=settings.beam_size,
        word_timestamps=settings.word_timestamps,
        batch_size=settings.batch_size,
    )


def _default_loader(name: str, **kwargs: Any) -> Any:
    from desktop.engine.loading import load_model

    return load_model(name, **kwargs)


def _default_engine(model: Any) -> Any:
    from desktop.engine.multi_gpu import open_engine

    return open_engine(model)


class _ServeThread(QThread):
    def __init__(self, serve: Callable[[], None]) -> None:
        super().__init__()
        self._serve = serve
        self.setObjectName("verbatim-model")

    def run(self) -> None:
        self._serve()


class ModelWorker(QObject):
    """Create and use in the GUI thread; the model work runs on `self.thread`. Commands are thread-safe
    methods; results are signals, emitted in the GUI thread."""

    model_status_changed = Signal(object)  # ModelStatus
    model_ready = Signal(object)  # ModelStatus with device and compute type
    model_failed = Signal(str)  # reason; no model is loaded, so queued jobs wait
    job_started = Signal(int, object)  # job id, JobStarted
    segments_decoded = Signal(int, object)  # job id, tuple[Segment, ...]
    job_progressed = Signal(int, float, float)  # job id, done_s, total_s
    job_finished = Signal(int)
    job_noticed = Signal(int, object)  # job id, tuple[str, ...]: JobFinished.notices, before job_finished
    job_failed = Signal(int, str)  # job id, reason
    job_cancelled = Signal(int)
    range_transcribed = Signal(object)  # RangeOutcome without error
    range_failed = Signal(object)  # RangeOutcome with error
    # A live draft of a recording (see request_draft); never stored, the full pass replaces it.
    draft_decoded = Signal(object)  # DraftResult

    # The outbox went from empty to not empty: emitted in the worker thread, queued to the GUI thread.
    outbox_filled = Signal()

    def __init__(
        self,
        settings: Settings,
        model: Any | None = None,
        *,
        loader: Callable[..., Any] | None = None,
        engine_factory: Callable[[Any], Any] | None = None,
        flush_interval_ms: int = 50,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._loader = loader or _default_loader
        self._engine_factory = engine_factory or _default_engine
        # With the real engine, one is made as soon as a model is loaded: that starts its CPU-stage
        # processes and warms the GPU workers in the background, before the first file is queued.
        self._prepare_engine = _default_engine if engine_factory is None else None
        self._outbox = Outbox()
        self._cond = threading.Condition()
        # Everything below is shared between threads and guarded by self._cond.
        self._settings = settings
        self._settings_generation = 0
        self._model = model
        # A preloaded model (tests, or a model handed over by the caller) counts as the one asked for.
        self._loaded_key = settings.model_key() if model is not None else None
        # The last model that loaded: what a failed load of another one goes back to.
        self._working_key = self._loaded_key
        self._failed_key: tuple[str, str, str] | None = None
        self._queue: list[EngineJob] = []
        self._in_run: set[int] = set()
        self._engine: Any | None = None
        self._engine_cancelled: set[int] = set()
        self._run_cancel = threading.Event()
        self._load_cancel = threading.Event()
        self._stopping = False
        # Held: no job is handed to the engine (the window could not save results; see hold()).
        self._held = False
        # Jobs queued again while their cancellation is still on its way out of the engine.
        self._after_cancel: dict[int, EngineJob] = {}
        self._init_ranges()

        self.flush_interval_ms = flush_interval_ms
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.timeout.connect(self.flush)
        self._last_flush_s = 0.0
        self.outbox_filled.connect(self._schedule_flush)
        self.thread = _ServeThread(self._serve)
        _threads.add(self.thread)
        # The live-draft path (request_draft): its own thread, started on the first request.
        self._draft_request: DraftRequest | None = None
        self._draft_thread: _ServeThread | None = None
        self._draft_cancel = threading.Event()

    # -- life (GUI thread) -------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Stop cooperatively: cancel the run (it ends between batches) and wait at most timeout_s for
        the thread. True when it ended in time."""
        self.stop()
        deadline_s = time.monotonic() + timeout_s
        finished = self.thread.wait(max(0, int(timeout_s * 1000)))
        if self._draft_thread is not None:
            remaining_ms = max(0, int((deadline_s - time.monotonic()) * 1000))
            finished = self._draft_thread.wait(remaining_ms) and finished
        self._flush_timer.stop()
        if finished:
            self.flush()  # the last events (cancellations) still reach whoever listens
        return finished

    # -- commands (any thread) ---------------------------------------------------------------------
    def enqueue(self, job_id: int, source: str | Path, start_at_s: float = 0.0) -> None:
        """Queue a job; it waits for the model if the model is not ready yet."""
        with self._cond:
            job = EngineJob(job_id, Path(source), start_at_s=start_at_s)
            if job_id in self._in_run and job_id in self._engine_cancelled:
                # It is still leaving the engine: it joins the queue once it has, and its cancellation
                # is not reported (it is queued, not cancelled).
                self._after_cancel[job_id] = job
                return
            if any(queued.job_id == job_id for queued in self._queue) or job_id in self._in_run:
                return
            self._queue.append(job)
            self._cond.notify_all()

    def cancel_job(self, job_id: int) -> None:
        """A waiting job is dropped at once; a running one ends between batches. Either way the job
        ends with job_cancelled."""
        with self._cond:
            for job in self._queue:
                if job.job_id == job_id:
                    self._queue.remove(job)
                    self._post(JobCancelled(job_id))
                    return
            if job_id in self._in_run and self._engine is not None:
                self._engine_cancelled.add(job_id)
                self._engine.cancel_job(job_id)

    def hold(self) -> list[int]:
        """Hand no more jobs to the engine, and cancel the ones it has (they end with job_cancelled);
        waiting jobs stay queued until release(). For when results cannot be saved (a full disk): going on
        would only transcribe what cannot be kept. Returns the ids of the jobs that were running."""
        with self._cond:
            self._held = True
            running = sorted(self._in_run)
            if self._engine is not None:
                for job_id in running:
                    self._engine_cancelled.add(job_id)
                    self._engine.cancel_job(job_id)
        return running

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    @property
    def held(self) -> bool:
        with self._cond:
            return self._held

    def reorder(self, job_ids: Sequence[int]) -> None:
        """Waiting jobs run in this order (ids not listed keep their place after the listed ones)."""
        rank = {job_id: i for i, job_id in enumerate(job_ids)}
        with self._cond:
            self._queue.sort(key=lambda job: rank.get(job.job_id, len(rank)))

    def queued_ids(self) -> list[int]:
        with self._cond:
            return [job.job_id for job in self._queue]

    def apply_settings(self, settings: Settings) -> None:
        """New options apply from the next job the engine takes; a new model is loaded once the jobs
        already handed to the engine are done."""
        with self._cond:
            if settings == self._settings:
                return
            if settings.model_key() != self._settings.model_key():
                self._load_cancel.set()  # a download of the previous choice is no longer wanted
                self._failed_key = None
            self._settings = settings
            self._settings_generation += 1
            self._cond.notify_all()

    def cancel_model_load(self) -> None:
        """Stop a download in progress; the model ends failed ("download cancelled")."""
        self._load_cancel.set()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._run_cancel.set()
            self._draft_cancel.set()
            self._load_cancel.set()
            self._cond.notify_all()

    # -- GUI thread --------------------------------------------------------------------------------
    @Slot()
    def _schedule_flush(self) -> None:
        if self._flush_timer.isActive():
            return
        since_ms = (time.monotonic() - self._last_flush_s) * 1000
        self._flush_timer.start(max(0, int(self.flush_interval_ms - since_ms)))

    @Slot()
    def flush(self) -> None:
        """Emit everything the worker thread produced since the last flush, in order."""
        self._last_flush_s = time.monotonic()
        for item in self._outbox.take():
            if isinstance(item, RangeOutcome):
                emit(self.range_failed if item.error is not None else self.range_transcribed, item)
                continue
            if isinstance(item, DraftResult):
                emit(self.draft_decoded, item)
                continue
            if isinstance(item, ModelStatus):
                if item.stage == "ready":
                    emit(self.model_status_changed, item)
                    emit(self.model_ready, item)
                elif item.stage == "failed":
                    emit(self.model_status_changed, item)
                    if item.still_using is None:
                        emit(self.model_failed, item.error or "the model could not be loaded")
                else:
                    emit(self.model_status_changed, item)
                continue
            assert isinstance(item, JobBatch)
            if item.started is not None:
                emit(self.job_started, item.job_id, item.started)
            if item.segments:
                emit(self.segments_decoded, item.job_id, tuple(item.segments))
            if item.progress is not None:
                emit(self.job_progressed, item.job_id, item.progress.done_s, item.progress.total_s)
            if isinstance(item.end, JobFinished):
                if item.end.notices:
                    emit(self.job_noticed, item.job_id, item.end.notices)
                emit(self.job_finished, item.job_id)
            elif isinstance(item.end, JobFailed):
                emit(self.job_failed, item.job_id, item.end.reason)
            elif isinstance(item.end, JobCancelled):
                emit(self.job_cancelled, item.job_id)

    # -- the worker thread -------------------------------------------------------------------------
    def _post(self, item: object) -> None:
        if self._outbox.put(item):
            emit(self.outbox_filled)

    def _needs_load(self) -> bool:
        key = self._settings.model_key()
        return key != self._loaded_key and key != self._failed_key

    def _serve(self) -> None:
        """Serve until stop(): load the model when needed, run the queue whenever it has jobs."""
        try:
            while True:
                with self._cond:
                    while not (self._stopping or self._needs_load()
                               or (self._model is not None and not self._held and (self._queue or self._ranges))):
                        self._cond.wait()
                    if self._stopping:
                        return
                    settings = self._settings
                    load = self._needs_load()
                try:
                    if load:
                        self._load(settings)
                    else:
                        self._run_queue(settings)
                except Exception as exc:  # noqa: BLE001 - a bug here must not end the thread silently
                    log.exception("the model worker failed")
                    with self._cond:
                        self._model = None
                        self._loaded_key = None
                        self._failed_key = settings.model_key()
                    self._post(ModelStatus("failed", settings.model, error=f"the model worker failed: {exc}"))
        finally:
            with self._cond:
                self._model = None
                self._engine = None

    def _load(self, settings: Settings) -> None:
        from desktop.engine.models import DownloadCancelled, ModelError

        key = settings.model_key()
        with self._cond:
            self._load_cancel = cancel = threading.Event()
            if self._stopping:
                return
        name = settings.model
        self._post(ModelStatus("loading", name))

        def on_status(stage: str) -> None:
            if stage == "loading":
                # The new model's files are on disk and it is about to be read into memory: let go of the
                # previous one now, as two large models may not fit together (on a card, the second would
                # quietly land on the CPU). Until here (the download, what fails offline) the previous one
                # stays loaded, so a failed download costs nothing; a load that fails after this point
                # reloads it from disk (_recover). Jobs do not run meanwhile: this thread is loading.
                with self._cond:
                    self._model = None
                    self._loaded_key = None
            if stage in ("downloading", "loading", "warming"):
                self._post(ModelStatus(stage, name))

        def on_progress(done_bytes: int, total_bytes: int) -> None:
            self._post(ModelStatus("downloading", name, done_bytes=done_bytes, total_bytes=total_bytes))

        try:
            model = self._loader(
                name,
                device=settings.device,
                compute_type=settings.compute_type,
                progress=on_progress,
                cancel=cancel,
                on_status=on_status,
            )
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message in the window
            with self._cond:
                superseded = self._stopping or self._settings.model_key() != key
                if not superseded:
                    self._failed_key = key
            if superseded and isinstance(exc, DownloadCancelled):
                return  # cancelled because the user chose something else, or the app is closing
            if not isinstance(exc, ModelError):
                log.exception("loading model %s failed", name)
            reason = str(exc) if isinstance(exc, ModelError) else f"cannot load the model: {exc}"
            if superseded:
                with self._cond:
                    nothing_loaded = self._model is None
                if nothing_loaded:
                    self._post(ModelStatus("failed", name, error=reason))
                return  # the user's newer choice loads next
            self._recover(settings, reason)
            return
        with self._cond:
            self._model = model
            self._loaded_key = key
            self._working_key = key
        if self._prepare_engine is not None:
            try:
                self._prepare_engine(model)
            except Exception:  # noqa: BLE001 - only a head start: the first run makes its own engine
                log.exception("starting the engine's background work failed")
        self._post(ModelStatus("ready", model.name, model.device, model.compute_type, model.device_note))

    def _recover(self, failed: Settings, reason: str) -> None:
        """`failed` could not be loaded: go on with the model that worked before it (reloaded when it was let
        go), or else the bundled base, and run with that model's settings from now on, so the queue does not
        wait for a model that will not come. The window is told what failed and what is still in use."""
        from desktop.engine.models import BASE_MODEL

        failed_key = failed.model_key()
        with self._cond:
            if self._stopping:
                return
            model, key = self._model, self._loaded_key
            candidates = [self._working_key, (BASE_MODEL, failed.device, failed.compute_type)]
            self._load_cancel = cancel = threading.Event()
        if model is None:
            for candidate in dict.fromkeys(candidates):  # in order, once each
                if candidate is None or candidate == failed_key:
                    continue
                candidate_name, device, compute_type = candidate
                self._post(ModelStatus("loading", candidate_name))
                try:
                    model = self._loader(candidate_name, device=device, compute_type=compute_type, cancel=cancel)
                except Exception:  # noqa: BLE001 - try the next one; the first failure is what the user hears
                    log.exception("going back to model %s after %s failed did not work", candidate_name, failed.model)
                    continue
                key = candidate
                break
        if model is None or key is None:
            self._post(ModelStatus("failed", failed.model, error=reason))
            return
        with self._cond:
            self._model = model
            self._loaded_key = self._working_key = key
            if self._settings.model_key() == failed_key:
                self._settings = replace(self._settings, model=key[0], device=key[1], compute_type=key[2])
                self._settings_generation += 1
            effective = self._settings
            self._cond.notify_all()
        log.warning("could not load %s (%s); still using %s", failed.model, reason, key[0])
        using = ModelStatus("ready", model.name, model.device, model.compute_type, model.device_note)
        self._post(ModelStatus("failed", failed.model, error=reason, still_using=using, effective_settings=effective))

    def _run_queue(self, settings: Settings) -> None:
        with self._cond:
            model = self._model
            generation = self._settings_generation
            self._run_cancel = cancel = threading.Event()
            self._engine_cancelled = set()
            if self._stopping:
                return
        engine = self._engine_factory(model)
        with self._cond:
            self._engine = engine

        def jobs() -> Iterator[EngineJob]:
            # Runs on the engine's feeder thread. Returns (ending the run once its jobs are done) when the
            # queue is empty, or when settings changed, so the next run uses them.
            while True:
                with self._cond:
                    if self._stopping or self._held or self._settings_generation != generation or self._needs_load():
                        return
                    request = self._ranges.pop(0) if self._ranges else None
                if request is not None:
                    # Re-runs go ahead of waiting jobs: the user is looking at the range now.
                    yield self._range_job(request)
                    continue
                with self._cond:
                    # A job cancelled in this run and queued again (retry) waits for the next run: this
                    # engine would cancel it at once.
                    job = next((j for j in self._queue if j.job_id not in self._engine_cancelled), None)
                    if job is None:
                        return
                    self._queue.remove(job)
                    self._in_run.add(job.job_id)
                yield job

        event: Event
        # Where each job of this run has got to: a device failure resumes them there on the CPU.
        reached_s: dict[int, float] = {}
        sources: dict[int, EngineJob] = {}
        try:
            for event in engine.run(self._remember(jobs(), sources, reached_s), transcribe_options(settings), cancel):
                with self._cond:
                    is_range = event.job_id in self._range_runs
                if is_range:
                    self._range_event(event)
                    continue
                if isinstance(event, JobEnd):
                    with self._cond:
                        self._in_run.discard(event.job_id)
                        again = self._after_cancel.pop(event.job_id, None)
                        if again is not None:
                            self._queue.insert(0, again)
                            self._cond.notify_all()
                    sources.pop(event.job_id, None)
                    if again is not None and isinstance(event, JobCancelled):
                        continue
                elif isinstance(event, JobProgress):
                    reached_s[event.job_id] = event.done_s
                self._post(event)
        except DeviceFailure as exc:
            log.error("%s; moving to the CPU", exc)
            self._fall_back_to_cpu(settings, str(exc), sources, reached_s)
        except Exception as exc:  # noqa: BLE001 - the worker must outlive a broken run
            log.exception("the engine run failed")
            with self._cond:
                lost = sorted(self._in_run)
                self._in_run.clear()
            for job_id in lost:
                self._post(JobFailed(job_id, f"the transcription stopped unexpectedly: {exc}"))
        finally:
            with self._cond:
                self._engine = None
                # Jobs the engine took but never ended (it should not happen) must not stay running forever.
                lost = sorted(self._in_run)
                self._in_run.clear()
                again = [self._after_cancel.pop(job_id) for job_id in lost if job_id in self._after_cancel]
                self._queue[:0] = again
                lost = [job_id for job_id in lost if job_id not in {job.job_id for job in again}]
            for job_id in lost:
                self._post(JobCancelled(job_id))
            with self._cond:
                interrupted = [request for request, _segments in self._range_runs.values()]
                self._range_runs.clear()
            for request in interrupted:
                self._post(RangeOutcome(request, error="the re-run was interrupted"))

    # -- re-running a time range -------------------------------------------------------------------
    # A range runs through the same engine as queued jobs, under a negative engine job id (library ids are
    # positive), and its events are collected here instead of going out as job events: the job itself is
    # done and must not be marked started again.
    def _init_ranges(self) -> None:
        self._ranges: list[RangeRequest] = []
        self._range_ids = 0
        # engine job id -> (request, segments so far); filled on the engine's feeder thread, read on the serving
        # thread, so guarded by self._cond
        self._range_runs: dict[int, tuple[RangeRequest, list[Segment]]] = {}

    def rerun_range(self, job_id: int, source: str | Path, start_s: float, end_s: float) -> int:
        """Transcribe [start_s, end_s) of `source` again, ahead of waiting jobs, with the engine's temperature
        fallback. Answers with range_transcribed or range_failed (a RangeOutcome); returns the request id."""
        if not 0 <= start_s < end_s:
            raise ValueError(f"cannot re-run the range {start_s}–{end_s} s")
        with self._cond:
            self._range_ids += 1
            request = RangeRequest(self._range_ids, job_id, Path(source), float(start_s), float(end_s))
            self._ranges.append(request)
            self._cond.notify_all()
        return request.request_id

    def _range_job(self, request: RangeRequest) -> EngineJob:
        # The engine reads only up to the range's end and skips to its start, on its CPU stage (not on this
        # thread), and the segments come out in the file's own time. A file it cannot read fails the job,
        # which answers with range_failed.
        engine_id = -request.request_id
        with self._cond:
            self._range_runs[engine_id] = (request, [])
        return EngineJob(engine_id, request.source, start_at_s=request.start_s, end_at_s=request.end_s)

    def _range_event(self, event: Event) -> None:
        with self._cond:
            request, segments = self._range_runs[event.job_id]
            if isinstance(event, JobEnd):
                del self._range_runs[event.job_id]
        match event:
            case SegmentsDecoded():
                segments.extend(event.segments)
            case JobFinished():
                self._post(RangeOutcome(request, tuple(segments)))
            case JobFailed():
                self._post(RangeOutcome(request, error=f"{request.source.name}: {event.reason}"))
            case JobCancelled():
                self._post(RangeOutcome(request, error="the re-run was cancelled"))

    @staticmethod
    def _remember(
        jobs: Iterator[EngineJob], sources: dict[int, EngineJob], reached_s: dict[int, float]
    ) -> Iterator[EngineJob]:
        for job in jobs:
            sources[job.job_id] = job
            reached_s[job.job_id] = job.start_at_s
            yield job

    def _fall_back_to_cpu(
        self, settings: Settings, reason: str, sources: dict[int, EngineJob], reached_s: dict[int, float]
    ) -> None:
        """The GPU failed mid-run: load the same model on the CPU and put the run's unfinished jobs back
        at the head of the queue, each resuming where its committed progress reached."""
        with self._cond:
            unfinished = [sources[job_id] for job_id in sources if job_id in self._in_run]
            self._in_run.difference_update(sources)
            self._model = None
            stopping = self._stopping
        if stopping:
            return
        name = settings.model
        self._post(ModelStatus("loading", name))
        try:
            model = self._loader(name, device="cpu", compute_type="auto", cancel=self._load_cancel)
        except Exception as exc:  # noqa: BLE001 - nothing left to fall back to
            log.exception("loading %s on the CPU after a GPU failure failed", name)
            with self._cond:
                self._loaded_key = None
                self._failed_key = settings.model_key()
            self._post(ModelStatus("failed", name, error=f"{reason}, and the CPU could not take over: {exc}"))
            for job in unfinished:
                self._post(JobFailed(job.job_id, reason))
            return
        note = f"{reason}; continuing on the CPU"
        resumed = [
            EngineJob(job.job_id, job.source, job.audio, start_at_s=max(job.start_at_s, reached_s.get(job.job_id, 0.0)))
            for job in unfinished
        ]
        with self._cond:
            self._model = model
            self._loaded_key = settings.model_key()
            queued = {job.job_id for job in self._queue}
            self._queue[:0] = [job for job in resumed if job.job_id not in queued]
            self._cond.notify_all()
        self._post(ModelStatus("ready", model.name, model.device, model.compute_type, note))

    # -- live drafts of recordings (a separate path: never queued, never stored) --------------------
    def request_draft(self, request: DraftRequest) -> None:
        """Transcribe a recording's newest audio quickly; the answer comes as draft_decoded. A newer request
        for the same recording replaces one not yet started. Drafts run on their own thread with their own
        engine over the same model, so they do not wait behind queued files: CTranslate2 takes their
        batches between the queue's batches. Without a ready model the answer carries an error."""
        with self._cond:
            if self._stopping:
                return
            self._draft_request = request
            if self._draft_thread is None:
                self._draft_thread = _ServeThread(self._serve_drafts)
                self._draft_thread.setObjectName("verbatim-draft")
                _threads.add(self._draft_thread)
                self._draft_thread.start()
            self._cond.notify_all()

    def _serve_drafts(self) -> None:
        from desktop.engine.draft import DraftTranscriber, draft_options

        transcriber: DraftTranscriber | None = None
        while True:
            with self._cond:
                while not (self._stopping or self._draft_request is not None):
                    self._cond.wait()
                if self._stopping:
                    return
                request, self._draft_request = self._draft_request, None
                model, settings = self._model, self._settings
            assert request is not None
            if model is None:
                self._post(DraftResult(request.key, request.offset_s, request.offset_s, (), (),
                                       error="the speech model is not ready yet"))
                continue
            options = draft_options(settings.language, settings.task)
            try:
                if transcriber is None or transcriber.model is not model or transcriber.options != options:
                    transcriber = DraftTranscriber(model, options)
                result = transcriber.transcribe(request, self._draft_cancel)
            except Exception as exc:  # noqa: BLE001 - a failed draft must not end drafting
                log.exception("the live draft failed")
                result = DraftResult(request.key, request.offset_s, request.offset_s, (), (), error=str(exc))
            self._post(result)
