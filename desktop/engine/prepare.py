"""The CPU stage of transcription: decode a file, find its speech, cut it into chunks of at most
30 s and compute each chunk's log-mel features. Runs on the engine's threads, or in worker
processes when a GPU waits on it (there the GIL, not the cores, limited threads)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from desktop.core.privacy import disable_telemetry
from desktop.engine.audio import SAMPLE_RATE, decode_blocks

CHUNK_S = 30
FRAMES_PER_CHUNK = 3000
# VAD settings of faster-whisper's batched pipeline: short pauses split speech, so chunks end at
# natural breaks and never cut a word.
VAD_MIN_SILENCE_MS = 160
VAD_WINDOW_S = 60
# The CPU stage's worker processes run at this niceness (lower priority than the app).
WORKER_NICENESS = 10
# Long files are decoded and prepared this much at a time.
STREAM_WINDOW_S = 600


@dataclass
class Chunk:
    index: int
    # (n_mels, frames) float32: the chunk's own frames, at most 3000. Padded to 3000 when batched, not
    # here: a worker process sends a 5 s chunk's 0.16 MB rather than 0.96 MB of mostly zeros.
    features: np.ndarray
    offset_s: float  # start in the speech-only timeline
    duration_s: float
    end_s: float  # end in the original timeline (for progress)


@dataclass
class PreparedAudio:
    duration_s: float
    start_at_s: float
    speech: list[dict[str, int]]  # speech spans, in samples after start_at_s
    chunks: list[Chunk]
    seconds: dict[str, float] = field(default_factory=dict)  # time per phase (decode, vad, features)
    # What the user should know about the input (a damaged stretch, a second audio track).
    notices: list[str] = field(default_factory=list)


def prepare_audio(
    source: Path | None,
    audio: np.ndarray | None,
    start_at_s: float,
    vad: bool,
    feature_extractor: Any,
    executor: Executor,
    end_at_s: float | None = None,
) -> PreparedAudio:
    """The input from start_at_s to end_at_s (the end when None), in the file's own time.

    `executor` runs the pieces of this one file (VAD windows, chunk features); it must not be
    the executor this call itself runs on (waiting on it from inside could deadlock).

    A file is decoded, searched for speech and turned into features STREAM_WINDOW_S at a time, each
    window cut in a pause: only one window of samples is in memory, whatever the file's length (a
    three-hour file would otherwise hold 0.7 GB of samples, and twice that while decoding). What stays
    is the chunks' features, about 100 MB per hour of speech."""
    seconds = {"decode": 0.0, "vad": 0.0, "features": 0.0}
    skip = int(max(start_at_s, 0.0) * SAMPLE_RATE)
    limit = None if end_at_s is None else max(skip, int(round(end_at_s * SAMPLE_RATE)))
    consumed = [0]  # samples read before the windows (the resume point), then in them
    notices: list[str] = []
    if audio is not None:
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)[:limit]
        consumed[0] = min(skip, len(samples))
        windows: Iterable[np.ndarray] = [samples[consumed[0] :]]
    else:
        windows = _stream_windows(
            source, skip, STREAM_WINDOW_S * SAMPLE_RATE, seconds, consumed, limit, notices  # type: ignore[arg-type]
        )

    speech: list[dict[str, int]] = []
    chunks: list[Chunk] = []
    position = 0  # samples after the resume point before the current window
    speech_before_s = 0.0  # speech in earlier windows: where this window's starts in the speech-only timeline
    for window in windows:
        window_speech, window_chunks = _prepare_window(
            window, vad, feature_extractor, executor, seconds, len(chunks), speech_before_s
        )
        base_s = (consumed[0] + position) / SAMPLE_RATE
        for chunk in window_chunks:
            chunk.end_s += base_s
        speech.extend({"start": s["start"] + position, "end": s["end"] + position} for s in window_speech)
        chunks.extend(window_chunks)
        speech_before_s += sum(s["end"] - s["start"] for s in window_speech) / SAMPLE_RATE
        position += len(window)
    duration_s = (consumed[0] + position) / SAMPLE_RATE
    for chunk in chunks:
        chunk.end_s = min(chunk.end_s, duration_s)
    # The resume point exactly as asked (not rounded to a sample): the library keeps what ends before it.
    return PreparedAudio(duration_s, min(max(start_at_s, 0.0), duration_s), speech, chunks, seconds, notices)


