"""Find and replace across one transcript: plain text or a regular expression, optionally case-sensitive
and whole-word. Positions are character offsets into a segment's shown text (its text without the leading
space Whisper puts there), which is what the editor displays and selects."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from desktop.core.segment import Segment
from desktop.core.transcript import Transcript


class SearchError(ValueError):
    """The search cannot run (an invalid regular expression); the message is for the user."""


@dataclass(frozen=True)
class SearchOptions:
    pattern: str
    case_sensitive: bool = False
    whole_word: bool = False
    regex: bool = False

    def compile(self) -> re.Pattern[str]:
        if not self.pattern:
            raise SearchError("Type something to find.")
        body = self.pattern if self.regex else re.escape(self.pattern)
        if self.whole_word:
            # \b fails next to punctuation ("e.g."), so a word is "not touching a word character" instead.
            body = rf"(?<!\w)(?:{body})(?!\w)"
        try:
            return re.compile(body, 0 if self.case_sensitive else re.IGNORECASE)
        except re.error as exc:
            raise SearchError(f"Invalid regular expression: {exc}.") from exc


@dataclass(frozen=True)
class Match:
    row: int
    start: int  # character offsets in the segment's shown text
    end: int


def shown_text(segment: Segment) -> str:
    return segment.text.strip()


def find_all(segments: Sequence[Segment], options: SearchOptions) -> list[Match]:
    pattern = options.compile()
    matches: list[Match] = []
    for row, segment in enumerate(segments):
        for found in pattern.finditer(shown_text(segment)):
            if found.end() > found.start():  # an empty match (e.g. "a*") is nothing to show or replace
                matches.append(Match(row, found.start(), found.end()))
    return matches


def find_next(
    segments: Sequence[Segment],
    options: SearchOptions,
    row: int,
    char: int,
    backwards: bool = False,
) -> Match | None:
    """The first match after (row, char), or the last one before it when `backwards`; wraps around."""
    matches = find_all(segments, options)
    if not matches:
        return None
    if backwards:
        before = [m for m in matches if (m.row, m.start) < (row, char)]
        return before[-1] if before else matches[-1]
    after = [m for m in matches if (m.row, m.start) >= (row, char)]
    return after[0] if after else matches[0]


def replaced_text(segment: Segment, options: SearchOptions, replacement: str, match: Match | None = None) -> str:
    """The segment's text with every match (or only `match`) replaced, its leading space kept."""
    pattern = options.compile()
    shown = shown_text(segment)
    lead = segment.text[: len(segment.text) - len(segment.text.lstrip())]

    def substitute(found: re.Match[str]) -> str:
        if found.end() == found.start():
            return found.group(0)
        if match is not None and (found.start(), found.end()) != (match.start, match.end):
            return found.group(0)
        try:
            return found.expand(replacement) if options.regex else replacement
        except (re.error, IndexError) as exc:
            raise SearchError(f"Invalid replacement: {exc}.") from exc

    return lead + pattern.sub(substitute, shown)


def replace_one(transcript: Transcript, options: SearchOptions, replacement: str, match: Match) -> None:
    """Replace one match (one undoable edit)."""
    segment = transcript[match.row]
    transcript.set_text(match.row, replaced_text(segment, options, replacement, match))


def replace_all(transcript: Transcript, options: SearchOptions, replacement: str) -> int:
    """Replace every match in the transcript as ONE undoable edit; returns how many were replaced."""
    matches = find_all(transcript.segments, options)
    if not matches:
        return 0
    rows = sorted({m.row for m in matches})
    first, last = rows[0], rows[-1]
    new: list[Segment] = []
    for row in range(first, last + 1):
        segment = transcript[row]
        if row in rows:
            # Changed text no longer matches the word timings, as with any text edit.
            segment = dataclasses.replace(segment, text=replaced_text(segment, options, replacement), words=())
        new.append(segment)
    noun = "match" if len(matches) == 1 else "matches"
    transcript.replace_range(first, last - first + 1, new, f"Replace {len(matches)} {noun}")
    return len(matches)
