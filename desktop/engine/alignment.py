"""Word timings by cross-attention alignment, and segments from them: subtitle-sized cues in the
file's original timeline, ordered and non-overlapping."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from desktop.core.segment import Segment, Word
from desktop.engine.decoding import Decoded, Tokenizers, is_silence, storage_of
from desktop.engine.events import TranscribeOptions
from desktop.engine.prepare import FRAMES_PER_CHUNK, Chunk
from desktop.engine.scheduler import Item

PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


class Aligner:
    """Fills decoded items' words (decoding.Align) on one loaded model."""

    def __init__(self, whisper: Any, tokenizers: Tokenizers) -> None:
        self.whisper = whisper
        self.tokenizers = tokenizers

    def __call__(self, batch: list[Item], decoded: list[Decoded], encoder_output: np.ndarray) -> None:
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
            tok = self.tokenizers.get(language, "transcribe")
            output = encoder_output if len(indices) == len(batch) else encoder_output[indices]
            text_tokens = [[t for t in decoded[i].tokens if t < tok.eot] for i in indices]
            window = 2 * output.shape[1]  # the encoder's frames (it halves them)
            alignments = whisper.find_alignment(
                tok, text_tokens, storage_of(output), [min(window, chunk_frames(batch[i].chunk)) for i in indices]
            )
            for i, alignment in zip(indices, alignments):
                tidy_alignment(alignment)
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


def to_segments(item: Item, result: Decoded, options: TranscribeOptions) -> list[Segment]:
    """Chunk-local words -> segments in the file's original timeline, ordered, non-overlapping."""
    if is_silence(result, options) or not result.text.strip():
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


def tidy_alignment(alignment: list[dict[str, Any]]) -> None:
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


def chunk_frames(chunk: Chunk) -> int:
    return min(FRAMES_PER_CHUNK, int(math.ceil(chunk.duration_s) * 100))
