"""Whether a re-run of a range is better than the text it would replace.

A re-run is asked for where the text looks wrong, but the model can do worse the second time: a correct
sentence flagged only because the speaker repeated a word came back as a few 20 ms segments of that word
over and over. The new text replaces the old only when it passes the same checks that flag segments
(desktop.core.flags), its segments are long enough to hold their words, and the decoder was at least about
as sure of it as of the old text. Otherwise the old text stays, and the reason says why.
No Qt here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from desktop.core.flags import segment_flags
from desktop.core.segment import Segment

# Nobody says more than about 7 words a second; 25 words a second (0.04 s each) is no speech at all.
MIN_SECONDS_PER_WORD = 0.04
# A segment of several words shorter than this is a decoder artefact whatever its word count.
MIN_SEGMENT_S = 0.1
# A range decoded on its own has less context than it had in the full pass, so the model is less sure of
# the very same words: on the base model, re-runs that gave back the full pass's text lost 0.02-0.3 in
# average log-probability (once 0.67, on a three-word greeting), while garbled ones ("A key var on the
# kitchen table") lost 0.4-0.9. Within this margin the re-run counts as just as confident.
LOGPROB_TOLERANCE = 0.3

_WHY_FLAGGED = {
    "loop": "it repeats itself",
    "compression": "it is too repetitive to be ordinary speech",
    "no-speech": "the model thought there was probably no speech",
}


@dataclass(frozen=True)
class RerunDecision:
    accept: bool
    reason: str = ""  # why the old text stays, as a phrase ("it repeats itself"); empty when accepted

    @property
    def message(self) -> str:
        """The sentence for the user when the old text stays."""
        if self.accept:
            return ""
        if self.reason == NO_SPEECH_FOUND:
            return "The re-run found no speech there; the old text stays."
        return f"The re-run's text was no better ({self.reason}); the old text stays."


NO_SPEECH_FOUND = "it found no speech there"


def _word_count(text: str) -> int:
    return len(text.split())


def mean_logprob(segments: Sequence[Segment]) -> float | None:
    """The segments' average log-probability, each weighted by its words (avg_logprob is per token), or None
    when none has one (hand-made segments)."""
    pairs = [(s.avg_logprob, max(1, _word_count(s.text))) for s in segments if s.avg_logprob is not None]
    if not pairs:
        return None
    return sum(p * w for p, w in pairs) / sum(w for _p, w in pairs)


def degenerate(segment: Segment) -> bool:
    """Too short to hold its words: a decoder artefact, not speech."""
    words = _word_count(segment.text)
    if words == 0:
        return False
    duration_s = segment.end_s - segment.start_s
    return duration_s < MIN_SECONDS_PER_WORD * words or (words >= 2 and duration_s < MIN_SEGMENT_S)


def choose_rerun(old_segments: Sequence[Segment], new_segments: Sequence[Segment]) -> RerunDecision:
    """Whether `new_segments` (the re-run, as it would be inserted) should replace `old_segments` (what lies in
    that range now)."""
    new = [s for s in new_segments if s.text.strip()]
    if not new:
        # Only text the decoder itself doubted was speech goes away on a re-run that hears nothing.
        old_flags = segment_flags(old_segments)
        if all(any(f.kind == "no-speech" for f in flags) for flags in old_flags):
            return RerunDecision(True)
        return RerunDecision(False, NO_SPEECH_FOUND)
    for flags in segment_flags(new):
        if flags:
            return RerunDecision(False, _WHY_FLAGGED.get(flags[0].kind, flags[0].reason))
    if any(degenerate(s) for s in new):
        return RerunDecision(False, "its segments are too short to hold their words")
    old_logprob, new_logprob = mean_logprob(old_segments), mean_logprob(new)
    if old_logprob is not None and new_logprob is not None and new_logprob < old_logprob - LOGPROB_TOLERANCE:
        return RerunDecision(
            False, f"the model was less sure of it: average log-probability {new_logprob:.2f} against {old_logprob:.2f}"
        )
    return RerunDecision(True)
