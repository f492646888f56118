"""The batching policy, without a model: which chunks go into which decoder batch, when, and in what
order the results come out as events.

Files are prepared (decoded, cut into chunks, turned into features) on a pool of threads, ahead of the
decoders. The loop takes chunks in queue order (earlier jobs finish first), packs chunks of many files
into one batch, keeps several batches in flight, and emits batches in the order they were sent, so a
job's segments stay in time order. What a batch costs and what it gives is the caller's: the work comes
in as callables (prepare a job, compute a batch, turn an item's result into segments), so the policy can
be tested and benchmarked with fakes (tests/engine/test_scheduler.py, benchmarks/scheduler.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from desktop.core.segment import Segment
from desktop.engine.audio import AudioError
from desktop.engine.events import (
    EngineJob,
    Event,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobProgress,
    JobStarted,
    SegmentsDecoded,
)
from desktop.engine.notices import job_notices
from desktop.engine.prepare import Chunk
from desktop.engine.stats import RunStats

log = logging.getLogger(__name__)

_WAIT_S = 0.05
# While the decoders are idle, ready chunks wait at most this long for an opening share of a batch.
OPENING_WAIT_S = 0.25
# Finished batches waiting for an earlier one to be emitted, at most this many per decoder.
MAX_UNEMITTED_BATCHES = 4

R = TypeVar("R")  # what computing one item of a batch gives (decoding.Decoded for the model)


@dataclass(frozen=True)
class BatchLimits:
    chunks: int  # most chunks in one batch
    seconds: float  # most seconds of speech in one batch (math.inf: the count alone decides)


@dataclass(frozen=True)
class Limits:
    """How the scheduler may batch: the size of a batch, how many are in flight, how many files are
    prepared at once."""

    batch: BatchLimits
    batches_in_flight: int = 1
    prepare_workers: int = 1
    opening_wait_s: float = OPENING_WAIT_S
    max_unemitted_batches: int = MAX_UNEMITTED_BATCHES

    @property
    def opening(self) -> BatchLimits:
        """With several decoders, the first batches take a share each, so a short queue starts on every
        decoder rather than on one."""
        parallel = self.batches_in_flight
        return BatchLimits(max(1, self.batch.chunks // parallel), self.batch.seconds / parallel)

    @property
    def first(self) -> BatchLimits:
        """One decoder's first batch: half, so the first text appears sooner."""
        return BatchLimits(max(1, self.batch.chunks // 2), self.batch.seconds)

    @property
    def max_pending_files(self) -> int:
        """Read-ahead: never more files waiting than this (a prepared file holds its features: about
        100 MB an hour of speech). Files already sent to a decoder do not count."""
        return max(8, 2 * self.batch.chunks)

    @property
    def max_ready_chunks(self) -> int:
        """Read-ahead: enough prepared chunks for the batches in flight and the next ones."""
        return (self.batches_in_flight + 1) * self.batch.chunks


@dataclass
class Prepared:
    duration_s: float
    chunks: list[Chunk]
    timeline: Any  # faster_whisper.vad.SpeechTimestampsMap, speech-only -> original time
    start_at_s: float
    notices: tuple[str, ...] = ()


@dataclass
class JobState:
    job: EngineJob
    future: Future[Prepared]
    prepared: Prepared | None = None
    language: str | None = None  # set by the batch's computation (language detection), read when emitted
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
class Item:
    state: JobState
    chunk: Chunk
    language: str | None = None  # the language this chunk is decoded in


class JobCancels:
    """Jobs cancelled by id, from any thread."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._lock = threading.Lock()

    def add(self, job_id: int) -> None:
        with self._lock:
            self._ids.add(job_id)

    def __contains__(self, job_id: object) -> bool:
        with self._lock:
            return job_id in self._ids

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)


class Scheduler(Generic[R]):
    """One run's batching. `prepare(job)` runs on a pool of limits.prepare_workers threads, `compute(batch)`
    on limits.batches_in_flight decoder threads (it may set each job's language), `segments(item, result)`
    on the caller's thread, in the order batches were sent. `fatal(exc)`, for a batch that failed, gives the
    error that ends the run (the device broke), or None: then the batch's jobs fail and the queue goes on."""

    def __init__(
        self,
        prepare: Callable[[EngineJob], Prepared],
        compute: Callable[[list[Item]], list[R]],
        segments: Callable[[Item, R], list[Segment]],
        limits: Limits,
        stats: RunStats | None = None,
        cancels: JobCancels | None = None,
        fatal: Callable[[Exception], BaseException | None] = lambda exc: None,
        silent_language: str = "",
    ) -> None:
        self.prepare = prepare
        self.compute = compute
        self.segments = segments
        self.limits = limits
        self.stats = stats or RunStats()
        self.cancels = cancels or JobCancels()
        self.fatal = fatal
        self.silent_language = silent_language  # the language a job without speech is said to have

    def run(self, jobs: Iterable[EngineJob], cancel: threading.Event) -> Iterator[Event]:
        """Transcribe the jobs as they come (pulled lazily), yielding their events."""
        limits = self.limits.batch
        parallel = self.limits.batches_in_flight
        opening = self.limits.opening
        anything = BatchLimits(1, 0.0)
        first = self.limits.first
        opening_wait_s = self.limits.opening_wait_s
        dispatched = 0
        idle_since = time.monotonic()  # when the decoders last had nothing to do
        busy = False
        stats = self.stats
        # Jobs being prepared or with chunks not yet sent to a decoder, in queue order. A job whose
        # chunks have all been sent leaves this list; its batches in flight hold it until emitted.
        states: list[JobState] = []
        cond = threading.Condition()
        # Set by every prepared file and every finished batch: the loop sleeps on this one event
        # (waiting on hundreds of futures at once cost more than the work it waited for).
        wake = threading.Event()
        feeding_done = threading.Event()
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.limits.prepare_workers, thread_name_prefix="verbatim-prepare")
        decoders = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="verbatim-decode")
        in_flight: deque[tuple[list[Item], Future[list[R]]]] = deque()
        max_pending = self.limits.max_pending_files
        max_ready_chunks = self.limits.max_ready_chunks
        cancels_seen = 0

        def wake_up(_future: Future[Any]) -> None:
            wake.set()

        def feed() -> None:
            try:
                for job in jobs:
                    with cond:
                        while (
                            len(states) >= max_pending or undispatched_chunks(states) >= max_ready_chunks
                        ) and not stop.is_set():
                            cond.wait(_WAIT_S)
                        if stop.is_set():
                            return
                        state = JobState(job, pool.submit(self.prepare, job))
                        states.append(state)
                    state.future.add_done_callback(wake_up)
            except Exception:  # noqa: BLE001 - a broken job source ends feeding, not the run
                log.exception("the job source failed")
            finally:
                feeding_done.set()
                wake.set()

        def in_flight_states() -> list[JobState]:
            return unique_states([item for batch, _ in in_flight for item in batch])

        def sent(state: JobState) -> bool:
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
                cancels = len(self.cancels)
                if cancels != cancels_seen:
                    # A job cancelled after its last chunk was sent: settled now, skipped when emitted.
                    cancels_seen = cancels
                    for state in in_flight_states():
                        if not state.finished and state.job.job_id in self.cancels:
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
                # idle, wait for an opening share, but no longer than opening_wait_s: ready files do
                # not wait for a long one's preparation.
                room = len(computing) < parallel and len(in_flight) < self.limits.max_unemitted_batches * parallel
                take = opening if parallel > 1 and len(computing) < parallel - 1 else limits
                if parallel == 1 and not dispatched:
                    take = first
                patient = False
                if not room:
                    fill = False
                elif computing:
                    fill = ready_fills(states, take) or not preparing(states)
                else:
                    patient = parallel > 1 and time.monotonic() - idle_since < opening_wait_s
                    fill = ready_fills(states, opening if patient else anything) or not preparing(states)
                batch = self._next_batch(states, take if fill else None, events)
                yield from events
                if batch:
                    stats.mark("dispatch", items=len(batch), computing=len(computing), unemitted=len(in_flight))
                    dispatched += 1
                    computed = decoders.submit(self.compute, batch)
                    computed.add_done_callback(wake_up)
                    in_flight.append((batch, computed))
                    with cond:
                        cond.notify_all()  # fewer chunks wait: the feeder may read ahead
                    continue
                if in_flight and in_flight[0][1].done():
                    head_batch, head = in_flight.popleft()
                    yield from self._emit_batch(head_batch, head)
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
                    timeout = min(timeout, max(0.0, opening_wait_s - (time.monotonic() - idle_since)) + 0.001)
                with stats.timed("wait"):
                    wake.wait(timeout)
        finally:
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            decoders.shutdown(wait=False, cancel_futures=True)

    def _next_batch(self, states: list[JobState], limits: BatchLimits | None, events: list[Event]) -> list[Item]:
        """Chunks for the next decoder batch, in queue order; settles jobs that need no decoding.
        Without limits it only settles (failed, cancelled and silent jobs)."""
        batch: list[Item] = []
        seconds = 0.0
        max_chunks = limits.chunks if limits else 0
        max_seconds = limits.seconds if limits else 0.0
        for state in list(states):
            if state.finished:
                continue
            job_id = state.job.job_id
            if job_id in self.cancels:
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
                    JobStarted(job_id, prepared.duration_s, state.language or self.silent_language, 0.0,
                               prepared.start_at_s)
                )
                events.append(JobProgress(job_id, prepared.duration_s, prepared.duration_s))
                events.append(JobFinished(job_id, job_notices(state.job, prepared.notices, 0)))
                continue
            while state.next_chunk < len(prepared.chunks) and len(batch) < max_chunks and seconds < max_seconds:
                chunk = prepared.chunks[state.next_chunk]
                batch.append(Item(state, chunk))
                seconds += chunk.duration_s
                state.next_chunk += 1
            if limits and (len(batch) >= max_chunks or seconds >= max_seconds):
                break
        return batch

    def _emit_batch(self, batch: list[Item], computed: Future[list[R]]) -> Iterator[Event]:
        """Segments, progress and endings of a computed batch, on the caller's thread, in the order
        batches were dispatched (so every job's segments stay in time order)."""
        try:
            decoded = computed.result()
        except Exception as exc:  # noqa: BLE001 - fail these jobs, keep the queue going
            fatal = self.fatal(exc)
            if fatal is not None:
                # Not these files' fault: the caller can move to the CPU and resume them.
                raise fatal from exc
            log.error("decoding a batch failed", exc_info=exc)
            for state in unique_states(batch):
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
            by_job.setdefault(state.job.job_id, []).extend(self.segments(item, result))

        for state in unique_states(batch):
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


