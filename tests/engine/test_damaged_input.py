"""Faulty input through the engine on the real model: partial transcripts in the file's own time, cues
within the file, and notices (JobFinished.notices) that say what a person should know."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import soundfile

from desktop.engine.alignment import to_segments
from desktop.engine.decoding import Decoded
from desktop.engine.engine import Engine
from desktop.engine.events import (
    EngineJob,
    JobFailed,
    JobFinished,
    SegmentsDecoded,
    TranscribeOptions,
)
from desktop.engine.prepare import Chunk
from desktop.engine.scheduler import Item, JobState, Prepared
from tests.damaged_media import (
    damaged,
    delayed_audio_video,
    speech_spans,
    two_sentences,
    unfinished_recording,
    write,
)

pytestmark = pytest.mark.model


def run(model, jobs, options=None):
    return list(Engine(model).run(jobs, options or TranscribeOptions(language="en"), threading.Event()))


def segments_of(events, job_id):
    return [s for e in events if isinstance(e, SegmentsDecoded) and e.job_id == job_id for s in e.segments]


def finished(events, job_id) -> JobFinished:
    ends = [e for e in events if isinstance(e, JobFinished | JobFailed) and e.job_id == job_id]
    assert len(ends) == 1 and isinstance(ends[0], JobFinished), ends
    return ends[0]


def test_damaged_and_unfinished_files_give_partial_transcripts_in_their_time(loaded_model, make_speech, tmp_path):
    """A recording cut off by a crash, and damage in a 16 kHz FLAC and an MP3: each is transcribed as far as
    it can be read, the second sentence's cue ends where it is heard (not earlier by the damaged stretch),
    and the damage is told."""
    speech = two_sentences(make_speech)
    (tmp_path / "flac").mkdir()
    (tmp_path / "mp3").mkdir()
    files = {
        0: unfinished_recording(speech.samples, tmp_path / "recording.flac"),
        1: damaged(write(speech.samples, tmp_path / "flac" / "clean.flac"), 0.8, 2.6),
        2: damaged(write(speech.samples, tmp_path / "mp3" / "clean.mp3"), 0.8, 2.6),
    }
    events = run(loaded_model, [EngineJob(job_id, path) for job_id, path in files.items()])
    for job_id in files:
        end = finished(events, job_id)
        segments = segments_of(events, job_id)
        last = next(s for s in segments if "fence" in s.text.lower())
        assert last.end_s == pytest.approx(speech.second_end_s, abs=0.5), (job_id, segments)
        assert last.start_s > speech.second_start_s - 1.0, (job_id, segments)
        if job_id == 0:
            assert end.notices == ()
            assert "river" in " ".join(s.text for s in segments).lower()  # the first sentence too
        else:
            assert len(end.notices) == 1 and "could not be read" in end.notices[0], end.notices


def test_cues_follow_the_videos_timeline(loaded_model, make_speech, tmp_path):
    """Audio that starts 4.94 s into its video is heard at 4.94 s: its cues are there, not 4.94 s early."""
    speech = two_sentences(make_speech)
    first = speech.samples[: int((speech.second_start_s - 1.0) * 16000)]
    spoken_s = speech_spans(first)[0]
    path = delayed_audio_video(first, tmp_path / "late.mp4", 4.94)
    events = run(loaded_model, [EngineJob(0, path)])
    segments = segments_of(events, 0)
    assert segments and "river" in " ".join(s.text for s in segments).lower()
    assert segments[0].start_s == pytest.approx(4.94 + spoken_s[0], abs=0.5)
    assert segments[-1].end_s == pytest.approx(4.94 + spoken_s[1], abs=0.5)


def test_no_speech_is_told_not_a_silent_empty_transcript(loaded_model, tmp_path):
    """Noise, a blip, silence and a WAV header followed by random bytes: done, with "no speech found" (or,
    for the garbage, a failure or whatever text the model heard), never an empty Done without a word. A
    resumed job says nothing of the part it did not see."""
    rng = np.random.default_rng(0)
    noise = tmp_path / "noise.wav"
    soundfile.write(str(noise), rng.normal(0, 0.1, 16000 * 3).astype(np.float32), 16000)
    blip = tmp_path / "blip.wav"
    soundfile.write(str(blip), 0.5 * np.sin(np.arange(4000) / 16000 * 2 * np.pi * 440).astype(np.float32), 16000)
    silence = tmp_path / "silence.flac"
    soundfile.write(str(silence), np.zeros(16000 * 2, np.float32), 16000)
    garbage = tmp_path / "garbage.wav"
    soundfile.write(str(garbage), np.zeros(16000 * 4, np.float32), 16000, subtype="PCM_16")
    data = bytearray(garbage.read_bytes())
    data[44:] = rng.bytes(len(data) - 44)  # the header stays intact
    garbage.write_bytes(bytes(data))
    jobs = [EngineJob(0, noise), EngineJob(1, blip), EngineJob(2, silence), EngineJob(3, garbage),
            EngineJob(4, Path("memory"), audio=np.zeros(16000 * 3, np.float32), start_at_s=1.0)]
    events = run(loaded_model, jobs)
    for job_id in (0, 1, 2):
        assert finished(events, job_id).notices == ("no speech found",)
        assert segments_of(events, job_id) == []
    ends = [e for e in events if e.job_id == 3 and isinstance(e, JobFinished | JobFailed)]
    assert isinstance(ends[0], JobFailed) or segments_of(events, 3) or ends[0].notices == ("no speech found",)
    assert finished(events, 4).notices == ()


def test_no_cue_ends_after_the_file(loaded_model):
    """A word the model times at the very end (a hallucination on the last frames) still gets a cue of
    its own, ending at the file's end, not 20 ms after it."""
    duration_s = 2.425
    from faster_whisper.vad import SpeechTimestampsMap

    prepared = Prepared(
        duration_s=duration_s,
        chunks=[Chunk(0, np.zeros((80, 243), np.float32), 0.0, duration_s, duration_s)],
        timeline=SpeechTimestampsMap([{"start": 0, "end": int(duration_s * 16000)}], 16000),
        start_at_s=0.0,
    )
    state = JobState(EngineJob(0, Path("x.wav")), Future(), prepared=prepared)
    words = [
        {"word": " Hello", "start": 0.5, "end": 1.0, "probability": 0.9},
        {"word": " world.", "start": 1.0, "end": 1.5, "probability": 0.9},
        {"word": " Thanks.", "start": duration_s, "end": duration_s, "probability": 0.2},
    ]
    result = Decoded(tokens=[1, 2, 3], avg_logprob=-0.3, no_speech_prob=0.1, text="Hello world. Thanks.",
                      words=words)
    segments = to_segments(Item(state, prepared.chunks[0]), result, TranscribeOptions(word_timestamps=True))
    assert [s.text for s in segments] == ["Hello world.", "Thanks."]
    assert all(s.start_s < s.end_s <= duration_s for s in segments), segments
    assert all(w.end_s <= duration_s for s in segments for w in s.words)
    assert segments[0].end_s <= segments[1].start_s

