"""Decoding every container the app accepts to 16 kHz mono float32, and clear reasons for bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from desktop.engine import audio
from desktop.engine.audio import AudioError, decode, is_supported, probe_duration_s

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg makes the test media")

TONE_S = 2.0


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    """A 2 s 440 Hz tone at 44.1 kHz stereo: every other format is made from it."""
    path = tmp_path_factory.mktemp("media") / "tone.wav"
    t = np.arange(int(44100 * TONE_S)) / 44100
    wave = 0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    soundfile.write(str(path), np.stack([wave, wave], axis=1), 44100)
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.mark.parametrize("ext", [".mp3", ".m4a", ".ogg", ".opus", ".flac", ".aiff", ".wav", ".webm", ".mkv"])
def test_audio_containers(tone, tmp_path, ext):
    out = tmp_path / f"tone{ext}"
    ffmpeg("-i", str(tone), str(out))
    samples = decode(out)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) / 16000 == pytest.approx(TONE_S, abs=0.08)  # codecs pad a few frames
    # Still a 440 Hz tone after resampling and mixing: the spectrum peaks there.
    spectrum = np.abs(np.fft.rfft(samples[:16000]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)
    assert probe_duration_s(out) == pytest.approx(TONE_S, abs=0.1)


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv", ".webm"])
def test_video_with_audio(tone, tmp_path, ext):
    out = tmp_path / f"clip{ext}"
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size=64x64:rate=10:duration={TONE_S}", "-i", str(tone), "-shortest",
           str(out))
    assert len(decode(out)) / 16000 == pytest.approx(TONE_S, abs=0.1)


def test_video_without_audio(tmp_path):
    out = tmp_path / "silent.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:duration=1", str(out))
    with pytest.raises(AudioError, match="no audio track"):
        decode(out)


def test_16k_mono_wav_is_read_without_resampling(tmp_path, monkeypatch):
    path = tmp_path / "native.wav"
    original = (np.random.default_rng(0).uniform(-0.5, 0.5, 16000)).astype(np.float32)
    soundfile.write(str(path), original, 16000, subtype="FLOAT")

    def no_ffmpeg(*_args, **_kwargs):
        raise AssertionError("a 16 kHz mono WAV must not go through the resampler")

    monkeypatch.setattr(audio, "_av_pieces", no_ffmpeg)
    assert np.array_equal(decode(path), original)


def test_bad_inputs_have_clear_reasons(tmp_path):
    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "text.mp3").write_text("this is not audio at all\n" * 50)
    (tmp_path / "folder.wav").mkdir()
    cases = {
        "zero.wav": "empty",
        "text.mp3": "not an audio or video file",
        "missing.wav": "not found",
        "folder.wav": "folder",
    }
    for name, reason in cases.items():
        with pytest.raises(AudioError, match=reason):
            decode(tmp_path / name)


def test_truncated_file_keeps_what_decodes(tone, tmp_path):
    flac = tmp_path / "full.flac"
    ffmpeg("-i", str(tone), str(flac))
    data = flac.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    samples = decode(cut)
    assert 0.3 * TONE_S < len(samples) / 16000 < 0.8 * TONE_S


def test_a_read_error_part_way_keeps_everything_decoded_before_it(tone, tmp_path, monkeypatch):
    """The resampler hands out whole seconds and holds the rest: an error that ends reading must not
    lose what it holds (a 2 s file cut at 1.5 s keeps 1.5 s, not 1 s; 0.5 s keeps 0.5 s, not an error)."""
    import av

    mp3 = tmp_path / "tone.mp3"
    ffmpeg("-i", str(tone), str(mp3))
    real_open = av.open

    class FailingPartWay:
        def __init__(self, container, after_s):
            self._container, self._after_s = container, after_s

        def __getattr__(self, name):
            return getattr(self._container, name)

        def __enter__(self):
            self._container.__enter__()
            return self

        def __exit__(self, *exc):
            return self._container.__exit__(*exc)

        def demux(self, stream):
            for packet in self._container.demux(stream):
                if packet.pts is not None and packet.pts * packet.time_base >= self._after_s:
                    raise av.error.FFmpegError(5, "Input/output error")
                yield packet

    for after_s in (1.5, 0.5):
        monkeypatch.setattr(av, "open", lambda *a, after_s=after_s, **k: FailingPartWay(real_open(*a, **k), after_s))
        seconds = len(decode(mp3)) / 16000
        assert after_s - 0.1 < seconds < after_s + 0.1, (after_s, seconds)
    monkeypatch.setattr(av, "open", lambda *a, **k: FailingPartWay(real_open(*a, **k), 0.0))
    with pytest.raises(AudioError, match="cannot decode the audio"):
        decode(mp3)


def test_supported_extensions():
    assert is_supported(Path("a.MP3")) and is_supported(Path("b.mkv"))
    assert not is_supported(Path("notes.txt")) and not is_supported(Path("image.png"))


# -- damaged and unfinished input: what can be decoded, in the file's own time ------------------------------
def joined(blocks) -> np.ndarray:
    return np.concatenate(list(blocks))


def test_an_unfinished_recording_is_read_to_its_last_frame(make_speech, tmp_path):
    """A recording cut off by a crash has a FLAC header that was never finished: libsndfile stops with
    "Internal psf_fseek() failed"; the decoder goes on with PyAV and keeps every written frame."""
    from tests.damaged_media import two_sentences, unfinished_recording

    speech = two_sentences(make_speech)
    path = unfinished_recording(speech.samples, tmp_path / "cut.flac")
    notices: list[str] = []
    samples = joined(audio.decode_blocks(path, notices=notices))
    # libFLAC holds back at most one 4096-sample frame that was never written.
    assert len(speech.samples) - 4096 <= len(samples) <= len(speech.samples)
    np.testing.assert_allclose(samples[:16000], speech.samples[:16000], atol=1e-4)
    assert notices == []


@pytest.mark.parametrize("ext", [".flac", ".mp3"])
def test_damaged_audio_keeps_what_follows_in_its_time(make_speech, tmp_path, ext):
    """Damage in the first sentence: the second is still decoded, where it is heard in the file (silence
    stands in for the damage rather than pulling everything after it earlier), and the damage is told."""
    from tests.damaged_media import damaged, speech_spans, two_sentences, write

    speech = two_sentences(make_speech)
    path = damaged(write(speech.samples, tmp_path / f"clean{ext}"), 0.8, 2.6)
    notices: list[str] = []
    samples = joined(audio.decode_blocks(path, notices=notices))
    start_s, end_s = speech_spans(samples)[-1]
    assert start_s == pytest.approx(speech.second_start_s, abs=0.3)
    assert end_s == pytest.approx(speech.second_end_s, abs=0.3)
    assert len(notices) == 1 and "could not be read" in notices[0], notices
    assert decode(path).shape == samples.shape  # decode() is decode_blocks() joined


def test_audio_that_starts_after_the_video_keeps_its_place(tone, tmp_path):
    """Times follow the container: audio whose first packet is 2.5 s into the video starts at 2.5 s."""
    from tests.damaged_media import delayed_audio_video, speech_spans

    samples = decode(tone)
    path = delayed_audio_video(samples, tmp_path / "late.mp4", 2.5)
    start_s, end_s = speech_spans(decode(path))[0]
    assert start_s == pytest.approx(2.5, abs=0.1)
    assert end_s == pytest.approx(2.5 + TONE_S, abs=0.1)


def test_a_pipe_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioError, match="not a regular file"):
        decode(fifo)


def test_a_second_audio_track_is_told_and_the_default_one_transcribed(tone, tmp_path):
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(int(16000 * TONE_S), np.float32), 16000)
    both = tmp_path / "two.mkv"
    ffmpeg("-i", str(silent), "-i", str(tone), "-map", "0:a", "-map", "1:a", "-c:a", "flac", str(both))
    notices: list[str] = []
    assert np.abs(decode(both, notices)).max() < 1e-3  # the first track: silence
    assert notices == ["the file has 2 audio tracks; the first was transcribed"]

    second_default = tmp_path / "second-default.mkv"
    ffmpeg("-i", str(silent), "-i", str(tone), "-map", "0:a", "-map", "1:a", "-c:a", "flac",
           "-disposition:a:0", "0", "-disposition:a:1", "default", str(second_default))
    notices = []
    assert np.abs(decode(second_default, notices)).max() > 0.4  # the tone
    assert notices == ["the file has 2 audio tracks; track 2 (the default) was transcribed"]


def test_a_stream_that_changes_its_rate_is_decoded_whole(make_speech, tmp_path):
    """Two MP3s joined byte for byte (44.1 kHz, then 22.05 kHz), as a stream cut together or a broadcast
    between programmes is: the resampler that served the first rate gives way to one for the second."""
    from tests.damaged_media import ffmpeg

    first, second = make_speech("The first part is here."), make_speech("And then the second part.")
    ffmpeg("-i", first, "-ar", "44100", "-write_xing", "0", tmp_path / "a.mp3")
    ffmpeg("-i", second, "-ar", "22050", "-write_xing", "0", tmp_path / "b.mp3")
    joined_mp3 = tmp_path / "joined.mp3"
    joined_mp3.write_bytes((tmp_path / "a.mp3").read_bytes() + (tmp_path / "b.mp3").read_bytes())
    expected_s = soundfile.info(str(first)).duration + soundfile.info(str(second)).duration
    assert len(decode(joined_mp3)) / 16000 == pytest.approx(expected_s, abs=0.15)


def _id3v2_tag(frame_id: bytes, payload: bytes) -> bytes:
    """An ID3v2.3 tag holding one frame (sizes: the tag's "syncsafe", 7 bits a byte; the frame's plain)."""
    frame = frame_id + len(payload).to_bytes(4, "big") + b"\x00\x00" + payload
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame


_DECODE_PEAK = """
import resource, sys
from desktop.engine import audio
audio.probe_duration_s(sys.argv[2])  # imports and first-call allocations, on a file without the tag
sum(len(b) for b in audio.decode_blocks(sys.argv[2]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
duration_s = audio.probe_duration_s(sys.argv[1])
samples = sum(len(b) for b in audio.decode_blocks(sys.argv[1]))
extra_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(duration_s, samples, extra_mb)
"""


def test_a_huge_id3_tag_costs_neither_memory_nor_time_to_skip(tmp_path):
    """A 4 s MP3 behind a 100 MB ID3v2 PRIV frame: ffmpeg turned the frame into a 400 MB metadata string
    (0.9 GB peak, half a minute); its audio now decodes in bounded memory."""
    clip = tmp_path / "clip.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=4", "-ar", "44100", "-b:a", "128k", str(clip))
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(_id3v2_tag(b"PRIV", b"owner\x00" + b"\x01" * (100 << 20)) + clip.read_bytes())
    assert audio.id3v2_tags_bytes(tagged) == tagged.stat().st_size - clip.stat().st_size + audio.id3v2_tags_bytes(clip)
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _DECODE_PEAK, str(tagged), str(clip)],
        capture_output=True, text=True, check=True, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
    ).stdout.split()
    duration_s, samples, extra_mb = float(out[0]), int(out[1]), float(out[2])
    assert abs(duration_s - 4.0) < 0.1
    assert abs(samples - 4 * audio.SAMPLE_RATE) < audio.SAMPLE_RATE // 10
    assert extra_mb < 300, f"decoding the tagged clip took {extra_mb:.0f} MB more than the plain one"
