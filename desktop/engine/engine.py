"""The transcription engine: jobs in, events out.

Speech from many queued files is packed into shared decoder batches. Each file is decoded, cut at
silences by VAD into chunks of at most 30 s and turned into log-mel features on a pool of CPU
threads, ahead of the decoder. The decoder loop takes chunks in queue order (earlier jobs finish
first), detects each file's language inside the first batch that holds its speech (one encoder
pass serves detection and decoding), gives every batch item its own prompt (so languages can mix),
retries degenerate items at higher temperatures, and routes segments back to their job in time
order.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from desktop.core.segment import Segment, Word
from desktop.engine.audio import SAMPLE_RATE, AudioError
from desktop.engine.events import (
    DeviceFailure,
    EngineJob,
    Event,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobProgress,
    JobStarted,
    SegmentsDecoded,
    TranscribeOptions,
)
from desktop.engine.gpu_memory import (
    USABLE_SHARE,
    bytes_per_chunk,
    chunks_that_fit,
    decoder_shape,
    free_bytes,
    smallest_known,
)
from desktop.engine.host_memory import (
    CPU_ENCODER_FULL_ROWS,
    encode_in_slices,
    encoder_rows,
    release_freed_heap,
)
from desktop.engine.loading import LoadedModel
from desktop.engine.notices import job_notices
from desktop.engine.prepare import (
    FRAMES_PER_CHUNK,
    Chunk,
    discard_worker_processes,
    prepare_audio,
    prepare_in_process,
    start_worker_processes,
    worker_processes,
)
from desktop.engine.shards import RemoteShard, ShardModel, ShardSpec, run_sharded, shards_for

log = logging.getLogger(__name__)

PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
_WAIT_S = 0.05
# A GPU batch, when the user sets no batch size: up to this many seconds of speech, in at most this
# many chunks (and what fits in free memory). Chosen on real short speech
# (benchmarks/results/2026-11-29-gpu-real-speech.md).
AUTO_GPU_BATCH_S = 960.0
AUTO_GPU_BATCH_CHUNKS = 96
# While the decoders are idle, ready chunks wait at most this long for an opening share of a batch.
OPENING_WAIT_S = 0.25
# Finished batches waiting for an earlier one to be emitted, at most this many per decoder.
MAX_UNEMITTED_BATCHES = 4
# CPU-stage processes feeding the GPUs: a core each, two cores left for the decoder threads, at most
# this many per GPU (two GPUs on 32 cores ran the 828-file queue in 5.5-5.8 s with 28, 6.1 s with 16).
MAX_GPU_PREPARE_WORKERS = 16
# On the CPU the encoder reads each chunk over its own frames plus this margin, rounded up to a step,
# not always over 30 s: a 7 s file costs a 10 s window, not a full one (the encoder was most of the
# CPU's time). Without a margin of silence after the speech, Whisper may not find the end and loop
# (whisper.cpp's audio_ctx, github.com/ggml-org/whisper.cpp/issues/1951). A chunk's window depends on
# the chunk alone, never on what it is batched with, so a file's text does not either; a batch is
# encoded and decoded per window (benchmarks/results/2026-11-30-cpu-encoder-windows.md).
ENCODER_MARGIN_FRAMES = 256
ENCODER_WINDOW_STEP_FRAMES = 500
# CPU batches: 8 chunks ran 5-20% faster than 4 and 16 no faster than 8
# (benchmarks/results/2026-11-30-cpu-encoder-windows.md).
# The first batch of a run takes half, so the first text appears as soon as with 4.
CPU_BATCH_CHUNKS = 8
LANGUAGE_SWITCH_MIN_S = 8.0
LANGUAGE_SWITCH_MIN_PROBABILITY = 0.8


# The warm-up of each loaded model's GPU workers, started once (Engine._warm_once). Weak keys: a model
# the user let go of must not stay in memory for this.
_warmed: weakref.WeakKeyDictionary[Any, Future[Any]] = weakref.WeakKeyDictionary()
_warm_lock = threading.Lock()


class RunStats:
    """Seconds spent per phase in one run, for benchmarks and logs. CPU-stage phases (decode, vad,
    features) add up over the pool's threads; the others are on the decoder thread."""

    def __init__(self, tracing: bool = False) -> None:
        self.seconds: dict[str, float] = {}
        self.tracing = tracing  # a window's run can last all day: the timeline only when asked for
        self.batches = 0
        self.items = 0
        self.fallback_items = 0  # item retries, summed over temperatures
        self._lock = threading.Lock()
        self.started = time.perf_counter()
        # A timeline for benchmarks: (seconds since the run began, what, details), in the order recorded.
        self.trace: list[tuple[float, str, dict[str, Any]]] = []

    def mark(self, what: str, **details: Any) -> None:
        if not self.tracing:
            return
        with self._lock:
            details["thread"] = threading.current_thread().name.rpartition("-")[2]
            self.trace.append((time.perf_counter() - self.started, what, details))

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self.seconds[phase] = self.seconds.get(phase, 0.0) + elapsed

    def add(self, phase: str, seconds: float) -> None:
        with self._lock:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def count_batch(self, items: int) -> None:
        with self._lock:
            self.batches += 1
            self.items += items

    def count_fallback(self, items: int) -> None:
        with self._lock:
            self.fallback_items += items

    def summary(self) -> str:
        phases = " ".join(f"{name}={value:.2f}s" for name, value in sorted(self.seconds.items()))
        mean = self.items / self.batches if self.batches else 0.0
        return f"{self.batches} batches, {mean:.1f} items/batch, {self.fallback_items} fallback retries; {phases}"


@dataclass(frozen=True)
class BatchLimits:
    chunks: int  # most chunks in one batch
    seconds: float  # most seconds of speech in one batch (math.inf: the count alone decides)


@dataclass
class _Prepared:
    duration_s: float
    chunks: list[Chunk]
    timeline: Any  # faster_whisper.vad.SpeechTimestampsMap, speech-only -> original time
    start_at_s: float
    notices: tuple[str, ...] = ()


@dataclass
class _JobState:
    job: EngineJob
    future: Future[_Prepared]
    prepared: _Prepared | None = None
    language: str | None = None
    language_probability: float = 0.0
    next_chunk: int = 0
    decoded_chunks: int = 0
    last_end_s: float = 0.0
    segment_count: int = 0
    started: bool = False
    finished: bool = False

    def prepared_first_index(self) -> int:
        return self.prepared.chunks[0].index if self.prepared and self.prepared.chunks else 0


@dataclass
class _Item:
    state: _JobState
    chunk: Chunk
    language: str | None = None  # the language this chunk is decoded in


@dataclass
class _Decoded:
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    text: str = ""
    compression_ratio: float = 0.0
    words: list[dict[str, Any]] = field(default_factory=list)  # chunk-local times
    runaway: bool = False


