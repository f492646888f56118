"""Error rates by the rule of ../shared/realspeech-dev/README.md: one rate pooled over every file, and one a language.

Reference and hypothesis are treated alike: lowercased, punctuation (Unicode category P*) deleted, whitespace
collapsed. Chinese and Japanese are written without spaces between words, so their tokens are characters
(with all whitespace removed: a character error rate); every other language's tokens are words. Pooling sums
the edit distances and the reference lengths over the files, so a long file weighs more than a short one and a
language's characters and another's words add up into one "error rate".
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CHARACTER_LANGUAGES = ("zh", "ja")


def tokens(text: str, language: str | None) -> list[str]:
    kept = "".join(ch for ch in text.lower() if not unicodedata.category(ch).startswith("P"))
    return list("".join(kept.split())) if language in CHARACTER_LANGUAGES else kept.split()


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Levenshtein distance between two token lists: substitutions, deletions and insertions cost 1 each."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_token in enumerate(reference, start=1):
        current = [i]
        for j, hyp_token in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_token != hyp_token)))
        previous = current
    return previous[-1]


@dataclass
class Tally:
    errors: int = 0
    reference_tokens: int = 0
    files: int = 0

    def add(self, errors: int, reference_tokens: int) -> None:
        self.errors += errors
        self.reference_tokens += reference_tokens
        self.files += 1

    @property
    def rate(self) -> float | None:
        return self.errors / self.reference_tokens if self.reference_tokens else None


@dataclass
class Scores:
    pooled: Tally = field(default_factory=Tally)
    by_language: dict[str, Tally] = field(default_factory=dict)  # in order of first appearance


def score(files: Iterable[tuple[str, str, str]]) -> Scores:
    """`files`: (language, reference, hypothesis) for each file."""
    scores = Scores()
    for language, reference, hypothesis in files:
        ref, hyp = tokens(reference, language), tokens(hypothesis, language)
        errors = edit_distance(ref, hyp)
        scores.pooled.add(errors, len(ref))
        scores.by_language.setdefault(language, Tally()).add(errors, len(ref))
    return scores


def unit(language: str) -> str:
    return "CER" if language in CHARACTER_LANGUAGES else "WER"
