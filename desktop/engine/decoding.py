"""The model's part of a batch: encode, detect languages, decode, fall back to higher temperatures for
degenerate items, and halve a batch the GPU has no memory for.

Every batch item gets its own prompt, so languages can mix in a batch. A file's language is detected
inside the first batch that holds its speech (one encoder pass serves detection and decoding). On the
CPU the encoder reads each chunk over a window of its own length (encoder_window).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from desktop.engine.events import TranscribeOptions
from desktop.engine.host_memory import encode_in_slices, encoder_rows, release_freed_heap
from desktop.engine.prepare import FRAMES_PER_CHUNK
from desktop.engine.scheduler import Item
from desktop.engine.stats import RunStats

log = logging.getLogger(__name__)

# On the CPU the encoder reads each chunk over its own frames plus this margin, rounded up to a step,
# not always over 30 s: a 7 s file costs a 10 s window, not a full one (the encoder was most of the
# CPU's time). Without a margin of silence after the speech, Whisper may not find the end and loop
# (whisper.cpp's audio_ctx, github.com/ggml-org/whisper.cpp/issues/1951). A chunk's window depends on
# the chunk alone, never on what it is batched with, so a file's text does not either; a batch is
# encoded and decoded per window (benchmarks/results/2026-11-30-cpu-encoder-windows.md).
ENCODER_MARGIN_FRAMES = 256
ENCODER_WINDOW_STEP_FRAMES = 500
LANGUAGE_SWITCH_MIN_S = 8.0
LANGUAGE_SWITCH_MIN_PROBABILITY = 0.8
# No speech needs more tokens per second than this (fast speech in byte-heavy scripts stays well
# below); a loop does, and without a cap a 4 s chunk's loop runs to the model's 448 tokens at
# every fallback temperature.
MAX_TOKENS_PER_S = 25
MIN_TOKEN_ALLOWANCE = 32


@dataclass
class Decoded:
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    text: str = ""
    compression_ratio: float = 0.0
    words: list[dict[str, Any]] = field(default_factory=list)  # chunk-local times
    runaway: bool = False


class Tokenizers:
    """faster-whisper's tokenizer per (language, task), made once."""

    def __init__(self, whisper: Any) -> None:
        self.whisper = whisper
        self._made: dict[tuple[str, str], Any] = {}

    def get(self, language: str, task: str) -> Any:
        key = (language, task)
        tokenizer = self._made.get(key)
        if tokenizer is None:
            from faster_whisper.tokenizer import Tokenizer

            tokenizer = Tokenizer(
                self.whisper.hf_tokenizer, self.whisper.model.is_multilingual, task=task, language=language or "en"
            )
            self._made[key] = tokenizer
        return tokenizer


# Word timings for a part of a batch: (items, their results, the part's encoder output); fills each
# result's words (alignment.Aligner).
Align = Callable[[list[Item], list["Decoded"], np.ndarray], None]