class Engine:
    """Drives one loaded model. Thread-safe for `cancel_job`; `run` is used by one thread at a time."""

    def __init__(
        self,
        model: LoadedModel,
        prepare_workers: int | None = None,
        parallel_batches: int | None = None,
        prepare_in_processes: bool | None = None,
        remote_shards: Sequence[ShardSpec] | None = None,
    ) -> None:
        self.model = model
        self.whisper = model.whisper
        # Further GPUs each have an engine process of its own (desktop/engine/shards.py); this one
        # drives the model in this process. None: one per GPU in model.shard_gpus.
        if remote_shards is None:
            remote_shards = [ShardSpec("cuda", index) for index in model.shard_gpus] if model.device == "cuda" else []
        engines = 1 + len(remote_shards)
        # Decoding, VAD and features release the GIL for most of their time, so a thread per core keeps
        # a GPU fed; on the CPU the model itself wants the cores, so fewer. Shards share the cores.
        cores = os.cpu_count() or 2
        self.prepare_workers = prepare_workers or (
            max(2, min(MAX_GPU_PREPARE_WORKERS * len(model.device_indices), (cores - 2) // engines))
            if model.device == "cuda"
            else max(1, cores // 2 // engines)
        )
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._tokenizers: dict[tuple[str, str], Any] = {}
        # Batches in flight: one per GPU replica, plus one whose CPU-side work (prompts, alignment,
        # copies) overlaps the GPU's; on the CPU one (the model already uses every core).
        self.parallel_batches = parallel_batches or (
            len(model.device_indices) * model.workers_per_gpu + 1 if model.device == "cuda" else 1
        )
        self.stats = RunStats()  # of the current (or last) run
        self.tracing = False  # RunStats.trace: benchmarks/compare.py --trace
        # Fallback temperatures sampled together (GPU: spare room) or in turn (CPU: every core is busy).
        self.fallback_at_once = model.device == "cuda"
        # None: every chunk over 30 s, as faster-whisper (on a GPU the encoder is a small share of a batch).
        self.encoder_margin_frames: int | None = ENCODER_MARGIN_FRAMES if model.device == "cpu" else None
        # On the CPU the encoder takes a batch a few rows at a time (host_memory.py); on a GPU, whole.
        self.encoder_full_rows: int | None = CPU_ENCODER_FULL_ROWS if model.device == "cpu" else None
        self._pool: ThreadPoolExecutor | None = None
        self._memory_fit: dict[str, Any] | None = None  # free GPU memory and the model's shape, once
        # Feeding a GPU, the CPU stage in threads is held back by the GIL (benchmarks/results/2026-11-22-gpu.md):
        # there it runs in worker processes. On the CPU the model wants the cores; threads suffice.
        if prepare_in_processes is None:
            prepare_in_processes = model.device == "cuda"
        # Each process gets threads for one long file's VAD windows and features: a queue of short files
        # keeps the processes busy, a single long file keeps one process's threads busy.
        self._process_threads = max(2, min(8, cores // 2))
        self._processes: ProcessPoolExecutor | None = (
            worker_processes(dict(model.whisper.feat_kwargs), self.prepare_workers, self._process_threads)
            if prepare_in_processes
            else None
        )
        # The processes start now, in the background, while the user picks files (the app makes an
        # engine when the model is loaded, for this, and one per run; the pool is kept between them).
        self._starting: list[Future[Any]] = (
            [start_worker_processes(self._processes, self.prepare_workers)] if self._processes is not None else []
        )
        if getattr(self.whisper.model, "device", model.device) == "cuda":  # (tests schedule the CPU model as a GPU's)
            self._starting.append(self._warm_once())
        self._remotes: list[RemoteShard] = []
        if remote_shards:
            shard_model = ShardModel(
                model.path, model.compute_type, model.workers_per_gpu, self.prepare_workers, prepare_in_processes
            )
            self._remotes = shards_for(self.whisper, remote_shards, shard_model)
            self._starting.extend(shard.ready for shard in self._remotes)
        self.shard_summaries: list[str] = []  # the remote shards' RunStats summaries of the last run
        self.shard_of_job: dict[int, str] = {}  # in the last run, which shard took each job

    def _warm_once(self) -> Future[Any]:
        """Every GPU worker decodes one full-size batch, once per loaded model (not per engine: the app
        makes one per run), so the first files do not wait while CTranslate2 allocates batch-sized
        memory (a first run took 1.9 s, the next 1.3 s)."""
        with _warm_lock:
            known = _warmed.get(self.whisper)
            if known is not None:
                return known
            warming: Future[Any] = Future()
            _warmed[self.whisper] = warming

        def warm_up() -> None:
            try:
                self._warm_gpu_workers()
            except Exception as exc:  # noqa: BLE001 - not an error yet: a real batch will say what fails
                log.warning("warming the GPU workers failed: %s", exc)
            warming.set_result(None)

        threading.Thread(target=warm_up, name="verbatim-warm", daemon=True).start()
        return warming

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        """Wait until the CPU stage's worker processes have started and the GPU workers are warm; True
        when they have (or there are none)."""
        done, not_done = futures_wait(self._starting, timeout=timeout_s)
        return not not_done and all(f.exception() is None for f in done)

    def _warm_gpu_workers(self) -> None:
        """One batch of the largest default size through every call a run makes (encoder, language
        detection, beam search, the fallback's sampling, word alignment) on each GPU worker at once
        (concurrent calls go to different workers). A call's first use of a shape allocates on the
        card: warming only the encoder and beam search left detection, alignment and fallback slower
        in the first queue after loading than in the next."""
        replicas = len(self.model.device_indices) * self.model.workers_per_gpu
        chunks = self.batch_limits(TranscribeOptions()).chunks
        n_mels = int(self.whisper.feat_kwargs.get("feature_size", 80))
        features = np.zeros((chunks, n_mels, FRAMES_PER_CHUNK), dtype=np.float32)
        tokenizer = self._tokenizer("en", "transcribe")
        prompt = self.whisper.get_prompt(tokenizer, [], without_timestamps=True)
        words = tokenizer.encode(" one two three four five six seven eight")
        defaults = TranscribeOptions()
        retried = min(chunks, 16)  # a batch's fallback: a few of its chunks, five samples each

        def one_worker(_index: int) -> None:
            model = self.whisper.model
            encoded = self._encode(features)
            storage = _storage(encoded)
            if model.is_multilingual:
                model.detect_language(storage)
            model.generate(
                storage, [prompt] * chunks, beam_size=defaults.beam_size,
                max_length=len(prompt) + 8, return_scores=True, return_no_speech_prob=True,
            )
            model.generate(
                _storage(encoded[:retried]), [prompt] * retried, beam_size=1, num_hypotheses=5, sampling_topk=0,
                sampling_temperature=0.5, max_length=len(prompt) + 8, return_scores=True, return_no_speech_prob=True,
            )
            model.align(storage, tokenizer.sot_sequence, [words] * chunks, [FRAMES_PER_CHUNK] * chunks)

        started = time.perf_counter()
        with ThreadPoolExecutor(replicas, thread_name_prefix="verbatim-warm") as pool:
            list(pool.map(one_worker, range(replicas)))
        log.info("warmed %d GPU workers with batches of %d in %.2f s", replicas, chunks, time.perf_counter() - started)

    def default_batch_size(self) -> int:
        """The most chunks in a batch when the user sets none (the seconds of speech decide first on a GPU)."""
        return AUTO_GPU_BATCH_CHUNKS if self.model.device == "cuda" else CPU_BATCH_CHUNKS

    def batch_limits(self, options: TranscribeOptions) -> BatchLimits:
        """How big the next batches may be. On a GPU, by default, a batch holds up to AUTO_GPU_BATCH_S
        seconds of speech: decoding costs about what the speech is long, so many short chunks (a queue
        of short files) share one batch where few 30 s chunks would. Either way no more chunks than the
        free memory of the smallest card holds (GPU memory is read once, at the first run); an
        out-of-memory error still halves a batch that was too big."""
        chunks = options.batch_size or self.default_batch_size()
        if self.model.device != "cuda":
            return BatchLimits(chunks, math.inf)
        seconds = math.inf if options.batch_size else AUTO_GPU_BATCH_S
        fits = self._chunks_that_fit(options.beam_size)
        if fits is not None and fits < chunks:
            log.info("batches of at most %d chunks: that is what fits in the GPU's free memory", fits)
            chunks = fits
        return BatchLimits(chunks, seconds)

    def _chunks_that_fit(self, beam_size: int) -> int | None:
        fit = self._memory_fit
        if fit is None:
            # The card's memory just after the model loaded (LoadedModel reads it then); asked here, once
            # per engine and outside the lock, only for a model loaded without it.
            shape = decoder_shape(self.model.path)
            recorded = self.model.gpu_free_bytes
            frees = list(recorded) if recorded is not None else [free_bytes(i) for i in self.model.device_indices]
            # The type CTranslate2 resolved ("int8" on CUDA may run in the model's own float type).
            compute_type = str(getattr(self.whisper.model, "compute_type", self.model.compute_type))
            value_bytes = 4 if compute_type in ("float32", "int8_float32") else 2
            free = smallest_known(frees)
            fit = {}
            if shape is not None and free is not None:
                fit = {"free": free, "shape": shape, "value_bytes": value_bytes}
            self._memory_fit = fit
        if not fit:
            return None
        # Every CTranslate2 worker on a card may decode a batch at the same time.
        share = USABLE_SHARE / max(1, self.model.workers_per_gpu)
        return chunks_that_fit(fit["free"], bytes_per_chunk(fit["shape"], beam_size, fit["value_bytes"]), share)

    def cancel_job(self, job_id: int) -> None:
        with self._lock:
            self._cancelled.add(job_id)
        for shard in self._remotes:
            shard.cancel_job(job_id)

    def _is_cancelled(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._cancelled

    # -- the run ---------------------------------------------------------------------------------
    def run(
        self, jobs: Iterable[EngineJob], options: TranscribeOptions, cancel: threading.Event
    ) -> Iterator[Event]:
        """Transcribe the jobs as they come (pulled lazily), yielding their events. With remote shards,
        they and this process's engine take jobs from the same queue."""
        self.shard_summaries, self.shard_of_job = [], {}
        if not self._remotes:
            return self._run_here(jobs, options, cancel)

        def local(shared_jobs: Iterable[EngineJob], local_cancel: threading.Event) -> Iterator[Event]:
            return self._run_here(shared_jobs, options, local_cancel)

        return run_sharded(local, self._remotes, jobs, options, cancel, self.shard_summaries, self.shard_of_job)

    def _run_here(
        self, jobs: Iterable[EngineJob], options: TranscribeOptions, cancel: threading.Event
    ) -> Iterator[Event]:
        limits = self.batch_limits(options)
        # With several decoders, the first batches take a share each, so a short queue starts on every
        # decoder rather than on one; with one decoder (the CPU) the first batch starts on what is ready.
        opening = BatchLimits(max(1, limits.chunks // self.parallel_batches), limits.seconds / self.parallel_batches)
        anything = BatchLimits(1, 0.0)
        first = BatchLimits(max(1, limits.chunks // 2), limits.seconds)  # one decoder's first batch
        dispatched = 0
        idle_since = time.monotonic()  # when the decoders last had nothing to do
        busy = False
        self.stats = stats = RunStats(tracing=self.tracing)
        # Jobs being prepared or with chunks not yet sent to a decoder, in queue order. A job whose
        # chunks have all been sent leaves this list; its batches in flight hold it until emitted.
        states: list[_JobState] = []
        cond = threading.Condition()
        # Set by every prepared file and every finished batch: the loop sleeps on this one event
        # (waiting on hundreds of futures at once cost more than the work it waited for).
        wake = threading.Event()
        feeding_done = threading.Event()
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.prepare_workers, thread_name_prefix="verbatim-prepare")
        parallel = self.parallel_batches
        decoders = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="verbatim-decode")
        in_flight: deque[tuple[list[_Item], Future[list[_Decoded]]]] = deque()
        # Read-ahead: enough prepared chunks for the batches in flight and the next ones, and never more
        # than that many files waiting (a prepared file holds its features: about 100 MB an hour of
        # speech). Files already sent to a decoder do not count: they wait for nothing here.
        max_pending = max(8, 2 * limits.chunks)
        max_ready_chunks = (parallel + 1) * limits.chunks
        cancels_seen = 0

        def wake_up(_future: Future[Any]) -> None:
            wake.set()

        def feed() -> None:
            try:
                for job in jobs:
                    with cond:
                        while (
                            len(states) >= max_pending or self._undispatched_chunks(states) >= max_ready_chunks
                        ) and not stop.is_set():
                            cond.wait(_WAIT_S)
                        if stop.is_set():
                            return
                        state = _JobState(job, pool.submit(self._prepare, job, options))
                        states.append(state)
                    state.future.add_done_callback(wake_up)
            except Exception:  # noqa: BLE001 - a broken job source ends feeding, not the run
                log.exception("the job source failed")
            finally:
                feeding_done.set()
                wake.set()

        def in_flight_states() -> list[_JobState]:
            return _unique_states([item for batch, _ in in_flight for item in batch])

        def sent(state: _JobState) -> bool:
            prepared = state.prepared
            return prepared is not None and state.next_chunk >= len(prepared.chunks)

        feeder = threading.Thread(target=feed, name="verbatim-feed", daemon=True)
        feeder.start()
        try:
            while True:
                wake.clear()  # a signal from here on ends the wait below at once
                if cancel.is_set():
                    for state in [*list(states), *in_flight_states()]:
                        if not state.finished:
                            state.finished = True
                            state.future.cancel()
                            yield JobCancelled(state.job.job_id)
                    return
                with cond:
                    # Settled jobs leave the list (a window's run can last all day), and so do jobs whose
                    # chunks have all been sent: the feeder may read ahead again.
                    before = len(states)
                    states[:] = [s for s in states if not s.finished and not sent(s)]
                    if len(states) < before:
                        cond.notify_all()
                events: list[Event] = []
                with self._lock:
                    cancels = len(self._cancelled)
                if cancels != cancels_seen:
                    # A job cancelled after its last chunk was sent: settled now, skipped when emitted.
                    cancels_seen = cancels
                    for state in in_flight_states():
                        if not state.finished and self._is_cancelled(state.job.job_id):
                            state.finished = True
                            events.append(JobCancelled(state.job.job_id))
                # Batches are emitted in the order they were sent (a job's segments stay in time
                # order), but one that has finished frees its decoder at once, while it waits for an
                # earlier one to finish: a batch held up by fallback no longer holds up the others.
                computing = [f for _, f in in_flight if not f.done()]
                if computing:
                    busy = True
                elif busy:
                    busy, idle_since = False, time.monotonic()
                # While a GPU worker is idle, an opening share of a batch goes to it as soon as it is
                # ready. The last batch in flight (the one whose CPU-side work overlaps the others'
                # GPU work) waits for a full batch while files are still being prepared: on a GPU a
                # batch costs about the same per step whether half or full. While the decoders are
                # idle, wait for an opening share, but no longer than OPENING_WAIT_S: ready files do
                # not wait for a long one's preparation.
                room = len(computing) < parallel and len(in_flight) < MAX_UNEMITTED_BATCHES * parallel
                take = opening if parallel > 1 and len(computing) < parallel - 1 else limits
                if parallel == 1 and not dispatched:
                    take = first
                patient = False
                if not room:
                    fill = False
                elif computing:
                    fill = self._ready_fills(states, take) or not self._preparing(states)
                else:
                    patient = parallel > 1 and time.monotonic() - idle_since < OPENING_WAIT_S
                    fill = (
                        self._ready_fills(states, opening if patient else anything)
                        or not self._preparing(states)
                    )
                batch = self._next_batch(states, take if fill else None, events)
                yield from events
                if batch:
                    stats.mark("dispatch", items=len(batch), computing=len(computing), unemitted=len(in_flight))
                    dispatched += 1
                    computed = decoders.submit(self._compute_batch, batch, options)
                    computed.add_done_callback(wake_up)
                    in_flight.append((batch, computed))
                    with cond:
                        cond.notify_all()  # fewer chunks wait: the feeder may read ahead
                    continue
                if in_flight and in_flight[0][1].done():
                    head_batch, head = in_flight.popleft()
                    yield from self._emit_batch(head_batch, head, options)
                    continue
                if events:
                    continue
                if not in_flight and not states and feeding_done.is_set():
                    with cond:
                        if not states:
                            return
                    continue
                # Nothing to send or emit: sleep until a file is prepared or a batch finishes (or,
                # while an opening share is awaited, until its patience runs out).
                timeout = _WAIT_S
                if patient:
                    timeout = min(timeout, max(0.0, OPENING_WAIT_S - (time.monotonic() - idle_since)) + 0.001)
                with stats.timed("wait"):
                    wake.wait(timeout)
        finally:
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            decoders.shutdown(wait=False, cancel_futures=True)
            self._close_cpu_pool()

    def _next_batch(self, states: list[_JobState], limits: BatchLimits | None, events: list[Event]) -> list[_Item]:
        """Chunks for the next decoder batch, in queue order; settles jobs that need no decoding.
        Without limits it only settles (failed, cancelled and silent jobs)."""
        batch: list[_Item] = []
        seconds = 0.0
        max_chunks = limits.chunks if limits else 0
        max_seconds = limits.seconds if limits else 0.0
        for state in list(states):
            if state.finished:
                continue
            job_id = state.job.job_id
            if self._is_cancelled(job_id):
                state.finished = True
                state.future.cancel()
                events.append(JobCancelled(job_id))
                continue
            if state.prepared is None:
                if not state.future.done():
                    if batch:
                        break  # keep queue order: later jobs wait for this one's speech
                    continue
                try:
                    state.prepared = state.future.result()
                except AudioError as exc:
                    state.finished = True
                    events.append(JobFailed(job_id, str(exc)))
                    continue
                except Exception as exc:  # noqa: BLE001 - one bad file never stops the queue
                    log.exception("preparing job %s failed", job_id)
                    state.finished = True
                    events.append(JobFailed(job_id, f"cannot read the audio: {exc}"))
                    continue
            prepared = state.prepared
            if not prepared.chunks:
                # Silence (or nothing left after a resume point) is an empty transcript, not an error.
                state.finished = True
                events.append(
                    JobStarted(
                        job_id, prepared.duration_s, state.language or self._fixed_language(), 0.0,
                        prepared.start_at_s,
                    )
                )
                events.append(JobProgress(job_id, prepared.duration_s, prepared.duration_s))
                events.append(JobFinished(job_id, job_notices(state.job, prepared.notices, 0)))
                continue
            while state.next_chunk < len(prepared.chunks) and len(batch) < max_chunks and seconds < max_seconds:
                chunk = prepared.chunks[state.next_chunk]
                batch.append(_Item(state, chunk))
                seconds += chunk.duration_s
                state.next_chunk += 1
            if limits and (len(batch) >= max_chunks or seconds >= max_seconds):
                break
        return batch

    @staticmethod
    def _waiting_chunks(states: list[_JobState]) -> Iterator[list[Chunk]]:
        """Per unfinished file whose preparation succeeded, its chunks not yet sent to a decoder."""
        for s in list(states):
            if s.finished:
                continue
            prepared = s.prepared
            if prepared is None and s.future.done() and not s.future.cancelled() and s.future.exception() is None:
                prepared = s.future.result()
            if prepared is not None:
                yield prepared.chunks[s.next_chunk :]

    @classmethod
    def _undispatched_chunks(cls, states: list[_JobState]) -> int:
        """Chunks prepared and not yet sent (the feeder reads this without the main loop's lock: an
        estimate that may be off by a file, which only moves the read-ahead by one)."""
        return sum(len(waiting) for waiting in cls._waiting_chunks(states))

    @classmethod
    def _ready_fills(cls, states: list[_JobState], limits: BatchLimits) -> bool:
        """Whether the prepared chunks not yet sent fill a batch."""
        chunks, seconds = 0, 0.0
        for waiting in cls._waiting_chunks(states):
            chunks += len(waiting)
            seconds += sum(c.duration_s for c in waiting)
            if chunks >= limits.chunks or seconds >= limits.seconds:
                return True
        return False

    @staticmethod
    def _preparing(states: list[_JobState]) -> bool:
        return any(not s.finished and s.prepared is None and not s.future.done() for s in states)

    def _fixed_language(self) -> str:
        return "" if self.whisper.model.is_multilingual else "en"

    # -- CPU stage: decode, VAD, features ---------------------------------------------------------
    def _prepare(self, job: EngineJob, options: TranscribeOptions) -> _Prepared:
        from faster_whisper.vad import SpeechTimestampsMap

        processes = self._processes
        if processes is not None:
            try:
                prepared = processes.submit(
                    prepare_in_process, job.source, job.audio, job.start_at_s, options.vad, job.end_at_s
                ).result()
            except BrokenProcessPool:
                # A worker died inside native code (a decoder crash on this file): the file fails,
                # the app does not, and the next job gets a new pool.
                with self._lock:
                    if self._processes is processes:
                        discard_worker_processes(processes)
                        self._processes = worker_processes(
                            dict(self.whisper.feat_kwargs), self.prepare_workers, self._process_threads
                        )
                raise AudioError("decoding this file crashed the decoder") from None
        else:
            prepared = prepare_audio(
                job.source,
                job.audio,
                job.start_at_s,
                options.vad,
                self.whisper.feature_extractor,
                self._cpu_pool(),
                job.end_at_s,
            )
        for phase, seconds in prepared.seconds.items():
            self.stats.add(phase, seconds)
        self.stats.mark("prepared", job=job.job_id, chunks=len(prepared.chunks), seconds=prepared.duration_s)
        return _Prepared(
            duration_s=prepared.duration_s,
            chunks=prepared.chunks,
            timeline=SpeechTimestampsMap(prepared.speech, SAMPLE_RATE),
            start_at_s=prepared.start_at_s,
            notices=tuple(prepared.notices),
        )

    def _cpu_pool(self) -> ThreadPoolExecutor:
        """Threads for the pieces of one job (VAD windows, chunk features), made per run. Separate
        from the job pool, whose tasks wait on these: sharing one pool could deadlock."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.prepare_workers, thread_name_prefix="verbatim-cpu")
            return self._pool

    def _close_cpu_pool(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- decoder stage ----------------------------------------------------------------------------
    def _compute_batch(self, batch: list[_Item], options: TranscribeOptions) -> list[_Decoded]:
        """The model's part of a batch (encode, detect, decode, fallback, align). Runs on a decoder
        thread, several at once when there are several GPUs; touches no job state but languages."""
        if self.stats.tracing:  # (its details are not worth working out otherwise)
            self.stats.mark("batch", items=len(batch), speech=round(sum(i.chunk.duration_s for i in batch), 1))
        windows = [encoder_window(item.chunk.features.shape[-1], self.encoder_margin_frames) for item in batch]
        by_row: dict[int, _Decoded] = {}
        for window in window_order([id(item.state) for item in batch], windows):
            rows = [i for i, w in enumerate(windows) if w == window]
            part = batch if len(rows) == len(batch) else [batch[i] for i in rows]
            part_decoded, encoder_output = self._generate_with_backoff(part, options, window)
            with self.stats.timed("align"):
                self._align_words(part, part_decoded, encoder_output)
            by_row.update(zip(rows, part_decoded))
        self.stats.mark("batch done", items=len(batch))
        if self.model.device == "cpu":
            release_freed_heap()  # the batch's working memory, before the next batch's lands on top of it
        return [by_row[i] for i in range(len(batch))]

    def _emit_batch(
        self, batch: list[_Item], computed: Future[list[_Decoded]], options: TranscribeOptions
    ) -> Iterator[Event]:
        """Segments, progress and endings of a computed batch, on the caller's thread, in the order
        batches were dispatched (so every job's segments stay in time order)."""
        try:
            decoded = computed.result()
        except Exception as exc:  # noqa: BLE001 - fail these jobs, keep the queue going
            if self.model.device == "cuda" and is_device_error(exc):
                # Not these files' fault: the caller can move to the CPU and resume them.
                raise DeviceFailure(f"the GPU failed: {_first_line(exc)}") from exc
            log.error("decoding a batch failed", exc_info=exc)
            for state in _unique_states(batch):
                if not state.finished:
                    state.finished = True
                    yield JobFailed(state.job.job_id, f"the speech model failed: {exc}")
            return

        by_job: dict[int, list[Segment]] = {}
        for item, result in zip(batch, decoded):
            state = item.state
            if state.finished:
                continue
            if not state.started:
                state.started = True
                yield JobStarted(
                    state.job.job_id,
                    state.prepared.duration_s if state.prepared else 0.0,
                    state.language or "",
                    state.language_probability,
                    state.prepared.start_at_s if state.prepared else 0.0,
                )
            by_job.setdefault(state.job.job_id, []).extend(self._to_segments(item, result, options))

        for state in _unique_states(batch):
            if state.finished:
                continue
            job_id = state.job.job_id
            segments = by_job.get(job_id, [])
            if segments:
                state.segment_count += len(segments)
                yield SegmentsDecoded(job_id, tuple(segments))
            chunks_here = sum(1 for item in batch if item.state is state)
            state.decoded_chunks += chunks_here
            prepared = state.prepared
            assert prepared is not None
            last_chunk = prepared.chunks[state.decoded_chunks - 1]
            finished = state.decoded_chunks >= len(prepared.chunks)
            done_s = prepared.duration_s if finished else last_chunk.end_s
            yield JobProgress(job_id, done_s, prepared.duration_s)
            if finished:
                state.finished = True
                yield JobFinished(job_id, job_notices(state.job, prepared.notices, state.segment_count))

    def _generate_with_backoff(
        self, batch: list[_Item], options: TranscribeOptions, frames: int = FRAMES_PER_CHUNK
    ) -> tuple[list[_Decoded], np.ndarray]:
        """`frames`: the batch's encoder window; its halves keep it (their outputs are joined)."""
        try:
            return self._generate(batch, options, frames)
        except RuntimeError as exc:
            # A CUDA out-of-memory halves the batch and tries again; it never fails a job.
            if "out of memory" not in str(exc).lower() or len(batch) == 1:
                raise
            half = len(batch) // 2
            log.warning("out of GPU memory at batch %d; retrying as %d + %d", len(batch), half, len(batch) - half)
            first, first_output = self._generate_with_backoff(batch[:half], options, frames)
            second, second_output = self._generate_with_backoff(batch[half:], options, frames)
            return first + second, np.concatenate([first_output, second_output])

    def _generate(
        self, batch: list[_Item], options: TranscribeOptions, frames: int = FRAMES_PER_CHUNK
    ) -> tuple[list[_Decoded], np.ndarray]:
        features = padded_features([item.chunk.features for item in batch], frames)
        self.stats.count_batch(len(batch))
        with self.stats.timed("encode"):
            encoder_output = self._encode(features)
        with self.stats.timed("detect"):
            self._detect_languages(batch, encoder_output, options)
        with self.stats.timed("generate"):
            decoded = self._generate_items(batch, encoder_output, options, temperature=0.0)
        if self.stats.tracing:
            self.stats.mark("generated", items=len(batch), tokens=max((len(d.tokens) for d in decoded), default=0))
        # Temperature fallback, batched over the items that need it (usually none).
        attempts: list[list[_Decoded]] = [[d] for d in decoded]
        if self.fallback_at_once:
            self._fallback_at_once(batch, decoded, attempts, encoder_output, options)
        else:
            self._fallback_in_turn(batch, decoded, attempts, encoder_output, options)
        for i, d in enumerate(decoded):
            if len(attempts[i]) > 1 and self._needs_fallback(d, options):
                decoded[i] = _best_attempt(attempts[i], options)
        return decoded, encoder_output

    def _fallback_in_turn(
        self,
        batch: list[_Item],
        decoded: list[_Decoded],
        attempts: list[list[_Decoded]],
        encoder_output: np.ndarray,
        options: TranscribeOptions,
    ) -> None:
        """faster-whisper's fallback: each temperature in turn, for the items the previous one failed."""
        for temperature in options.temperatures[1:]:
            retry = [i for i, d in enumerate(decoded) if self._needs_fallback(d, options)]
            if not retry:
                break
            self.stats.count_fallback(len(retry))
            with self.stats.timed("fallback"):
                sub = [batch[i] for i in retry]
                again = self._generate_items(sub, encoder_output[retry], options, temperature=temperature)
            if self.stats.tracing:
                self.stats.mark("fallback", temperature=temperature, items=len(retry),
                                tokens=max((len(d.tokens) for d in again), default=0))
            for i, result in zip(retry, again):
                attempts[i].append(result)
                decoded[i] = result

    def _fallback_at_once(
        self,
        batch: list[_Item],
        decoded: list[_Decoded],
        attempts: list[list[_Decoded]],
        encoder_output: np.ndarray,
        options: TranscribeOptions,
    ) -> None:
        """The same choice as _fallback_in_turn (an item keeps the first temperature that passes), with
        every temperature sampled at once, side by side on the GPU's workers. In turn, one item that
        fails five times holds its batch for five decodes; the GPU has room for all five together."""
        retry = [i for i, d in enumerate(decoded) if self._needs_fallback(d, options)]
        temperatures = options.temperatures[1:]
        if not retry or not temperatures:
            return
        sub, rows = [batch[i] for i in retry], encoder_output[retry]
        with self.stats.timed("fallback"):
            pending = [
                self._start_generate(sub, rows, options, temperature, asynchronous=True)
                for temperature in temperatures
            ]
            # Every decode is waited for, even after one failed (out of memory, say): the halved retry
            # must not start while the others still hold the GPU's workers and memory.
            rounds: list[list[_Decoded]] = []
            failure: Exception | None = None
            for finish in pending:
                try:
                    rounds.append(finish())
                except Exception as exc:  # noqa: BLE001 - re-raised below, once all have ended
                    failure = failure or exc
            if failure is not None:
                raise failure
        self.stats.count_fallback(len(retry) * len(temperatures))
        if self.stats.tracing:
            self.stats.mark("fallback", temperature=f"{temperatures[0]}-{temperatures[-1]}", items=len(retry),
                            tokens=max((len(d.tokens) for results in rounds for d in results), default=0))
        for k, i in enumerate(retry):
            for results in rounds:
                attempts[i].append(results[k])
                decoded[i] = results[k]
                if not self._needs_fallback(results[k], options):
                    break

    def _encode(self, features: np.ndarray) -> np.ndarray:
        """The encoder's output as a host array. Detection, decoding, fallback retries and word
        alignment then take it or any subset of its rows without encoding again; on a GPU that
        costs one small copy each way (faster-whisper does the same with several GPUs)."""
        from faster_whisper.transcribe import get_ctranslate2_storage

        def encode(rows: np.ndarray) -> np.ndarray:
            output = self.whisper.model.encode(get_ctranslate2_storage(np.ascontiguousarray(rows)), to_cpu=True)
            # No copy (40 MB for 28 chunks of base, made under the GIL): the array's base is the storage,
            # which keeps the memory alive as long as the array or any view of it.
            return np.asarray(output)

        if self.encoder_full_rows is None:  # (a GPU's batch size already allows for its encoder's memory)
            return encode(features)
        return encode_in_slices(encode, features, encoder_rows(features.shape[-1], self.encoder_full_rows))

    def _needs_fallback(self, d: _Decoded, options: TranscribeOptions) -> bool:
        if self._is_silence(d, options):
            return False
        return (
            d.runaway
            or d.compression_ratio > options.compression_ratio_threshold
            or d.avg_logprob < options.log_prob_threshold
        )

    @staticmethod
    def _is_silence(d: _Decoded, options: TranscribeOptions) -> bool:
        return d.no_speech_prob > options.no_speech_threshold and d.avg_logprob < options.log_prob_threshold

    def _detect_languages(self, batch: list[_Item], encoder_output: Any, options: TranscribeOptions) -> None:
        """Sets each job's language (once) and each item's decoding language.

        A file's language is that of its first chunk, as in faster-whisper; when that chunk is unsure
        (below 0.5), the probabilities of all its chunks in this batch are summed. A later chunk of
        at least LANGUAGE_SWITCH_MIN_S that is confidently another language is decoded in that
        language, so a recording that switches language is not forced through the wrong one."""
        if options.language or not self.whisper.model.is_multilingual:
            fixed = options.language or "en"
            with self._lock:
                for item in batch:
                    item.language = fixed
                    if item.state.language is None:
                        item.state.language, item.state.language_probability = fixed, 1.0
            return
        # Job languages are shared with the other decoder threads (a file's chunks can sit in two
        # batches in flight): read and set them under the lock, the first setter wins.
        with self._lock:
            known = all(
                item.state.language is not None and item.chunk.duration_s < LANGUAGE_SWITCH_MIN_S for item in batch
            )
            if known:
                for item in batch:
                    item.language = item.state.language
                return  # nothing in this batch could use a detection
        results = self.whisper.model.detect_language(_storage(encoder_output))
        per_item = [(result[0][0][2:-2], float(result[0][1])) for result in results]
        with self._lock:
            totals: dict[int, dict[str, float]] = {}
            for item, result in zip(batch, results):
                if item.state.language is None:
                    bucket = totals.setdefault(id(item.state), {})
                    for token, probability in result:
                        bucket[token[2:-2]] = bucket.get(token[2:-2], 0.0) + float(probability)
            for item, (language, probability) in zip(batch, per_item):
                state = item.state
                if state.language is None:
                    if item.chunk.index == state.prepared_first_index() and probability >= 0.5:
                        state.language, state.language_probability = language, probability
                    else:
                        bucket = totals[id(state)]
                        best, total = max(bucket.items(), key=lambda kv: kv[1])
                        count = sum(1 for other in batch if other.state is state)
                        state.language, state.language_probability = best, total / count
                switch = (
                    language != state.language
                    and probability >= LANGUAGE_SWITCH_MIN_PROBABILITY
                    and item.chunk.duration_s >= LANGUAGE_SWITCH_MIN_S
                )
                item.language = language if switch else state.language

    def _tokenizer(self, language: str, task: str) -> Any:
        key = (language, task)
        tokenizer = self._tokenizers.get(key)
        if tokenizer is None:
            from faster_whisper.tokenizer import Tokenizer

            tokenizer = Tokenizer(
                self.whisper.hf_tokenizer, self.whisper.model.is_multilingual, task=task, language=language or "en"
            )
            self._tokenizers[key] = tokenizer
        return tokenizer

    def _generate_items(
        self, batch: list[_Item], encoder_output: Any, options: TranscribeOptions, temperature: float
    ) -> list[_Decoded]:
        return self._start_generate(batch, encoder_output, options, temperature)()

    def _start_generate(
        self,
        batch: list[_Item],
        encoder_output: np.ndarray,
        options: TranscribeOptions,
        temperature: float,
        asynchronous: bool = False,
    ) -> Callable[[], list[_Decoded]]:
        """Start decoding `batch` from its encoder output; the returned call waits for the results.
        Asynchronous, the model's next free worker takes the batch and this thread goes on."""
        from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

        whisper = self.whisper
        tokenizers = [self._tokenizer(item.language or item.state.language or "en", options.task) for item in batch]
        first = tokenizers[0]
        previous = first.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else []
        prompts = [
            whisper.get_prompt(tok, previous_tokens=previous, without_timestamps=True, hotwords=options.hotwords)
            for tok in tokenizers
        ]
        sampling = temperature > 0
        # The storage shares the array's memory: both must live until an asynchronous decode ends.
        storage = _storage(encoder_output)
        started = whisper.model.generate(
            storage,
            prompts,
            asynchronous=asynchronous,
            beam_size=1 if sampling else options.beam_size,
            num_hypotheses=5 if sampling else 1,
            sampling_topk=0 if sampling else 1,
            sampling_temperature=temperature if sampling else 1.0,
            max_length=min(whisper.max_length, len(prompts[0]) + max(_token_allowance(item) for item in batch)),
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(first, [-1]),
            return_scores=True,
            return_no_speech_prob=True,
        )

        def finish(kept: tuple[Any, ...] = (storage, encoder_output)) -> list[_Decoded]:
            results = [r.result() for r in started] if asynchronous else started
            decoded: list[_Decoded] = []
            for item, tok, result in zip(batch, tokenizers, results):
                best = max(range(len(result.sequences_ids)), key=lambda i: result.scores[i])
                tokens = list(result.sequences_ids[best])
                avg_logprob = result.scores[best] * len(tokens) / (len(tokens) + 1)
                text = tok.decode(tokens)
                decoded.append(
                    _Decoded(
                        tokens=tokens,
                        avg_logprob=float(avg_logprob),
                        no_speech_prob=float(result.no_speech_prob),
                        text=text,
                        compression_ratio=get_compression_ratio(text) if text.strip() else 0.0,
                        # More tokens than this chunk's speech can hold: a loop, however well it compresses.
                        runaway=len(tokens) >= _token_allowance(item),
                    )
                )
            return decoded

        return finish

    def _align_words(self, batch: list[_Item], decoded: list[_Decoded], encoder_output: np.ndarray) -> None:
        """Word timings by cross-attention alignment (one aligner call per language in the batch).

        Decoding runs without timestamp tokens, as faster-whisper's batched pipeline does: with them
        the model may end a chunk early at a timestamp, and in a batch nothing resumes from there.
        The words' timings then give the segments their times."""
        from faster_whisper.transcribe import merge_punctuations

        whisper = self.whisper
        groups: dict[str, list[int]] = {}
        for i, item in enumerate(batch):
            if decoded[i].tokens and decoded[i].text.strip():
                groups.setdefault(item.language or item.state.language or "en", []).append(i)
        for language, indices in groups.items():
            tok = self._tokenizer(language, "transcribe")
            output = encoder_output if len(indices) == len(batch) else encoder_output[indices]
            text_tokens = [[t for t in decoded[i].tokens if t < tok.eot] for i in indices]
            window = 2 * output.shape[1]  # the encoder's frames (it halves them)
            alignments = whisper.find_alignment(
                tok, text_tokens, _storage(output), [min(window, _chunk_frames(batch[i].chunk)) for i in indices]
            )
            for i, alignment in zip(indices, alignments):
                _tidy_alignment(alignment)
                merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
                duration_s = batch[i].chunk.duration_s
                decoded[i].words = [
                    dict(
                        word=w["word"],
                        start=min(float(w["start"]), duration_s),
                        end=min(float(w["end"]), duration_s),
                        probability=float(w["probability"]),
                    )
                    for w in alignment
                    if w["word"]
                ]

    def _to_segments(self, item: _Item, result: _Decoded, options: TranscribeOptions) -> list[Segment]:
        """Chunk-local words -> segments in the file's original timeline, ordered, non-overlapping."""
        if self._is_silence(result, options) or not result.text.strip():
            return []
        prepared = item.state.prepared
        assert prepared is not None
        timeline = prepared.timeline
        base = item.chunk.offset_s
        shift = prepared.start_at_s
        end_of_file_s = prepared.duration_s

        def original(local_s: float, index: int | None = None, is_end: bool = False) -> float:
            # No cue ends after the file does (a hallucinated word can be timed past it).
            return round(min(shift + float(timeline.get_original_time(base + local_s, index, is_end)), end_of_file_s), 3)

        words: list[Word] = []
        for w in result.words:
            index = timeline.get_chunk_index(base + (w["start"] + w["end"]) / 2)
            words.append(Word(original(w["start"], index), original(w["end"], index), w["word"], round(w["probability"], 4)))
        stats = dict(
            avg_logprob=round(result.avg_logprob, 4),
            no_speech_prob=round(result.no_speech_prob, 4),
            compression_ratio=round(result.compression_ratio, 3),
        )
        if words:
            groups = group_words(words)
        else:  # alignment found nothing to time: one segment over the chunk
            groups = [[Word(original(0.0), original(item.chunk.duration_s, is_end=True), result.text, 0.0)]]
        out: list[Segment] = []
        for group in groups:
            text = "".join(w.text for w in group).strip()
            if not text:
                continue
            start_s = max(group[0].start_s, item.state.last_end_s)
            end_s = min(max(group[-1].end_s, round(start_s + 0.02, 3)), end_of_file_s)
            if end_s - start_s < 0.02:  # at the very end of the file: the cue ends there, and starts before it
                start_s = max(round(end_s - 0.02, 3), item.state.last_end_s)
                if start_s >= end_s:
                    continue
            kept = tuple(w for w in group if w.end_s > start_s) if words else ()
            out.append(Segment(start_s, end_s, text, kept if options.word_timestamps else (), **stats))
            item.state.last_end_s = end_s
        return out


SENTENCE_END = (".", "?", "!", "。", "？", "！", "…")
MAX_SEGMENT_CHARS = 110
MAX_SEGMENT_S = 10.0
PAUSE_SPLIT_S = 0.8


_DEVICE_ERROR_MARKS = ("cuda", "cublas", "cudnn", "nccl", "device-side", "gpu", "out of memory")


def is_device_error(exc: BaseException) -> bool:
    """A failure of the GPU or its libraries rather than of the input (CTranslate2 raises RuntimeError
    with the CUDA library's message). Out of memory lands here only once a batch of one fails."""
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | OSError) and any(mark in text for mark in _DEVICE_ERROR_MARKS)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def group_words(words: list[Word]) -> list[list[Word]]:
    """Subtitle-sized groups: a new segment after a sentence end, at a pause, or when a segment
    would grow past MAX_SEGMENT_CHARS / MAX_SEGMENT_S (then preferably after a comma)."""
    groups: list[list[Word]] = []
    current: list[Word] = []
    chars = 0
    for word in words:
        if current:
            last = current[-1].text.strip()
            pause = word.start_s - current[-1].end_s
            too_long = chars + len(word.text) > MAX_SEGMENT_CHARS or word.end_s - current[0].start_s > MAX_SEGMENT_S
            soft = chars > MAX_SEGMENT_CHARS * 0.6 and last.endswith((",", "，", ";", ":"))
            if (last.endswith(SENTENCE_END) and chars >= 12) or pause >= PAUSE_SPLIT_S or too_long or soft:
                groups.append(current)
                current, chars = [], 0
        current.append(word)
        chars += len(word.text)
    if current:
        groups.append(current)
    return groups


def _tidy_alignment(alignment: list[dict[str, Any]]) -> None:
    """Cap words at sentence ends to twice the median word length, as faster-whisper does: the
    aligner tends to stretch the last word of a sentence over the following pause."""
    durations = np.array([w["end"] - w["start"] for w in alignment])
    durations = durations[durations.nonzero()]
    if len(durations) == 0:
        return
    max_s = min(0.7, float(np.median(durations))) * 2
    for i in range(1, len(alignment)):
        if alignment[i]["end"] - alignment[i]["start"] > max_s:
            if alignment[i]["word"] in SENTENCE_END:
                alignment[i]["end"] = alignment[i]["start"] + max_s
            elif alignment[i - 1]["word"] in SENTENCE_END:
                alignment[i]["start"] = alignment[i]["end"] - max_s


# No speech needs more tokens per second than this (fast speech in byte-heavy scripts stays well
# below); a loop does, and without a cap a 4 s chunk's loop runs to the model's 448 tokens at
# every fallback temperature.
MAX_TOKENS_PER_S = 25
MIN_TOKEN_ALLOWANCE = 32


def _best_attempt(attempts: list[_Decoded], options: TranscribeOptions) -> _Decoded:
    """When every temperature failed: the most confident attempt that is not a loop, else the most
    confident of all (faster-whisper's rule; the last, hottest sample is usually the worst)."""
    not_loops = [
        d for d in attempts if not d.runaway and d.compression_ratio <= options.compression_ratio_threshold
    ]
    return max(not_loops or attempts, key=lambda d: d.avg_logprob)


def _token_allowance(item: _Item) -> int:
    return MIN_TOKEN_ALLOWANCE + math.ceil(item.chunk.duration_s * MAX_TOKENS_PER_S)


def encoder_window(frames: int, margin_frames: int | None) -> int:
    """The encoder window of a chunk of `frames` frames: them plus the margin, rounded up to a step (so
    a batch's chunks share a few windows), at most 30 s; 30 s when margin_frames is None."""
    if margin_frames is None:
        return FRAMES_PER_CHUNK
    step = ENCODER_WINDOW_STEP_FRAMES
    return min(FRAMES_PER_CHUNK, -(-(frames + margin_frames) // step) * step)


def window_order(jobs: list[int], windows: list[int]) -> list[int]:
    """The order in which a batch's parts (its chunks by encoder window) are decoded. A job's language is
    detected in the part that holds its first chunk of the batch, so a part holding a later chunk of a
    job whose first chunk is in another part goes after the parts that hold none such; otherwise, in the
    order of their first chunk. `jobs[i]` and `windows[i]` are row i's job and window."""
    first_row: dict[int, int] = {}
    for row, job in enumerate(jobs):
        first_row.setdefault(job, row)

    def waits(window: int) -> bool:
        return any(windows[first_row[job]] != window for job, w in zip(jobs, windows) if w == window)

    return sorted(dict.fromkeys(windows), key=waits)


def padded_features(chunks: list[np.ndarray], frames: int = FRAMES_PER_CHUNK) -> np.ndarray:
    """(batch, n_mels, frames) float32: each chunk's frames, then zeros (faster-whisper's pad_or_trim
    when frames is 3000)."""
    n_mels = chunks[0].shape[0]
    out = np.zeros((len(chunks), n_mels, frames), dtype=np.float32)
    for row, features in zip(out, chunks):
        taken = min(frames, features.shape[-1])
        row[:, :taken] = features[:, :taken]
    return out


def _storage(array: np.ndarray) -> Any:
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))


def _chunk_frames(chunk: Chunk) -> int:
    return min(FRAMES_PER_CHUNK, int(math.ceil(chunk.duration_s) * 100))


def _unique_states(batch: list[_Item]) -> list[_JobState]:
    seen: dict[int, _JobState] = {}
    for item in batch:
        seen.setdefault(id(item.state), item.state)
    return list(seen.values())