def _prepare_window(
    samples: np.ndarray,
    vad: bool,
    feature_extractor: Any,
    executor: Executor,
    seconds: dict[str, float],
    first_index: int,
    speech_before_s: float,
) -> tuple[list[dict[str, int]], list[Chunk]]:
    """Speech spans (in samples of this window) and chunks; a chunk's offset_s is in the whole file's
    speech-only timeline and its end_s relative to the window's start."""
    from faster_whisper.vad import SpeechTimestampsMap, collect_chunks

    started = time.perf_counter()
    if vad:
        speech = speech_timestamps(samples, executor)
    else:
        step = CHUNK_S * SAMPLE_RATE
        speech = [{"start": i, "end": min(i + step, len(samples))} for i in range(0, len(samples), step)]
    seconds["vad"] += time.perf_counter() - started
    chunks: list[Chunk] = []
    if not speech:
        return speech, chunks
    timeline = SpeechTimestampsMap(speech, SAMPLE_RATE)
    pieces, metadata = collect_chunks(samples, speech, max_duration=CHUNK_S)
    kept = [(piece, meta) for piece, meta in zip(pieces, metadata) if len(piece)]

    def features(piece: np.ndarray) -> np.ndarray:
        mel = feature_extractor(piece)[..., :-1]
        return np.ascontiguousarray(mel[..., :FRAMES_PER_CHUNK], dtype=np.float32)

    started = time.perf_counter()
    computed = list(executor.map(features, [piece for piece, _ in kept]))
    seconds["features"] += time.perf_counter() - started
    for i, ((_piece, meta), chunk_features) in enumerate(zip(kept, computed)):
        offset_s = float(meta["offset"])
        chunk_duration_s = float(meta["duration"])
        end_s = float(timeline.get_original_time(offset_s + chunk_duration_s, is_end=True))
        chunks.append(Chunk(first_index + i, chunk_features, speech_before_s + offset_s, chunk_duration_s, end_s))
    return speech, chunks


