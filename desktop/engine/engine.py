"""The transcription engine: jobs in, events out, on one loaded model in this process.

The engine joins the parts: the CPU stage (desktop/engine/prepare.py) prepares each file, the scheduler
(scheduler.py) packs chunks of many queued files into shared decoder batches, the decoder (decoding.py)
computes them (language detection, fallback), and the aligner (alignment.py) times their words and cuts
segments. What outlives a run belongs to the model's host (host.py). Further GPUs are driven from above,
by multi_gpu.py.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from desktop.engine.alignment import Aligner, to_segments
from desktop.engine.audio import SAMPLE_RATE, AudioError
from desktop.engine.decoding import (
    ENCODER_MARGIN_FRAMES,
    Decoder,
    Tokenizers,
    first_line,
    is_device_error,
    storage_of,
)
from desktop.engine.events import DeviceFailure, EngineJob, Event, TranscribeOptions
from desktop.engine.host import EngineHost, host_of
from desktop.engine.host_memory import CPU_ENCODER_FULL_ROWS
from desktop.engine.loading import LoadedModel
from desktop.engine.prepare import FRAMES_PER_CHUNK, prepare_audio, prepare_in_process
from desktop.engine.scheduler import BatchLimits, JobCancels, Limits, Prepared, Scheduler
from desktop.engine.stats import RunStats

log = logging.getLogger(__name__)

# A GPU batch, when the user sets no batch size: up to this many seconds of speech, in at most this
# many chunks (and what fits in free memory). Chosen on real short speech
# (benchmarks/results/2026-11-29-gpu-real-speech.md).
AUTO_GPU_BATCH_S = 960.0
AUTO_GPU_BATCH_CHUNKS = 96
# CPU-stage processes feeding the GPUs: a core each, two cores left for the decoder threads, at most
# this many per GPU (two GPUs on 32 cores ran the 828-file queue in 5.5-5.8 s with 28, 6.1 s with 16).
MAX_GPU_PREPARE_WORKERS = 16
# CPU batches: 8 chunks ran 5-20% faster than 4 and 16 no faster than 8
# (benchmarks/results/2026-11-30-cpu-encoder-windows.md).
# The first batch of a run takes half, so the first text appears as soon as with 4.
CPU_BATCH_CHUNKS = 8


class Engine:
    """Drives one loaded model in this process. Thread-safe for `cancel_job`; `run` is used by one thread
    at a time. `engines`: the engine processes sharing this machine's cores (multi_gpu), for sizing the
    CPU stage."""

    def __init__(
        self,
        model: LoadedModel,
        prepare_workers: int | None = None,
        parallel_batches: int | None = None,
        prepare_in_processes: bool | None = None,
        host: EngineHost | None = None,
        engines: int = 1,
    ) -> None:
        self.model = model
        self.whisper = model.whisper
        self.host = host or host_of(model)
        # Decoding, VAD and features release the GIL for most of their time, so a thread per core keeps
        # a GPU fed; on the CPU the model itself wants the cores, so fewer. Engine processes share the cores.
        cores = os.cpu_count() or 2
        self.prepare_workers = prepare_workers or (
            max(2, min(MAX_GPU_PREPARE_WORKERS * len(model.device_indices), (cores - 2) // engines))
            if model.device == "cuda"
            else max(1, cores // 2 // engines)
        )
        self._cancels = JobCancels()
        self._lock = threading.Lock()
        # Batches in flight: one per GPU replica, plus one whose CPU-side work (prompts, alignment,
        # copies) overlaps the GPU's; on the CPU one (the model already uses every core).
        self.parallel_batches = parallel_batches or (
            len(model.device_indices) * model.workers_per_gpu + 1 if model.device == "cuda" else 1
        )
        self.stats = RunStats()  # of the current (or last) run
        self.tracing = False  # RunStats.trace: benchmarks/compare.py --trace
        tokenizers = Tokenizers(self.whisper)
        self.decoder = Decoder(
            self.whisper, tokenizers, Aligner(self.whisper, tokenizers),
            fallback_at_once=model.device == "cuda",
            encoder_margin_frames=ENCODER_MARGIN_FRAMES if model.device == "cpu" else None,
            encoder_full_rows=CPU_ENCODER_FULL_ROWS if model.device == "cpu" else None,
            on_cpu=model.device == "cpu",
        )
        self._pool: ThreadPoolExecutor | None = None
        # Feeding a GPU, the CPU stage in threads is held back by the GIL (benchmarks/results/2026-11-22-gpu.md):
        # there it runs in worker processes. On the CPU the model wants the cores; threads suffice.
        if prepare_in_processes is None:
            prepare_in_processes = model.device == "cuda"
        self.prepare_in_processes = prepare_in_processes
        # Each process gets threads for one long file's VAD windows and features: a queue of short files
        # keeps the processes busy, a single long file keeps one process's threads busy.
        self._process_threads = max(2, min(8, cores // 2))
        self._processes: ProcessPoolExecutor | None = None
        self._starting: list[Future[Any]] = []
        if prepare_in_processes:
            # The processes start now, in the background, while the user picks files (the app makes an
            # engine when the model is loaded, for this, and one per run; the host keeps the pool).
            self._processes, started = self.host.processes(self.prepare_workers, self._process_threads)
            self._starting.append(started)
        if getattr(self.whisper.model, "device", model.device) == "cuda":  # (tests schedule the CPU model as a GPU's)
            self._starting.append(self.host.warm_once(self._warm_gpu_workers))

    # Fallback temperatures sampled together (GPU: spare room) or in turn (CPU: every core is busy).
    @property
    def fallback_at_once(self) -> bool:
        return self.decoder.fallback_at_once

    @fallback_at_once.setter
    def fallback_at_once(self, value: bool) -> None:
        self.decoder.fallback_at_once = value

    # None: every chunk over 30 s, as faster-whisper (on a GPU the encoder is a small share of a batch).
    @property
    def encoder_margin_frames(self) -> int | None:
        return self.decoder.encoder_margin_frames

    @encoder_margin_frames.setter
    def encoder_margin_frames(self, value: int | None) -> None:
        self.decoder.encoder_margin_frames = value

    # On the CPU the encoder takes a batch a few rows at a time (host_memory.py); None: the whole batch.
    @property
    def encoder_full_rows(self) -> int | None:
        return self.decoder.encoder_full_rows

    @encoder_full_rows.setter
    def encoder_full_rows(self, value: int | None) -> None:
        self.decoder.encoder_full_rows = value

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
        tokenizer = self.decoder.tokenizer("en", "transcribe")
        prompt = self.whisper.get_prompt(tokenizer, [], without_timestamps=True)
        words = tokenizer.encode(" one two three four five six seven eight")
        defaults = TranscribeOptions()
        retried = min(chunks, 16)  # a batch's fallback: a few of its chunks, five samples each

        def one_worker(_index: int) -> None:
            model = self.whisper.model
            encoded = self.decoder.encode(features)
            storage = storage_of(encoded)
            if model.is_multilingual:
                model.detect_language(storage)
            model.generate(
                storage, [prompt] * chunks, beam_size=defaults.beam_size,
                max_length=len(prompt) + 8, return_scores=True, return_no_speech_prob=True,
            )
            model.generate(
                storage_of(encoded[:retried]), [prompt] * retried, beam_size=1, num_hypotheses=5, sampling_topk=0,
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
        fits = self.host.chunks_that_fit(options.beam_size)
        if fits is not None and fits < chunks:
            log.info("batches of at most %d chunks: that is what fits in the GPU's free memory", fits)
            chunks = fits
        return BatchLimits(chunks, seconds)

    def cancel_job(self, job_id: int) -> None:
        self._cancels.add(job_id)

    # -- the run ---------------------------------------------------------------------------------
    def run(self, jobs: Iterable[EngineJob], options: TranscribeOptions, cancel: threading.Event) -> Iterator[Event]:
        """Transcribe the jobs as they come (pulled lazily), yielding their events."""
        self.stats = self.decoder.stats = RunStats(tracing=self.tracing)
        scheduler: Scheduler[Any] = Scheduler(
            prepare=lambda job: self._prepare(job, options),
            compute=lambda batch: self.decoder.compute_batch(batch, options),
            segments=lambda item, result: to_segments(item, result, options),
            limits=Limits(self.batch_limits(options), self.parallel_batches, self.prepare_workers),
            stats=self.stats,
            cancels=self._cancels,
            fatal=self._fatal,
            silent_language="" if self.whisper.model.is_multilingual else "en",
        )
        try:
            yield from scheduler.run(jobs, cancel)
        finally:
            self._close_cpu_pool()

    def _fatal(self, exc: Exception) -> BaseException | None:
        if self.model.device == "cuda" and is_device_error(exc):
            return DeviceFailure(f"the GPU failed: {first_line(exc)}")
        return None

    # -- CPU stage: decode, VAD, features ---------------------------------------------------------
    def _prepare(self, job: EngineJob, options: TranscribeOptions) -> Prepared:
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
                        self._processes = self.host.replace_broken(
                            processes, self.prepare_workers, self._process_threads
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
        return Prepared(
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
