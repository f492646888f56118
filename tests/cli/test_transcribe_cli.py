"""`verbatim transcribe` as a user runs it: a real process, the real model, real files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import docx
import pytest

pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parents[2]


def verbatim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "desktop", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


SRT_BLOCK = re.compile(r"^(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n(.+)$", re.M)


def test_two_good_files_one_broken(tmp_path, make_speech, use_session_model):
    one = tmp_path / "one.wav"
    one.write_bytes(make_speech("Hello world. This is the first file of the test.", "en").read_bytes())
    zwei = tmp_path / "zwei.wav"
    zwei.write_bytes(make_speech("Guten Tag. Das ist ein Test der Spracherkennung auf Deutsch.", "de").read_bytes())
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(os.urandom(3000))

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