def _stream_windows(
    source: Path,
    skip: int,
    window: int,
    seconds: dict[str, float],
    consumed: list[int],
    limit: int | None = None,
    notices: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """The file after its first `skip` samples (and before sample `limit`, when given), in windows of
    about `window` samples, each cut at the quietest 100 ms within 2 s of its mark. consumed[0] counts
    the samples skipped. Decoding stops at the limit. The decoder's notices go to `notices`."""
    search = 2 * SAMPLE_RATE
    blocks = decode_blocks(source, block_samples=min(window, 60 * SAMPLE_RATE), notices=notices)
    buffer = np.empty(0, dtype=np.float32)
    read = 0  # samples decoded so far
    while limit is None or read < limit:
        started = time.perf_counter()
        block = next(blocks, None)
        seconds["decode"] += time.perf_counter() - started
        if block is None:
            break
        if limit is not None:
            block = block[: limit - read]
        read += len(block)
        if consumed[0] < skip:
            drop = min(len(block), skip - consumed[0])
            consumed[0] += drop
            block = block[drop:]
        buffer = np.concatenate([buffer, block]) if len(buffer) else block
        while len(buffer) >= window + search:
            cut = quiet_cut(buffer, window, search)
            yield buffer[:cut]
            buffer = buffer[cut:].copy()
    if len(buffer):
        yield buffer


def speech_timestamps(audio: np.ndarray, executor: Executor) -> list[dict[str, int]]:
    """Silero VAD; long audio in windows on the executor (its ONNX session uses one thread per
    call). Windows are cut at the quietest 100 ms near each VAD_WINDOW_S mark, so a cut falls in a
    pause, not in a word."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    vad_options = VadOptions(max_speech_duration_s=CHUNK_S, min_silence_duration_ms=VAD_MIN_SILENCE_MS)
    bounds = window_bounds(audio, VAD_WINDOW_S * SAMPLE_RATE)
    if len(bounds) <= 2:
        return get_speech_timestamps(audio, vad_options)

    def window(start: int, stop: int) -> list[dict[str, int]]:
        found = get_speech_timestamps(audio[start:stop], vad_options)
        return [{"start": s["start"] + start, "end": s["end"] + start} for s in found]

    parts: Iterable[list[dict[str, int]]] = executor.map(window, bounds[:-1], bounds[1:])
    return [segment for part in parts for segment in part]


def window_bounds(audio: np.ndarray, window: int, search: int = 2 * SAMPLE_RATE) -> list[int]:
    """Sample positions [0, ..., len(audio)] about `window` apart, each moved to the quietest
    100 ms within `search` samples of its mark."""
    bounds = [0]
    mark = window
    while mark < len(audio) - window // 2:
        cut = bounds[-1] + quiet_cut(audio[bounds[-1] :], mark - bounds[-1], search)
        bounds.append(cut)
        mark = cut + window
    bounds.append(len(audio))
    return bounds


def quiet_cut(audio: np.ndarray, mark: int, search: int) -> int:
    """The middle of the quietest 100 ms within `search` samples of `mark` (never at 0 or the end)."""
    frame = SAMPLE_RATE // 10
    lo, hi = max(frame, mark - search), min(len(audio) - frame, mark + search)
    region = audio[lo:hi]
    usable = len(region) // frame * frame
    if usable < frame:
        return mark
    energy = np.square(region[:usable]).reshape(-1, frame).sum(axis=1)
    return lo + int(np.argmin(energy)) * frame + frame // 2


# -- in a worker process -------------------------------------------------------------------------
_process_state: dict[str, Any] = {}


def init_process(feature_kwargs: dict[str, Any], threads: int, niceness: int = 0, started: Any = None) -> None:
    """Process-pool initializer: one feature extractor and a few threads per process. `started`, a
    shared counter, counts the processes whose initializer has run (start_worker_processes)."""
    disable_telemetry()  # inherited from the parent too; this process loads onnxruntime just below
    from faster_whisper.feature_extractor import FeatureExtractor
    from faster_whisper.vad import get_vad_model

    one_blas_thread()
    try:
        # Below the decoder's threads, which launch the GPU's work and wait on it: when the cores are
        # all busy preparing, a GPU worker that waits for a core leaves the card idle.
        os.nice(niceness)
    except (AttributeError, OSError):  # not POSIX, or not allowed: equal priority still works
        pass
    _process_state["extractor"] = FeatureExtractor(**feature_kwargs)
    _process_state["threads"] = ThreadPoolExecutor(threads, thread_name_prefix="verbatim-cpu")
    try:
        get_vad_model()  # Silero's ONNX session, loaded now rather than on the first file
    except Exception:  # noqa: BLE001 - a file that needs VAD will say why; one without VAD still works
        logging.getLogger(__name__).exception("loading Silero VAD in a worker process failed")
    try:
        _warm_stages()
    except Exception:  # noqa: BLE001 - only a head start: the first file pays what is missing
        logging.getLogger(__name__).exception("warming a worker process failed")
    if started is not None:
        with started.get_lock():
            started.value += 1


def _warm_stages() -> None:
    """Each stage once, on a second of noise: decoding (a WAV in memory, through PyAV and its
    resampler), Silero VAD and the mel features. The first call of each is slower than the rest (imports,
    ONNX's first run, allocations), and a user's first files should not pay for it."""
    import io
    import wave

    from desktop.engine.audio import _av_pieces

    rng = np.random.default_rng(0)
    wav = io.BytesIO()
    with wave.open(wav, "wb") as out:  # the standard library's writer: nothing more to load in each process
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(44100)  # a CD rate: resampled
        out.writeframes((rng.normal(0, 0.1, 44100) * 32767).clip(-32768, 32767).astype("<i2").tobytes())
    wav.seek(0)
    for _ in _av_pieces(wav):
        pass
    noise = rng.normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    speech_timestamps(noise, _process_state["threads"])
    _process_state["extractor"](noise)


def _openblas_libraries() -> list[Any]:
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    except OSError:  # not Linux: BLAS keeps its own threads
        return []
    libraries = []
    for path in paths:
        try:
            libraries.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libraries


def _openblas_functions(action: str) -> list[Any]:
    """OpenBLAS's `<action>_num_threads` in each loaded OpenBLAS, under whichever name its build uses."""
    names = (f"scipy_openblas_{action}_num_threads64_", f"scipy_openblas_{action}_num_threads",
             f"openblas_{action}_num_threads64_", f"openblas_{action}_num_threads")
    found = (next((getattr(lib, n) for n in names if hasattr(lib, n)), None) for lib in _openblas_libraries())
    return [function for function in found if function is not None]


def blas_threads() -> int | None:
    """The threads NumPy's OpenBLAS uses in this process (None when it cannot be told)."""
    getters = _openblas_functions("get")
    return int(getters[0]()) if getters else None


def one_blas_thread() -> int:
    """Limit NumPy's OpenBLAS to one thread in this process; the number of libraries limited.

    The mel filter bank is a matrix product, and OpenBLAS gives it a thread per core in every worker
    process: eight processes on sixteen cores ran 128 threads. The pool is the parallelism here.
    (What threadpoolctl does, for the one library NumPy wheels bundle.)"""
    setters = _openblas_functions("set")
    for setter in setters:
        setter(1)
    return len(setters)


def process_ready() -> int:
    """A no-op task: submitting it makes the pool start a process (a spawn pool starts them on demand)."""
    return os.getpid()


def start_worker_processes(pool: ProcessPoolExecutor, processes: int) -> Future[int]:
    """Start every process of a pool now, in the background, so the first files do not wait on
    imports (a second or two). The future is done when every process has run its initializer: the
    no-op tasks that start them are all done by the first process up (on 2 cores, 1 of 8 processes had
    started then), and a run begun at that point had part of its CPU stage still importing. A pool
    already started (the app makes an engine per run on the same pool) is ready at once: no tasks, no
    watcher thread."""
    started = _started.get(pool)
    ready: Future[int] = Future()
    if started is not None and started.value >= processes:
        ready.set_result(started.value)
        return ready
    submitted = [pool.submit(process_ready) for _ in range(processes)]

    def watch() -> None:
        deadline = time.monotonic() + PROCESS_START_TIMEOUT_S
        while True:
            failed = next((f for f in submitted if f.done() and not f.cancelled() and f.exception() is not None), None)
            if failed is not None:  # the pool broke: an initializer failed, or a process died
                ready.set_exception(failed.exception())  # type: ignore[arg-type]
                return
            count = started.value if started is not None else processes
            shut = any(f.cancelled() for f in submitted)  # the pool was shut down: nothing more will start
            if count >= processes or shut or time.monotonic() > deadline:
                if count < processes and not shut:
                    logging.getLogger(__name__).warning("%d of %d CPU-stage processes started", count, processes)
                ready.set_result(count)
                return
            time.sleep(_START_POLL_S)

    threading.Thread(target=watch, name="verbatim-processes-starting", daemon=True).start()
    return ready


def prepare_in_process(
    source: Path | None, audio: np.ndarray | None, start_at_s: float, vad: bool, end_at_s: float | None = None
) -> PreparedAudio:
    return prepare_audio(
        source, audio, start_at_s, vad, _process_state["extractor"], _process_state["threads"], end_at_s
    )


_pools: dict[tuple[Any, ...], ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()
# Each pool's shared count of processes whose initializer has run (start_worker_processes).
_started: weakref.WeakKeyDictionary[ProcessPoolExecutor, Any] = weakref.WeakKeyDictionary()
PROCESS_START_TIMEOUT_S = 60.0
_START_POLL_S = 0.02


def worker_processes(feature_kwargs: dict[str, Any], processes: int, threads: int = 2) -> ProcessPoolExecutor:
    """A process pool for prepare_in_process, made once per set of arguments and kept for the life
    of the program (starting one costs a second or two of imports; the window runs many runs)."""
    niceness = WORKER_NICENESS  # read now: a benchmark may compare settings
    key = (tuple(sorted(feature_kwargs.items())), processes, threads, niceness)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            # spawn, not fork: the parent holds CUDA contexts and threads that a fork would copy.
            context = multiprocessing.get_context("spawn")
            started = context.Value("i", 0)
            pool = ProcessPoolExecutor(
                processes,
                mp_context=context,
                initializer=init_process,
                initargs=(feature_kwargs, threads, niceness, started),
            )
            _pools[key] = pool
            _started[pool] = started
        return pool


def close_worker_processes() -> None:
    """Stop every pool's processes and wait for them. A spawned process that made pools must, before it
    ends: multiprocessing waits for its non-daemon children (the pools' processes) before the
    interpreter's exit handlers would shut the pools down, so it would never end."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


def discard_worker_processes(pool: ProcessPoolExecutor) -> None:
    """Forget a broken pool (a worker died), so the next call makes a new one."""
    with _pools_lock:
        for key, value in list(_pools.items()):
            if value is pool:
                del _pools[key]
    pool.shutdown(wait=False, cancel_futures=True)


def terminate_worker_processes(timeout_s: float = 1.0) -> int:
    """Stop every pool's processes now, within about timeout_s, dropping what they were preparing; returns
    how many there were. For a program on its way out: close_worker_processes waits for the files being
    prepared (one long file's CPU stage takes minutes), and a process left running when its parent exits
    outlives it, waiting on its pool's queue forever."""
    with _pools_lock:
        pools = list(_pools.values())
    processes: list[Any] = []
    for pool in pools:
        # The executor keeps its processes in a private mapping: it has no public way to stop a running task.
        processes.extend(list((getattr(pool, "_processes", None) or {}).values()))
        discard_worker_processes(pool)
    for process in processes:
        process.terminate()
    deadline_s = time.monotonic() + timeout_s
    for process in processes:
        process.join(max(0.0, deadline_s - time.monotonic()))
        if process.is_alive():
            # A process that handles SIGTERM itself (a handler inherited through fork) ends here, and is
            # reaped, so nothing is left behind as a zombie either.
            process.kill()
            process.join(0.5)
    return len(processes)
