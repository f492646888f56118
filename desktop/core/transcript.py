"""A transcript and the edit rules the editor relies on: times stay ordered, nothing overlaps,
every edit can be undone. No Qt here; the UI only calls these operations."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from desktop.core.rerun import choose_rerun
from desktop.core.segment import Segment, TranscriptInfo, Word

# Times are kept to the millisecond; comparisons allow for float noise below that.
TIME_EPSILON_S = 0.0005
# The shortest segment a nudge may leave: a segment must keep some time to be played and read.
MIN_SEGMENT_S = 0.05
# Streamed segments shorter than this after fitting them behind the previous one are stretched to it.
MIN_STREAMED_SEGMENT_S = 0.01


def fit_after(previous_end_s: float, segments: Iterable[Segment]) -> list[Segment]:
    """Segments as a transcript can take them: none starts before the previous one ends, none is empty
    in time. The engine's segments are ordered, but chunk edges can overlap by a few milliseconds, and
    Transcript refuses overlaps; losing a segment's text over that would be worse."""
    fitted: list[Segment] = []
    for segment in segments:
        start_s = round(max(segment.start_s, previous_end_s), 3)
        end_s = round(max(segment.end_s, start_s + MIN_STREAMED_SEGMENT_S), 3)
        if (start_s, end_s) != (segment.start_s, segment.end_s):
            segment = replace(segment, start_s=start_s, end_s=end_s)
        fitted.append(segment)
        previous_end_s = end_s
    return fitted


@dataclass(frozen=True)
class RerunMerge:
    """What merging a range re-run did: `replaced` segments from index `first` gave way to `inserted` new
    ones, or the old text stayed because the re-run was no better (`refused`, a sentence for the user)."""

    first: int
    replaced: int
    inserted: int
    refused: str = ""

    @property
    def changed(self) -> bool:
        return not self.refused and bool(self.replaced or self.inserted)


class EditError(ValueError):
    """An edit that would break the transcript's rules; the message is shown to the user."""


@dataclass(frozen=True)
class _Edit:
    """One undoable change: the slice [index, index+len(old)) replaced by new."""

    description: str
    index: int
    old: tuple[Segment, ...]
    new: tuple[Segment, ...]
    # Consecutive edits with the same key (typing in one cell) coalesce into one undo step.
    merge_key: object = None


