"""Real media with real faults, for the decoder's and the engine's tests: two espeak-ng sentences with a
known pause between them (so where the second is heard is known), damaged in the first, a recording cut
off before its FLAC header was finished, audio that starts after its video. Made with soundfile and the
ffmpeg CLI."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

RATE = 16000
FIRST = "The first sentence is about a quiet river in the morning light."
SECOND = "The second sentence tells of a red fox jumping over the fence."
PAUSE_S = 6.0


def ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


@dataclass(frozen=True)
class TwoSentences:
    samples: np.ndarray  # 16 kHz mono, as written
    second_start_s: float  # where the second sentence is heard
    second_end_s: float


def two_sentences(make_speech: Callable[..., Path]) -> TwoSentences:
    first, _ = soundfile.read(str(make_speech(FIRST, "en", rate=RATE)), dtype="float32")
    second, _ = soundfile.read(str(make_speech(SECOND, "en", rate=RATE)), dtype="float32")
    samples = np.concatenate([first, np.zeros(int(PAUSE_S * RATE), np.float32), second])
    spans = speech_spans(samples)
    assert len(spans) == 2, spans
    return TwoSentences(samples, *spans[1])


def speech_spans(samples: np.ndarray, rate: int = RATE) -> list[tuple[float, float]]:
    """(start_s, end_s) of each stretch louder than a whisper, 50 ms at a time; pauses under 0.5 s joined."""
    frame = rate // 20
    energy = np.square(samples[: len(samples) // frame * frame]).reshape(-1, frame).mean(axis=1)
    spans: list[list[int]] = []
    for i in np.flatnonzero(energy > 1e-4):
        if spans and i - spans[-1][1] <= 10:
            spans[-1][1] = int(i)
        else:
            spans.append([int(i), int(i)])
    return [(a * frame / rate, (b + 1) * frame / rate) for a, b in spans]


def write(samples: np.ndarray, path: Path) -> Path:
    """`samples` as `path`'s format: FLAC and WAV as 16 kHz mono (libsndfile reads them), the rest by ffmpeg."""
    if path.suffix in (".flac", ".wav"):
        soundfile.write(str(path), samples, RATE, subtype="PCM_16")
    else:
        wav = path.with_suffix(".source.wav")
        soundfile.write(str(wav), samples, RATE, subtype="PCM_16")
        ffmpeg("-i", wav, "-b:a", "64k", path)
    return path


def damaged(path: Path, from_s: float, to_s: float) -> Path:
    """A copy of `path` with its bytes between the packets at from_s and to_s replaced by random ones."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        positions = [(float(p.pts * p.time_base), p.pos) for p in container.demux(stream) if p.pts is not None]
    first = next(pos for t, pos in positions if t >= from_s)
    last = next(pos for t, pos in positions if t >= to_s)
    data = bytearray(path.read_bytes())
    data[first:last] = np.random.default_rng(7).integers(0, 256, last - first, dtype=np.uint8).tobytes()
    out = path.with_name(f"damaged{path.suffix}")
    out.write_bytes(bytes(data))
    return out


def unfinished_recording(samples: np.ndarray, path: Path) -> Path:
    """The FLAC a crash (kill -9) leaves while recording: written and flushed block by block as the
    recorder does, copied before it is closed, so its header never gets the length or the seek table."""
    from desktop.capture.recorder import FLUSH_INTERVAL_S, open_flac

    writing = path.with_name("recording-in-progress.flac")
    writer = open_flac(writing, RATE)
    block = RATE // 10
    for i in range(0, len(samples), block):
        writer.write(samples[i : i + block])
        if (i // block) % int(FLUSH_INTERVAL_S * 10) == 0:
            writer.flush()
    writer.flush()
    shutil.copy(writing, path)
    writer.close()
    return path


def delayed_audio_video(samples: np.ndarray, path: Path, delay_s: float) -> Path:
    """A video from 0 s whose audio track starts `delay_s` later (its first packet's time)."""
    wav = path.with_suffix(".source.wav")
    soundfile.write(str(wav), samples, RATE, subtype="PCM_16")
    video_s = delay_s + len(samples) / RATE + 1
    ffmpeg("-f", "lavfi", "-i", f"color=c=black:s=64x64:r=10:d={video_s}", "-itsoffset", str(delay_s), "-i", wav,
           "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "aac", path)
    return path
