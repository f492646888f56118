"""The live draft of a recording: what to transcribe next while recording, and what the model said.

The recording's newest audio since the last cut is transcribed every few seconds. Cuts fall in silence
(found by VAD): everything before the cut is settled draft text; speech still going on at the end is
provisional and transcribed again, with more audio, next time. So the draft never splits a word, and each
piece of audio is transcribed about once. The full pass after the recording replaces the whole draft.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from desktop.core.segment import Segment
from desktop.core.transcript import fit_after

SAMPLE_RATE = 16_000
# A silence this long at the end of the audio means the speech before it is over.
END_SILENCE_S = 0.6
# Speech with no pause for this long is cut anyway (at its end), so the pending audio stays short.
MAX_PENDING_S = 25.0
# Transcribe only when at least this much new audio came in since the last request.
MIN_NEW_AUDIO_S = 1.0


@dataclass(frozen=True)
class DraftRequest:
    key: int  # which recording (the job id of its document)
    audio: np.ndarray  # 16 kHz mono float32, from offset_s to the newest sample
    offset_s: float  # where `audio` starts in the recording
    language: str | None = None  # once the first draft found it, later ones keep it


@dataclass(frozen=True)
class DraftResult:
    key: int
    offset_s: float
    cut_s: float  # in recording time: text before it is settled, audio before it is done with
    settled: tuple[Segment, ...]  # of the audio before the cut, in recording time
    provisional: tuple[Segment, ...] = ()  # of the audio after the cut (transcribed again next time)
    language: str | None = None
    error: str | None = None


def choose_cut_s(speech: Sequence[tuple[float, float]], duration_s: float,
                 end_silence_s: float = END_SILENCE_S, max_pending_s: float = MAX_PENDING_S) -> float:
    """Where to cut audio of `duration_s` with speech in `speech` ([(start_s, end_s)], ordered): the end
    when the speech is over (or there is none); else the middle of the pause before the last stretch of
    speech; else (one stretch, still going on) 0, unless it has gone on for max_pending_s."""
    if not speech or duration_s - speech[-1][1] >= end_silence_s:
        return duration_s
    last_start_s = speech[-1][0]
    previous_end_s = speech[-2][1] if len(speech) > 1 else 0.0
    if last_start_s > previous_end_s and (len(speech) > 1 or last_start_s >= end_silence_s):
        return (previous_end_s + last_start_s) / 2
    return duration_s if duration_s >= max_pending_s else 0.0


def to_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Linear resampling: enough for a draft (the full pass decodes the file properly)."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if sample_rate == SAMPLE_RATE or samples.size == 0:
        return samples
    count = int(round(samples.size * SAMPLE_RATE / sample_rate))
    positions = np.arange(count, dtype=np.float64) * (sample_rate / SAMPLE_RATE)
    return np.interp(positions, np.arange(samples.size), samples).astype(np.float32)


class LiveDraft:
    """Pending audio and draft text of one recording. Not thread-safe: one owner feeds and applies."""

    def __init__(self, key: int, min_new_audio_s: float = MIN_NEW_AUDIO_S) -> None:
        self.key = key
        self.min_new_audio_s = min_new_audio_s
        self._pending = np.zeros(0, dtype=np.float32)
        self._offset_s = 0.0  # recording time of the first pending sample
        self._requested_until_s = 0.0
        self._in_flight = False
        self.language: str | None = None
        self.settled: list[Segment] = []
        self.provisional: list[Segment] = []
        self.last_error: str | None = None

    @property
    def end_s(self) -> float:
        return self._offset_s + self._pending.size / SAMPLE_RATE

    @property
    def in_flight(self) -> bool:
        return self._in_flight

    def segments(self) -> tuple[Segment, ...]:
        return tuple(self.settled) + tuple(self.provisional)

    def add_audio(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
        audio = to_16k(samples, sample_rate)
        if audio.size:
            self._pending = np.concatenate([self._pending, audio])

    def request(self) -> DraftRequest | None:
        """The next request, or None while one is being transcribed or too little new audio came in."""
        if self._in_flight or self.end_s - self._requested_until_s < self.min_new_audio_s:
            return None
        self._in_flight = True
        self._requested_until_s = self.end_s
        return DraftRequest(self.key, self._pending.copy(), self._offset_s, self.language)

    def apply(self, result: DraftResult) -> bool:
        """Take a result in; True when the draft text changed."""
        if result.key != self.key:
            return False
        self._in_flight = False
        if result.error is not None:
            self.last_error = result.error
            return False
        self.language = self.language or result.language
        before = self.segments()
        cut_s = max(result.cut_s, self._offset_s)
        self.settled.extend(fit_after(self.settled[-1].end_s if self.settled else 0.0, result.settled))
        self.provisional = list(result.provisional)
        self.provisional = fit_after(self.settled[-1].end_s if self.settled else 0.0, self.provisional)
        drop = int(round((cut_s - self._offset_s) * SAMPLE_RATE))
        self._pending = self._pending[drop:]
        self._offset_s = cut_s
        return self.segments() != before


def speech_spans_s(audio: np.ndarray) -> list[tuple[float, float]]:
    """Speech in 16 kHz audio by Silero VAD (faster-whisper's), as [(start_s, end_s)]."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=300, speech_pad_ms=100)
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in get_speech_timestamps(audio, options)]