class Transcript:
    """An ordered list of non-overlapping segments with an undo history."""

    def __init__(self, info: TranscriptInfo, segments: Iterable[Segment] = ()) -> None:
        self.info = info
        self._segments: list[Segment] = []
        self._undo: list[_Edit] = []
        self._redo: list[_Edit] = []
        self._listeners: list[Callable[[int, int, int], None]] = []
        # Counts every change (edits, undo, redo, streaming), so callers can tell whether a call changed anything.
        self.revision = 0
        for segment in segments:
            self._check_alone(segment)
            self._segments.append(segment)
        self._check_order(0, len(self._segments))

    # -- reading -----------------------------------------------------------------------------
    @property
    def segments(self) -> Sequence[Segment]:
        return tuple(self._segments)

    def __len__(self) -> int:
        return len(self._segments)

    def __getitem__(self, index: int) -> Segment:
        return self._segments[index]

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self._segments if s.text.strip())

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_depth(self) -> int:
        """How many edits undo can take back; a coalesced edit does not add one."""
        return len(self._undo)

    def undo_description(self) -> str:
        return self._undo[-1].description if self._undo else ""

    def redo_description(self) -> str:
        return self._redo[-1].description if self._redo else ""

    def subscribe(self, listener: Callable[[int, int, int], None]) -> None:
        """listener(index, removed_count, inserted_count) is called after every change."""
        self._listeners.append(listener)

    # -- streaming (not undoable: the engine's output is the starting point) -------------------
    def append(self, segments: Iterable[Segment]) -> None:
        new = list(segments)
        if not new:
            return
        for segment in new:
            self._check_alone(segment)
        start = len(self._segments)
        self._segments.extend(new)
        try:
            self._check_order(max(start - 1, 0), len(self._segments))
        except EditError:
            del self._segments[start:]
            raise
        self._notify(start, 0, len(new))

    def replace_all(self, segments: Iterable[Segment]) -> None:
        """Swap the whole content (a re-run), clearing the history."""
        new = list(segments)
        for segment in new:
            self._check_alone(segment)
        old_count = len(self._segments)
        saved = self._segments
        self._segments = new
        try:
            self._check_order(0, len(new))
        except EditError:
            self._segments = saved
            raise
        self._undo.clear()
        self._redo.clear()
        self._notify(0, old_count, len(new))

    # -- edits (undoable) ----------------------------------------------------------------------
    def set_text(self, index: int, text: str, merge_key: object = None) -> None:
        """With a `merge_key`, a text edit right after another with the same key and index (typing that
        is saved as it goes) joins it: one undo takes the whole typing back."""
        old = self._segments[self._index(index)]
        if old.text == text:
            return
        # Edited text no longer matches the word timings, so the words are dropped.
        self._apply(_Edit("Edit text", index, (old,), (replace(old, text=text, words=()),), merge_key))

    def nudge(self, index: int, edge: str, delta_s: float) -> float:
        """Move the start or end (`edge`) of segment `index` by `delta_s`, clamped so it neither overlaps
        a neighbour, nor starts before 0:00, nor leaves the segment shorter than MIN_SEGMENT_S. Returns
        the new time; raises EditError when the edge cannot move that way at all."""
        if edge not in ("start", "end"):
            raise ValueError(f"edge must be 'start' or 'end', not {edge!r}")
        old = self._segments[self._index(index)]
        if edge == "start":
            floor_s = self._segments[index - 1].end_s if index > 0 else 0.0
            ceiling_s = old.end_s - MIN_SEGMENT_S
            wanted_s = old.start_s + delta_s
        else:
            floor_s = old.start_s + MIN_SEGMENT_S
            ceiling_s = self._segments[index + 1].start_s if index + 1 < len(self._segments) else float("inf")
            wanted_s = old.end_s + delta_s
        moved_s = round(min(max(wanted_s, floor_s), ceiling_s), 3)
        current_s = old.start_s if edge == "start" else old.end_s
        if abs(moved_s - current_s) < TIME_EPSILON_S:
            if delta_s < 0:
                why = "it would overlap the previous segment" if edge == "start" and index > 0 else (
                    "it cannot start before 0:00" if edge == "start" else "the segment would become too short")
            else:
                why = "the segment would become too short" if edge == "start" else "it would overlap the next segment"
            raise EditError(f"Cannot move the {edge} of segment {index + 1} further: {why}.")
        if edge == "start":
            self.set_times(index, moved_s, old.end_s)
        else:
            self.set_times(index, old.start_s, moved_s)
        return moved_s

    def set_times(self, index: int, start_s: float, end_s: float) -> None:
        old = self._segments[self._index(index)]
        start_s, end_s = round(start_s, 3), round(end_s, 3)
        if (old.start_s, old.end_s) == (start_s, end_s):
            return
        words = tuple(w for w in old.words if w.start_s >= start_s - TIME_EPSILON_S and w.end_s <= end_s + TIME_EPSILON_S)
        self._apply(_Edit("Change times", index, (old,), (replace(old, start_s=start_s, end_s=end_s, words=words),)))

    def split(self, index: int, at_char: int, at_s: float | None = None) -> None:
        """Split segment `index` at character `at_char`; the time cut is `at_s`, or the word
        boundary nearest to the cut, or the time proportional to the text."""
        old = self._segments[self._index(index)]
        text = old.text
        if not 0 < at_char < len(text):
            raise EditError("Put the cursor inside the text to split it.")
        left_text, right_text = text[:at_char].rstrip(), text[at_char:].lstrip()
        if not left_text.strip() or not right_text.strip():
            raise EditError("Both parts of a split need some text.")
        if at_s is None:
            at_s = _word_boundary_s(old.words, at_char)
        if at_s is None:
            at_s = old.start_s + old.duration_s * (len(text[:at_char]) / len(text))
        at_s = round(at_s, 3)
        if not old.start_s + TIME_EPSILON_S < at_s < old.end_s - TIME_EPSILON_S:
            raise EditError("The split time must fall inside the segment.")
        left = replace(old, end_s=at_s, text=left_text, words=tuple(w for w in old.words if w.end_s <= at_s + TIME_EPSILON_S))
        right = replace(old, start_s=at_s, text=" " + right_text if text.startswith(" ") else right_text,
                        words=tuple(w for w in old.words if w.start_s >= at_s - TIME_EPSILON_S))
        self._apply(_Edit("Split segment", index, (old,), (left, right)))

    def merge_with_next(self, index: int) -> None:
        if not 0 <= index < len(self._segments) - 1:
            raise EditError("There is no next segment to merge with.")
        first, second = self._segments[index], self._segments[index + 1]
        joined = first.text.rstrip() + " " + second.text.strip()
        merged = Segment(first.start_s, second.end_s, joined, first.words + second.words)
        self._apply(_Edit("Merge segments", index, (first, second), (merged,)))

    def insert(self, index: int, segment: Segment) -> None:
        self._check_alone(segment)
        self._apply(_Edit("Insert segment", self._index(index, allow_end=True), (), (segment,)))

    def delete(self, index: int) -> None:
        self._apply(_Edit("Delete segment", index, (self._segments[self._index(index)],), ()))

    def replace_range(self, index: int, count: int, segments: Sequence[Segment], description: str) -> None:
        self._index(index, allow_end=True)
        if not 0 <= count <= len(self._segments) - index:
            raise IndexError(f"cannot replace {count} segments from index {index}")
        for segment in segments:
            self._check_alone(segment)
        old = tuple(self._segments[index : index + count])
        self._apply(_Edit(description, index, old, tuple(segments)))

    def merge_rerun(self, start_s: float, end_s: float, segments: Sequence[Segment],
                    description: str = "Re-run") -> RerunMerge:
        """Put a re-run of start_s..end_s in place of the segments lying in that time, as one undoable edit,
        when `choose_rerun` finds it better. The new segments are fitted behind the segment before the range
        and cut short of the one after it (those that would start there are dropped)."""
        old = self._segments
        inside = [i for i, s in enumerate(old) if s.start_s >= start_s - 0.001 and s.end_s <= end_s + 0.001]
        first = inside[0] if inside else sum(1 for s in old if s.end_s <= start_s)
        count = inside[-1] - first + 1 if inside else 0
        previous_end_s = old[first - 1].end_s if first > 0 else 0.0
        next_start_s = old[first + count].start_s if first + count < len(old) else float("inf")
        fitted = [replace(s, end_s=min(s.end_s, next_start_s)) for s in fit_after(previous_end_s, segments)
                  if s.start_s < next_start_s - MIN_STREAMED_SEGMENT_S]
        if not fitted and not count:
            return RerunMerge(first, 0, 0)
        decision = choose_rerun(old[first : first + count], fitted)
        if not decision.accept:
            return RerunMerge(first, 0, 0, refused=decision.message)
        self.replace_range(first, count, fitted, description)
        return RerunMerge(first, count, len(fitted))

    def undo(self) -> None:
        if not self._undo:
            return
        edit = self._undo.pop()
        self._swap(edit.index, len(edit.new), edit.old)
        self._redo.append(edit)

    def redo(self) -> None:
        if not self._redo:
            return
        edit = self._redo.pop()
        self._swap(edit.index, len(edit.old), edit.new)
        self._undo.append(edit)

    # -- internals -----------------------------------------------------------------------------
    def _index(self, index: int, allow_end: bool = False) -> int:
        # Edits record the index for undo, so it must be a real position: a negative one would
        # slice the wrong range, and one past the end would make undo a silent no-op.
        if not 0 <= index < len(self._segments) + allow_end:
            raise IndexError(f"segment index {index} out of range")
        return index

    def _apply(self, edit: _Edit) -> None:
        for segment in edit.new:
            self._check_alone(segment)
        saved = list(self._segments)
        self._segments[edit.index : edit.index + len(edit.old)] = edit.new
        try:
            self._check_order(edit.index - 1, edit.index + len(edit.new) + 1)
        except EditError:
            self._segments = saved
            raise
        last = self._undo[-1] if self._undo else None
        if (
            edit.merge_key is not None
            and last is not None
            and not self._redo
            and last.merge_key == edit.merge_key
            and (last.index, len(last.new), len(edit.old)) == (edit.index, 1, 1)
        ):
            self._undo[-1] = replace(last, new=edit.new)
        else:
            self._undo.append(edit)
        self._redo.clear()
        self._notify(edit.index, len(edit.old), len(edit.new))

    def _swap(self, index: int, count: int, segments: tuple[Segment, ...]) -> None:
        self._segments[index : index + count] = segments
        self._notify(index, count, len(segments))

    def _notify(self, index: int, removed: int, inserted: int) -> None:
        self.revision += 1
        for listener in self._listeners:
            listener(index, removed, inserted)

    @staticmethod
    def _check_alone(segment: Segment) -> None:
        if segment.start_s < 0:
            raise EditError("A segment cannot start before 0:00.")
        if segment.end_s <= segment.start_s + TIME_EPSILON_S:
            raise EditError("A segment must end after it starts.")

    def _check_order(self, first: int, stop: int) -> None:
        first = max(first, 0)
        stop = min(stop, len(self._segments))
        for i in range(max(first, 1), stop):
            if self._segments[i].start_s < self._segments[i - 1].end_s - TIME_EPSILON_S:
                raise EditError(
                    f"Segment {i + 1} would start before segment {i} ends "
                    f"({_fmt(self._segments[i].start_s)} < {_fmt(self._segments[i - 1].end_s)})."
                )


def _word_boundary_s(words: tuple[Word, ...], at_char: int) -> float | None:
    """The time between the two words whose boundary is nearest to character `at_char`, assuming
    (as faster-whisper guarantees) that the words' texts joined give the segment's text."""
    boundaries = []
    consumed = 0
    for before, after in pairwise(words):
        consumed += len(before.text)
        boundaries.append((abs(consumed - at_char), (before.end_s + after.start_s) / 2))
    return min(boundaries)[1] if boundaries else None


def _fmt(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:06.3f}"