class Decoder:
    """Computes batches on one loaded model (faster_whisper.WhisperModel); several threads may compute
    batches at once. `stats` is the current run's."""

    def __init__(self, whisper: Any, tokenizers: Tokenizers, align: Align, fallback_at_once: bool,
                 encoder_margin_frames: int | None, encoder_full_rows: int | None = None,
                 on_cpu: bool = False) -> None:
        self.whisper = whisper
        self.tokenizers = tokenizers
        self.align = align
        # Fallback temperatures sampled together (GPU: spare room) or in turn (CPU: every core is busy).
        self.fallback_at_once = fallback_at_once
        # None: every chunk over 30 s, as faster-whisper (on a GPU the encoder is a small share of a batch).
        self.encoder_margin_frames = encoder_margin_frames
        # On the CPU the encoder takes a batch a few rows at a time (host_memory.py); None: whole (a GPU's
        # batch size already allows for its encoder's memory).
        self.encoder_full_rows = encoder_full_rows
        self.on_cpu = on_cpu
        self.stats = RunStats()
        self._lock = threading.Lock()  # the jobs' languages, shared by the decoder threads

    def tokenizer(self, language: str, task: str) -> Any:
        return self.tokenizers.get(language, task)

    def compute_batch(self, batch: list[Item], options: TranscribeOptions) -> list[Decoded]:
        """The model's part of a batch (encode, detect, decode, fallback, align). Runs on a decoder
        thread, several at once when there are several GPUs; touches no job state but languages."""
        if self.stats.tracing:  # (its details are not worth working out otherwise)
            self.stats.mark("batch", items=len(batch), speech=round(sum(i.chunk.duration_s for i in batch), 1))
        windows = [encoder_window(item.chunk.features.shape[-1], self.encoder_margin_frames) for item in batch]
        by_row: dict[int, Decoded] = {}
        for window in window_order([id(item.state) for item in batch], windows):
            rows = [i for i, w in enumerate(windows) if w == window]
            part = batch if len(rows) == len(batch) else [batch[i] for i in rows]
            part_decoded, encoder_output = self.generate_with_backoff(part, options, window)
            with self.stats.timed("align"):
                self.align(part, part_decoded, encoder_output)
            by_row.update(zip(rows, part_decoded))
        self.stats.mark("batch done", items=len(batch))
        if self.on_cpu:
            release_freed_heap()  # the batch's working memory, before the next batch's lands on top of it
        return [by_row[i] for i in range(len(batch))]

    def generate_with_backoff(
        self, batch: list[Item], options: TranscribeOptions, frames: int = FRAMES_PER_CHUNK
    ) -> tuple[list[Decoded], np.ndarray]:
        """`frames`: the batch's encoder window; its halves keep it (their outputs are joined)."""
        try:
            return self.generate(batch, options, frames)
        except RuntimeError as exc:
            # A CUDA out-of-memory halves the batch and tries again; it never fails a job.
            if "out of memory" not in str(exc).lower() or len(batch) == 1:
                raise
            half = len(batch) // 2
            log.warning("out of GPU memory at batch %d; retrying as %d + %d", len(batch), half, len(batch) - half)
            first, first_output = self.generate_with_backoff(batch[:half], options, frames)
            second, second_output = self.generate_with_backoff(batch[half:], options, frames)
            return first + second, np.concatenate([first_output, second_output])

    def generate(
        self, batch: list[Item], options: TranscribeOptions, frames: int = FRAMES_PER_CHUNK
    ) -> tuple[list[Decoded], np.ndarray]:
        features = padded_features([item.chunk.features for item in batch], frames)
        self.stats.count_batch(len(batch))
        with self.stats.timed("encode"):
            encoder_output = self.encode(features)
        with self.stats.timed("detect"):
            self.detect_languages(batch, encoder_output, options)
        with self.stats.timed("generate"):
            decoded = self.generate_items(batch, encoder_output, options, temperature=0.0)
        if self.stats.tracing:
            self.stats.mark("generated", items=len(batch), tokens=max((len(d.tokens) for d in decoded), default=0))
        # Temperature fallback, batched over the items that need it (usually none).
        attempts: list[list[Decoded]] = [[d] for d in decoded]
        if self.fallback_at_once:
            self.fallback_together(batch, decoded, attempts, encoder_output, options)
        else:
            self.fallback_in_turn(batch, decoded, attempts, encoder_output, options)
        for i, d in enumerate(decoded):
            if len(attempts[i]) > 1 and self.needs_fallback(d, options):
                decoded[i] = best_attempt(attempts[i], options)
        return decoded, encoder_output

    def fallback_in_turn(
        self,
        batch: list[Item],
        decoded: list[Decoded],
        attempts: list[list[Decoded]],
        encoder_output: np.ndarray,
        options: TranscribeOptions,
    ) -> None:
        """faster-whisper's fallback: each temperature in turn, for the items the previous one failed."""
        for temperature in options.temperatures[1:]:
            retry = [i for i, d in enumerate(decoded) if self.needs_fallback(d, options)]
            if not retry:
                break
            self.stats.count_fallback(len(retry))
            with self.stats.timed("fallback"):
                sub = [batch[i] for i in retry]
                again = self.generate_items(sub, encoder_output[retry], options, temperature=temperature)
            if self.stats.tracing:
                self.stats.mark("fallback", temperature=temperature, items=len(retry),
                                tokens=max((len(d.tokens) for d in again), default=0))
            for i, result in zip(retry, again):
                attempts[i].append(result)
                decoded[i] = result

    def fallback_together(
        self,
        batch: list[Item],
        decoded: list[Decoded],
        attempts: list[list[Decoded]],
        encoder_output: np.ndarray,
        options: TranscribeOptions,
    ) -> None:
        """The same choice as _fallback_in_turn (an item keeps the first temperature that passes), with
        every temperature sampled at once, side by side on the GPU's workers. In turn, one item that
        fails five times holds its batch for five decodes; the GPU has room for all five together."""
        retry = [i for i, d in enumerate(decoded) if self.needs_fallback(d, options)]
        temperatures = options.temperatures[1:]
        if not retry or not temperatures:
            return
        sub, rows = [batch[i] for i in retry], encoder_output[retry]
        with self.stats.timed("fallback"):
            pending = [
                self.start_generate(sub, rows, options, temperature, asynchronous=True)
                for temperature in temperatures
            ]
            # Every decode is waited for, even after one failed (out of memory, say): the halved retry
            # must not start while the others still hold the GPU's workers and memory.
            rounds: list[list[Decoded]] = []
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
                if not self.needs_fallback(results[k], options):
                    break

    def encode(self, features: np.ndarray) -> np.ndarray:
        """The encoder's output as a host array. Detection, decoding, fallback retries and word
        alignment then take it or any subset of its rows without encoding again; on a GPU that
        costs one small copy each way (faster-whisper does the same with several GPUs)."""
        from faster_whisper.transcribe import get_ctranslate2_storage

        def encode(rows: np.ndarray) -> np.ndarray:
            output = self.whisper.model.encode(get_ctranslate2_storage(np.ascontiguousarray(rows)), to_cpu=True)
            # No copy (40 MB for 28 chunks of base, made under the GIL): the array's base is the storage,
            # which keeps the memory alive as long as the array or any view of it.
            return np.asarray(output)

        if self.encoder_full_rows is None:
            return encode(features)
        return encode_in_slices(encode, features, encoder_rows(features.shape[-1], self.encoder_full_rows))

    def needs_fallback(self, d: Decoded, options: TranscribeOptions) -> bool:
        if is_silence(d, options):
            return False
        return (
            d.runaway
            or d.compression_ratio > options.compression_ratio_threshold
            or d.avg_logprob < options.log_prob_threshold
        )

    def detect_languages(self, batch: list[Item], encoder_output: Any, options: TranscribeOptions) -> None:
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
        results = self.whisper.model.detect_language(storage_of(encoder_output))
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

    def generate_items(
        self, batch: list[Item], encoder_output: Any, options: TranscribeOptions, temperature: float
    ) -> list[Decoded]:
        return self.start_generate(batch, encoder_output, options, temperature)()

    def start_generate(
        self,
        batch: list[Item],
        encoder_output: np.ndarray,
        options: TranscribeOptions,
        temperature: float,
        asynchronous: bool = False,
    ) -> Callable[[], list[Decoded]]:
        """Start decoding `batch` from its encoder output; the returned call waits for the results.
        Asynchronous, the model's next free worker takes the batch and this thread goes on."""
        from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

        whisper = self.whisper
        tokenizers = [self.tokenizer(item.language or item.state.language or "en", options.task) for item in batch]
        first = tokenizers[0]
        previous = first.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else []
        prompts = [
            whisper.get_prompt(tok, previous_tokens=previous, without_timestamps=True, hotwords=options.hotwords)
            for tok in tokenizers
        ]
        sampling = temperature > 0
        # The storage shares the array's memory: both must live until an asynchronous decode ends.
        storage = storage_of(encoder_output)
        started = whisper.model.generate(
            storage,
            prompts,
            asynchronous=asynchronous,
            beam_size=1 if sampling else options.beam_size,
            num_hypotheses=5 if sampling else 1,
            sampling_topk=0 if sampling else 1,
            sampling_temperature=temperature if sampling else 1.0,
            max_length=min(whisper.max_length, len(prompts[0]) + max(token_allowance(item) for item in batch)),
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(first, [-1]),
            return_scores=True,
            return_no_speech_prob=True,
        )

        def finish(kept: tuple[Any, ...] = (storage, encoder_output)) -> list[Decoded]:
            results = [r.result() for r in started] if asynchronous else started
            decoded: list[Decoded] = []
            for item, tok, result in zip(batch, tokenizers, results):
                best = max(range(len(result.sequences_ids)), key=lambda i: result.scores[i])
                tokens = list(result.sequences_ids[best])
                avg_logprob = result.scores[best] * len(tokens) / (len(tokens) + 1)
                text = tok.decode(tokens)
                decoded.append(
                    Decoded(
                        tokens=tokens,
                        avg_logprob=float(avg_logprob),
                        no_speech_prob=float(result.no_speech_prob),
                        text=text,
                        compression_ratio=get_compression_ratio(text) if text.strip() else 0.0,
                        # More tokens than this chunk's speech can hold: a loop, however well it compresses.
                        runaway=len(tokens) >= token_allowance(item),
                    )
                )
            return decoded

        return finish


