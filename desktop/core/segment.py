"""Timestamped text: the unit the engine yields, the editor edits and the exporters write."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Word:
    start_s: float
    end_s: float
    text: str
    probability: float


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...] = ()
    # Decoder statistics, kept so the editor can flag drift (None for hand-made segments).
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class TranscriptInfo:
    """What is known about a transcript besides its segments."""

    source: str
    language: str = ""
    language_probability: float = 0.0
    duration_s: float = 0.0
    model: str = ""
    extra: dict[str, str] = field(default_factory=dict)