class DraftTranscriber:
    """Turns DraftRequests into DraftResults with a loaded model. The engine is made once per model and
    kept apart from the queue's engine, so a draft never waits for queued files to be taken."""

    def __init__(self, model: Any, options: Any) -> None:
        from desktop.engine.engine import Engine

        self.model = model
        self.options = options
        # On the CPU stage in this process, one batch at a time: a draft is a few seconds of audio.
        self._engine = Engine(model, prepare_workers=1, parallel_batches=1, prepare_in_processes=False)

    def transcribe(self, request: DraftRequest, cancel: threading.Event | None = None) -> DraftResult:
        from pathlib import Path

        from desktop.engine.events import EngineJob, JobFailed, JobStarted, SegmentsDecoded

        duration_s = request.audio.size / SAMPLE_RATE
        speech = speech_spans_s(request.audio)
        cut_s = choose_cut_s(speech, duration_s)
        cut = int(round(cut_s * SAMPLE_RATE))
        # Two jobs in one run (one batch): the settled audio, and the speech still going on after the cut.
        # Transcribed together, a chunk could span the cut and its text would be both settled and redone.
        pieces = {0: (request.audio[:cut], 0.0), 1: (request.audio[cut:], cut_s)}
        jobs = [EngineJob(i, Path("draft"), audio=audio) for i, (audio, _) in pieces.items()
                if any(end_s > start_s for start_s, end_s in _clip(speech, pieces[i][1], audio.size / SAMPLE_RATE))]
        options = self.options
        if request.language and options.language is None:
            options = replace(options, language=request.language)
        found: dict[int, list[Segment]] = {0: [], 1: []}
        language = request.language
        error = None
        if jobs:
            for event in self._engine.run(jobs, options, cancel or threading.Event()):
                match event:
                    case JobStarted():
                        language = language or event.language or None
                    case SegmentsDecoded():
                        found[event.job_id].extend(event.segments)
                    case JobFailed():
                        error = event.reason

        def shifted(job_id: int) -> tuple[Segment, ...]:
            offset_s = request.offset_s + pieces[job_id][1]
            return tuple(_shift(s, offset_s) for s in found[job_id])

        return DraftResult(request.key, request.offset_s, request.offset_s + cut_s, shifted(0), shifted(1),
                           language, error)


def _clip(speech: Sequence[tuple[float, float]], start_s: float, duration_s: float) -> list[tuple[float, float]]:
    return [(max(s, start_s), min(e, start_s + duration_s)) for s, e in speech]


def _shift(segment: Segment, offset_s: float) -> Segment:
    words = tuple(replace(w, start_s=round(w.start_s + offset_s, 3), end_s=round(w.end_s + offset_s, 3))
                  for w in segment.words)
    return replace(segment, start_s=round(segment.start_s + offset_s, 3),
                   end_s=round(segment.end_s + offset_s, 3), words=words)


def draft_options(language: str | None, task: str) -> Any:
    """Quick settings for drafts: greedy decoding, one fallback temperature."""
    from desktop.engine.events import TranscribeOptions

    return TranscribeOptions(language=language, task=task, beam_size=1, temperatures=(0.0, 0.6))