def is_silence(d: Decoded, options: TranscribeOptions) -> bool:
    return d.no_speech_prob > options.no_speech_threshold and d.avg_logprob < options.log_prob_threshold


_DEVICE_ERROR_MARKS = ("cuda", "cublas", "cudnn", "nccl", "device-side", "gpu", "out of memory")


def is_device_error(exc: BaseException) -> bool:
    """A failure of the GPU or its libraries rather than of the input (CTranslate2 raises RuntimeError
    with the CUDA library's message). Out of memory lands here only once a batch of one fails."""
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | OSError) and any(mark in text for mark in _DEVICE_ERROR_MARKS)


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


MAX_TOKENS_PER_S = 25
MIN_TOKEN_ALLOWANCE = 32


def best_attempt(attempts: list[Decoded], options: TranscribeOptions) -> Decoded:
    """When every temperature failed: the most confident attempt that is not a loop, else the most
    confident of all (faster-whisper's rule; the last, hottest sample is usually the worst)."""
    not_loops = [
        d for d in attempts if not d.runaway and d.compression_ratio <= options.compression_ratio_threshold
    ]
    return max(not_loops or attempts, key=lambda d: d.avg_logprob)


def token_allowance(item: Item) -> int:
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


def storage_of(array: np.ndarray) -> Any:
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))
