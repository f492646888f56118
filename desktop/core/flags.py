"""Where the model was unsure or drifted, so the editor can point the user at it.

- Flags mark segments that look like the model looped or hallucinated: text that repeats itself (within
  a segment, or the same text as the segment before), text that compresses too well (Whisper's own test
  for loops: a gzip ratio above 2.4), or a decoder that thought there was probably no speech there.
- Uncertain words are words whose probability (word timestamps) is below a threshold.
No Qt here; the editor only shows what these functions find.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from desktop.core.segment import Segment, Word

# Whisper's thresholds (the same the engine's temperature fallback uses).
COMPRESSION_RATIO_THRESHOLD = 2.4
NO_SPEECH_THRESHOLD = 0.6
# The engine drops chunks with no-speech > 0.6 AND avg log probability < -1.0 as silence; what gets
# through with a high no-speech probability and a mediocre log probability is text the model barely
# believed in, which is where hallucinations ("Thanks for watching!") live.
NO_SPEECH_LOGPROB_THRESHOLD = -0.5
UNCERTAIN_WORD_PROBABILITY = 0.5
# A compression ratio needs some text to mean anything: short texts never compress well.
_MIN_CHARS_FOR_RATIO = 40

_TOKEN = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Flag:
    kind: str  # "loop", "compression" or "no-speech"
    reason: str  # a sentence for the tooltip


@dataclass(frozen=True)
class WordSpan:
    """A word of a segment and where it is in the segment's shown text (its text without the leading
    space), as character offsets."""

    start: int
    end: int
    word: Word


def text_compression_ratio(text: str) -> float:
    """len(text) / len(gzip(text)) in bytes, as Whisper computes it."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def repeated_phrase(text: str) -> tuple[str, int] | None:
    """The phrase a text repeats back to back and how many times, or None. One word must come 4 times in
    a row ("no no no" is speech), two words 3 times, a phrase of three or more words twice."""
    tokens = [t.lower() for t in _TOKEN.findall(text)]
    best: tuple[str, int] | None = None
    for size in range(1, min(12, len(tokens) // 2) + 1):
        needed = 4 if size == 1 else 3 if size == 2 else 2
        for start in range(len(tokens) - size * needed + 1):
            phrase = tokens[start : start + size]
            count = 1
            while tokens[start + count * size : start + (count + 1) * size] == phrase:
                count += 1
            if count >= needed and (best is None or count * size > best[1] * len(best[0].split())):
                best = (" ".join(phrase), count)
    return best


def _normalized(text: str) -> str:
    return " ".join(t.lower() for t in _TOKEN.findall(text))


def segment_flags(segments: Sequence[Segment]) -> list[tuple[Flag, ...]]:
    """The flags of every segment (an empty tuple for most)."""
    result: list[tuple[Flag, ...]] = []
    previous = ""
    for segment in segments:
        flags: list[Flag] = []
        text = segment.text.strip()
        repeat = repeated_phrase(text)
        normalized = _normalized(text)
        if repeat is not None:
            flags.append(Flag("loop", f"“{repeat[0]}” repeats {repeat[1]} times in a row: the model may have looped."))
        elif normalized and normalized == previous and len(normalized.split()) >= 2:
            flags.append(Flag("loop", "Same text as the segment before: the model may have looped."))
        ratio = text_compression_ratio(text)
        if len(text) >= _MIN_CHARS_FOR_RATIO and ratio > COMPRESSION_RATIO_THRESHOLD:
            flags.append(Flag("compression", f"The text compresses {ratio:.1f}× (above {COMPRESSION_RATIO_THRESHOLD}): "
                                             "it is too repetitive to be ordinary speech."))
        elif segment.compression_ratio is not None and segment.compression_ratio > COMPRESSION_RATIO_THRESHOLD:
            flags.append(Flag("compression", f"The decoder's output here compressed {segment.compression_ratio:.1f}× "
                                             f"(above {COMPRESSION_RATIO_THRESHOLD}) even after retries."))
        if (
            segment.no_speech_prob is not None
            and segment.avg_logprob is not None
            and segment.no_speech_prob > NO_SPEECH_THRESHOLD
            and segment.avg_logprob < NO_SPEECH_LOGPROB_THRESHOLD
        ):
            flags.append(Flag("no-speech", f"Probably no speech here (no-speech probability "
                                           f"{segment.no_speech_prob:.2f}): the text may be invented."))
        result.append(tuple(flags))
        previous = normalized
    return result


def flag_tooltip(flags: Sequence[Flag]) -> str:
    return "\n".join(f"⚠ {flag.reason}" for flag in flags)


def next_flagged(flags: Sequence[Sequence[Flag]], row: int, backwards: bool = False) -> int | None:
    """The next flagged row after `row` (before it when `backwards`), wrapping; None when none is."""
    count = len(flags)
    for step in range(1, count + 1):
        candidate = (row - step if backwards else row + step) % count
        if flags[candidate]:
            return candidate
    return None


def flagged_run(flags: Sequence[Sequence[Flag]], row: int) -> tuple[int, int] | None:
    """(first, last) rows of the run of consecutive flagged segments that contains `row`."""
    if not 0 <= row < len(flags) or not flags[row]:
        return None
    first = last = row
    while first > 0 and flags[first - 1]:
        first -= 1
    while last + 1 < len(flags) and flags[last + 1]:
        last += 1
    return first, last


def word_spans(segment: Segment) -> list[WordSpan]:
    """Each word located in the shown text. faster-whisper's words joined give the segment's text; a
    word that cannot be found (the text was edited) is left out rather than put in the wrong place."""
    shown = segment.text.strip()
    spans: list[WordSpan] = []
    cursor = 0
    for word in segment.words:
        needle = word.text.strip()
        if not needle:
            continue
        at = shown.find(needle, cursor)
        if at < 0:
            continue
        spans.append(WordSpan(at, at + len(needle), word))
        cursor = at + len(needle)
    return spans


def uncertain_words(segment: Segment, threshold: float = UNCERTAIN_WORD_PROBABILITY) -> list[WordSpan]:
    return [span for span in word_spans(segment) if span.word.probability < threshold]


def next_uncertain(
    segments: Sequence[Segment],
    row: int,
    char: int,
    threshold: float = UNCERTAIN_WORD_PROBABILITY,
    backwards: bool = False,
) -> tuple[int, WordSpan] | None:
    """The first uncertain word after position (row, char) (the last before it when `backwards`),
    wrapping around the transcript; None when there is none."""
    found = [(r, span) for r, segment in enumerate(segments) for span in uncertain_words(segment, threshold)]
    if not found:
        return None
    if backwards:
        before = [f for f in found if (f[0], f[1].start) < (row, char)]
        return before[-1] if before else found[-1]
    after = [f for f in found if (f[0], f[1].start) > (row, char)]
    return after[0] if after else found[0]