def waiting_chunks(states: list[JobState]) -> Iterator[list[Chunk]]:
    """Per unfinished file whose preparation succeeded, its chunks not yet sent to a decoder."""
    for s in list(states):
        if s.finished:
            continue
        prepared = s.prepared
        if prepared is None and s.future.done() and not s.future.cancelled() and s.future.exception() is None:
            prepared = s.future.result()
        if prepared is not None:
            yield prepared.chunks[s.next_chunk :]


def undispatched_chunks(states: list[JobState]) -> int:
    """Chunks prepared and not yet sent (the feeder reads this without the main loop's lock: an
    estimate that may be off by a file, which only moves the read-ahead by one)."""
    return sum(len(waiting) for waiting in waiting_chunks(states))


def ready_fills(states: list[JobState], limits: BatchLimits) -> bool:
    """Whether the prepared chunks not yet sent fill a batch."""
    chunks, seconds = 0, 0.0
    for waiting in waiting_chunks(states):
        chunks += len(waiting)
        seconds += sum(c.duration_s for c in waiting)
        if chunks >= limits.chunks or seconds >= limits.seconds:
            return True
    return False


def preparing(states: list[JobState]) -> bool:
    return any(not s.finished and s.prepared is None and not s.future.done() for s in states)


def unique_states(batch: list[Item]) -> list[JobState]:
    seen: dict[int, JobState] = {}
    for item in batch:
        seen.setdefault(id(item.state), item.state)
    return list(seen.values())

