"""`verbatim transcribe` as a user runs it: a real process, the real model, real files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import docx
import numpy as np
import pytest

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[2]


def verbatim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.environ["PYTHONPATH"], str(REPO)]))
    return subprocess.run([sys.executable, "-m", "desktop", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


SRT_BLOCK = re.compile(r"^(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)$", re.M)


def test_two_good_files_one_broken(tmp_path, make_speech, use_session_model):
    one = tmp_path / "one.wav"
    one.write_bytes(make_speech("Hello world. This is the first file of the test.", "en").read_bytes())
    zwei = tmp_path / "zwei.wav"
    zwei.write_bytes(make_speech("Guten Tag. Das ist ein Test der Spracherkennung auf Deutsch.", "de").read_bytes())
    broken = tmp_path / "broken.mp3"
    # Fixed bytes: about 1 in 150 random ones probe as a container with no audio track, another message.
    broken.write_bytes(np.random.default_rng(0).bytes(3000))

    result = verbatim("transcribe", "one.wav", "broken.mp3", "zwei.wav", "-f", "srt,vtt,txt,docx,json", "-o", "out",
                      cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("broken.mp3:")]
    assert len(failures) == 1 and "not an audio or video file" in failures[0]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}.{ext}" for stem in ("one", "zwei") for ext in ("srt", "vtt", "txt", "docx", "json")
    )
    for stem, language, word in (("one", "en", "hello"), ("zwei", "de", "deutsch")):
        srt = (out / f"{stem}.srt").read_text(encoding="utf-8")
        blocks = SRT_BLOCK.findall(srt)
        assert blocks and [int(b[0]) for b in blocks] == list(range(1, len(blocks) + 1))
        assert (out / f"{stem}.vtt").read_text(encoding="utf-8").startswith("WEBVTT\n\n")
        assert word in (out / f"{stem}.txt").read_text(encoding="utf-8").lower()
        document = docx.Document(str(out / f"{stem}.docx"))
        assert any(word in p.text.lower() for p in document.paragraphs)
        data = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
        assert set(data) == {"source", "language", "language_probability", "duration", "model", "segments"}
        assert data["language"] == language and data["model"] == "base"
        assert data["source"].endswith(f"{stem}.wav") and data["duration"] > 1
        for index, segment in enumerate(data["segments"], start=1):
            assert set(segment) == {"id", "start", "end", "text"} and segment["id"] == index
            assert 0 <= segment["start"] < segment["end"] <= data["duration"] + 0.01


def test_word_timestamps_in_json_and_same_names(tmp_path, make_speech, use_session_model):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    speech = make_speech("Hello world. This is the first file of the test.", "en").read_bytes()
    (tmp_path / "a" / "x.wav").write_bytes(speech)
    (tmp_path / "b" / "x.wav").write_bytes(speech)
    result = verbatim("transcribe", "a/x.wav", "b/x.wav", "-f", "json", "--word-timestamps", "--language", "en",
                      "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["x-2.json", "x.json"]  # never overwrite another input's output
    data = json.loads((tmp_path / "out" / "x.json").read_text())
    words = [w for s in data["segments"] for w in s["words"]]
    assert words and set(words[0]) == {"start", "end", "word", "probability"}


@pytest.mark.parametrize(
    "args",
    [["transcribe"], ["transcribe", "x.wav", "-f", "pdf"], ["transcribe", "x.wav", "--beam-size", "0"],
     ["transcribe", "x.wav", "--device", "tpu"]],
)
def test_usage_errors_exit_2(tmp_path, args):
    result = verbatim(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "usage:" in result.stderr


def test_every_kind_of_bad_input_fails_alone(tmp_path, make_speech, use_session_model):
    speech = make_speech("Hello world. This is the first file of the test.", "en").read_bytes()
    (tmp_path / "good.wav").write_bytes(speech)
    (tmp_path / "spaced name ü 空.wav").write_bytes(speech)
    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "text.mp3").write_text("This is a text file, not an MP3.\n" * 20)
    flac = tmp_path / "whole.flac"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "good.wav"), str(flac)], check=True)
    (tmp_path / "truncated.flac").write_bytes(flac.read_bytes()[:200])
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=blue:s=64x64:d=2", "-an",
                    str(tmp_path / "noaudio.mp4")], check=True)
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(tmp_path / "silence.wav"), "trim", "0", "3"],
                   check=True)

    inputs = ["good.wav", "zero.wav", "truncated.flac", "text.mp3", "noaudio.mp4", "missing.wav",
              "spaced name ü 空.wav", "silence.wav"]
    result = verbatim("transcribe", *inputs, "-f", "txt", "-o", "out", cwd=tmp_path)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    failures = dict(line.split(": ", 1) for line in result.stderr.splitlines() if ": " in line
                    and line.split(": ", 1)[0] in inputs and ": note: " not in line)
    assert "silence.wav: note: no speech found" in result.stderr.splitlines()
    assert sorted(failures) == sorted(["zero.wav", "truncated.flac", "text.mp3", "noaudio.mp4", "missing.wav"])
    assert "empty" in failures["zero.wav"]
    assert "no audio" in failures["noaudio.mp4"]
    assert "no such file" in failures["missing.wav"].lower() or "not found" in failures["missing.wav"].lower()
    for reason in failures.values():
        assert reason.strip() and len(reason.splitlines()) == 1
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["good.txt", "silence.txt", "spaced name ü 空.txt"]
    assert "hello" in (out / "good.txt").read_text(encoding="utf-8").lower()
    assert "hello" in (out / "spaced name ü 空.txt").read_text(encoding="utf-8").lower()
    assert (out / "silence.txt").read_text(encoding="utf-8").strip() == ""


def test_notices_are_notes_on_stderr_and_the_exit_code_stays_0(tmp_path, make_speech, use_session_model):
    """A damaged stretch, a second audio track and no speech are told as `FILE: note: ...` lines; the
    files are transcribed, so the exit code is 0."""
    from tests.damaged_media import damaged, ffmpeg, two_sentences, write

    speech = two_sentences(make_speech)
    (tmp_path / "src").mkdir()
    damaged(write(speech.samples, tmp_path / "src" / "clean.mp3"), 0.8, 2.6).rename(tmp_path / "damaged.mp3")
    noise = write(np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32), tmp_path / "noise.wav")
    ffmpeg("-i", tmp_path / "src" / "clean.source.wav", "-i", noise, "-map", "0:a", "-map", "1:a", "-c:a", "flac",
           tmp_path / "two.mkv")

    result = verbatim("transcribe", "damaged.mp3", "two.mkv", "noise.wav", "-q", "--device", "cpu", "-f", "txt",
                      "-o", "out",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "noise.wav: note: no speech found" in lines
    assert "two.mkv: note: the file has 2 audio tracks; the first was transcribed" in lines
    damage = [line for line in lines if line.startswith("damaged.mp3: note: ")]
    assert len(damage) == 1 and "could not be read" in damage[0], lines
    assert len(lines) == 3, lines
    out = tmp_path / "out"
    assert "fence" in (out / "damaged.txt").read_text(encoding="utf-8").lower()
    assert "fence" in (out / "two.txt").read_text(encoding="utf-8").lower()


def test_each_failure_is_one_line_whatever_the_file_is_called(tmp_path, use_session_model):
    """A newline in a file name is escaped, so `FILE: reason` stays one line; a pipe is not a regular
    file (not "empty", and never read: it would wait for a writer)."""
    (tmp_path / "bad\nname.mp3").write_bytes(np.random.default_rng(0).bytes(3000))
    os.mkfifo(tmp_path / "pipe.wav")
    result = verbatim("transcribe", "bad\nname.mp3", "pipe.wav", "-q", "--device", "cpu", "-o", "out",
                      cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "bad\\nname.mp3: not an audio or video file ffmpeg can read (unknown or damaged format)",
        "pipe.wav: not a regular file (a pipe, socket or device)",
    ]


@pytest.mark.parametrize("mount", ["readonly_mount", "tmpfs"])
def test_an_unwritable_output_folder_fails_clearly_and_leaves_nothing(
    request, mount, tmp_path, make_speech, use_session_model
):
    folder = request.getfixturevalue(mount)
    before = sorted(p.name for p in folder.iterdir())
    if mount == "tmpfs":
        with open(folder / "filler", "wb", buffering=0) as filler:  # fill the 64 KiB file system
            with pytest.raises(OSError):
                while True:
                    filler.write(b"x" * 1024)
        before = ["filler"]
    (tmp_path / "good.wav").write_bytes(make_speech("Hello world. This is the first file of the test.").read_bytes())
    result = verbatim("transcribe", "good.wav", "-f", "srt,docx,json", "-o", str(folder), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    reasons = [line for line in result.stderr.splitlines() if line.startswith("good.wav: ")]
    expected = "the folder is read-only" if mount == "readonly_mount" else "the disk is full"
    assert reasons and all(expected in line for line in reasons), result.stderr
    assert sorted(p.name for p in folder.iterdir()) == before  # no partial file, no temp file
