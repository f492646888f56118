"""Exporters against golden files. Regenerate with VERBATIM_UPDATE_GOLDEN=1 and read the diff by eye."""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path

import pytest

from desktop.core.export import FORMATS, ExportOptions, export, to_docx, to_json, to_srt, to_txt, to_vtt
from desktop.core.segment import Segment, TranscriptInfo, Word
from desktop.core.transcript import Transcript

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("VERBATIM_UPDATE_GOLDEN") == "1"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VERBATIM_HOME", str(tmp_path / "home"))


def make_transcript(with_words: bool) -> Transcript:
    """Unicode (German, Japanese), an empty segment, a time that rounds up to the next minute and to the
    next hour, cues past one hour, and text that needs care in subtitles (blank line, markup, '-->')."""

    def words(*pieces: tuple[str, float, float, float]) -> tuple[Word, ...]:
        return tuple(Word(s, e, text, p) for text, s, e, p in pieces) if with_words else ()

    info = TranscriptInfo(
        source="/home/anna/Aufnahmen/Interview Müller.wav",
        language="de",
        language_probability=0.97345,
        duration_s=3725.5,
        model="base",
    )
    return Transcript(
        info,
        [
            Segment(
                0.0,
                2.5,
                " Guten Tag, Frau Müller.",
                words(
                    (" Guten", 0.0, 0.42, 0.91),
                    (" Tag,", 0.42, 0.9, 0.88),
                    (" Frau", 1.1, 1.5, 0.97),
                    (" Müller.", 1.5, 2.5, 0.7512),
                ),
            ),
            Segment(3.0, 59.9996, " Schöne Grüße aus Köln – ß und ÄÖÜ. "),
            Segment(61.25, 63.0, "   "),
            Segment(
                64.0,
                66.125,
                " こんにちは、世界。",
                words(("こんにちは", 64.0, 65.0, 0.5), ("、世界。", 65.0, 66.125, 0.33333)),
            ),
            Segment(3599.9996, 3661.042, " Über eine Stunde später."),
            Segment(3700.0, 3725.5, "Erste Zeile\n\n  zweite <i>Zeile</i> --> & Ende"),
        ],
    )


def check_golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    assert path.exists(), f"{path} is missing; run with VERBATIM_UPDATE_GOLDEN=1 and review it"
    expected = path.read_bytes()
    # Compare text first so a failure shows a readable diff, then bytes for encoding and line ends.
    assert data.decode("utf-8") == expected.decode("utf-8")
    assert data == expected


@pytest.mark.parametrize(
    "name, make",
    [
        ("sample.srt", lambda t: to_srt(t)),
        ("sample.vtt", lambda t: to_vtt(t)),
        ("sample.txt", lambda t: to_txt(t)),
        ("sample_timestamps.txt", lambda t: to_txt(t, timestamps=True)),
        ("sample.json", lambda t: to_json(t)),
    ],
)
def test_golden_without_words(name, make):
    check_golden(name, make(make_transcript(with_words=False)))


def test_golden_json_with_words():
    check_golden("sample_words.json", to_json(make_transcript(with_words=True)))


def test_words_do_not_change_the_other_formats():
    with_words, without = make_transcript(True), make_transcript(False)
    for fmt in ("srt", "vtt", "txt"):
        assert export(with_words, fmt) == export(without, fmt)


# -- SRT / VTT structure ---------------------------------------------------------------------------
SRT_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d),(\d{3})"


def parse_srt(data: bytes) -> list[tuple[int, int, int, str]]:
    """(number, start_ms, end_ms, text) per block; strict about the layout."""
    text = data.decode("utf-8")
    assert text.endswith("\n") and not text.endswith("\n\n")
    blocks = []
    for block in text.rstrip("\n").split("\n\n"):
        lines = block.split("\n")
        match = re.fullmatch(SRT_TIME + " --> " + SRT_TIME, lines[1])
        assert match, lines[1]
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, match.groups())
        start_ms = ((h1 * 60 + m1) * 60 + s1) * 1000 + ms1
        end_ms = ((h2 * 60 + m2) * 60 + s2) * 1000 + ms2
        assert all(line.strip() for line in lines[2:]), "a blank line inside a cue would end it"
        blocks.append((int(lines[0]), start_ms, end_ms, "\n".join(lines[2:])))
    return blocks


def test_srt_parses_back_to_the_same_times():
    t = make_transcript(with_words=False)
    spoken = [s for s in t.segments if s.text.strip()]
    blocks = parse_srt(to_srt(t))
    assert [b[0] for b in blocks] == list(range(1, len(spoken) + 1))  # contiguous despite the empty one
    assert [(b[1], b[2]) for b in blocks] == [
        (round(s.start_s * 1000), round(s.end_s * 1000)) for s in spoken
    ]
    assert [b[3].replace("\n", " ") for b in blocks] == [" ".join(s.text.split()) for s in spoken]


@pytest.mark.parametrize(
    "start_s, end_s, expected",
    [
        (59.9996, 61.0, "00:01:00,000 --> 00:01:01,000"),
        (0.0004, 0.0015, "00:00:00,000 --> 00:00:00,002"),
        (3599.9999, 3600.5, "01:00:00,000 --> 01:00:00,500"),
        (36000.123, 36001.0, "10:00:00,123 --> 10:00:01,000"),
        (1.1, 2.675, "00:00:01,100 --> 00:00:02,675"),
        (360000.0, 360001.25, "100:00:00,000 --> 100:00:01,250"),
    ],
)
def test_srt_timestamps_round_before_splitting(start_s, end_s, expected):
    t = Transcript(TranscriptInfo("a.wav"), [Segment(start_s, end_s, "x")])
    assert to_srt(t).decode().split("\n")[1] == expected
    assert to_vtt(t).decode().split("\n")[2] == expected.replace(",", ".")


def test_vtt_escapes_markup_and_has_a_header():
    text = to_vtt(make_transcript(False)).decode("utf-8")
    assert text.startswith("WEBVTT\n\n")
    assert "<i>" not in text and "--> &" not in text
    assert "zweite &lt;i&gt;Zeile&lt;/i&gt; --&gt; &amp; Ende" in text
    # Exactly one timing line per spoken segment.
    assert len(re.findall(r"^\d{2}:\d{2}:\d{2}\.\d{3} --> \d{2}:\d{2}:\d{2}\.\d{3}$", text, re.M)) == 5


def test_empty_transcript():
    t = Transcript(TranscriptInfo("empty.wav"))
    assert to_srt(t) == b""
    assert to_vtt(t) == b"WEBVTT\n"
    assert to_txt(t) == b""
    assert json.loads(to_json(t))["segments"] == []


# -- JSON ------------------------------------------------------------------------------------------
def test_json_schema():
    for with_words in (False, True):
        document = json.loads(to_json(make_transcript(with_words)))
        assert list(document) == [
            "source",
            "language",
            "language_probability",
            "duration",
            "model",
            "segments",
        ]
        assert document["source"] == "/home/anna/Aufnahmen/Interview Müller.wav"
        assert isinstance(document["duration"], float)
        ids = [s["id"] for s in document["segments"]]
        assert ids == list(range(1, len(ids) + 1))
        for segment in document["segments"]:
            expected_keys = {"id", "start", "end", "text"} | ({"words"} if with_words else set())
            assert set(segment) == expected_keys
            assert segment["text"] == segment["text"].strip()
            for word in segment.get("words", []):
                assert set(word) == {"start", "end", "word", "probability"}
                assert segment["start"] <= word["start"] < word["end"] <= segment["end"]


def test_json_words_only_when_some_segment_has_them():
    document = json.loads(to_json(make_transcript(with_words=True)))
    # Segments without word timings still carry an (empty) list, so readers need no special case.
    assert [len(s["words"]) for s in document["segments"]] == [4, 0, 2, 0, 0]
    assert document["segments"][0]["words"][3] == {
        "start": 1.5,
        "end": 2.5,
        "word": " Müller.",
        "probability": 0.7512,
    }


def test_json_is_utf8_not_escaped():
    data = to_json(make_transcript(False))
    assert "こんにちは".encode() in data
    assert b"\\u" not in data
    assert data.endswith(b"}\n")


# -- TXT / dispatch --------------------------------------------------------------------------------
def test_txt_options_through_export():
    t = make_transcript(False)
    assert export(t, "txt") == to_txt(t)
    assert export(t, "txt", ExportOptions(txt_timestamps=True)) == to_txt(t, timestamps=True)
    assert export(t, "txt") != export(t, "txt", ExportOptions(txt_timestamps=True))


@pytest.mark.parametrize("fmt", ["srt", "vtt", "json", "SRT", ".vtt"])
def test_export_dispatch(fmt):
    t = make_transcript(False)
    direct = {"srt": to_srt, "vtt": to_vtt, "json": to_json}[fmt.lower().lstrip(".")]
    assert export(t, fmt) == direct(t)


@pytest.mark.parametrize("fmt", ["pdf", "", "srtx"])
def test_export_unknown_format(fmt):
    with pytest.raises(ValueError, match="srt, vtt, txt, docx, json"):
        export(make_transcript(False), fmt)


def test_formats_constant():
    assert FORMATS == ("srt", "vtt", "txt", "docx", "json")


# -- DOCX ------------------------------------------------------------------------------------------
def test_docx_content():
    import docx

    t = make_transcript(with_words=True)
    document = docx.Document(io.BytesIO(export(t, "docx")))
    paragraphs = document.paragraphs
    assert paragraphs[0].text == "Interview Müller"
    assert paragraphs[0].style.name == "Heading 1"
    assert document.core_properties.title == "Interview Müller"
    assert [p.text for p in paragraphs[1:5]] == [
        "Source: Interview Müller.wav",
        "Language: de",
        "Duration: 1:02:05",
        "Model: base",
    ]
    assert paragraphs[5].text == ""
    body = paragraphs[6:]
    assert [p.text for p in body] == [
        "[0:00:00] Guten Tag, Frau Müller.",
        "[0:00:03] Schöne Grüße aus Köln – ß und ÄÖÜ.",
        "[0:01:04] こんにちは、世界。",
        "[1:00:00] Über eine Stunde später.",
        "[1:01:40] Erste Zeile\nzweite <i>Zeile</i> --> & Ende",
    ]
    stamp = body[0].runs[0]
    assert stamp.text == "[0:00:00] "
    assert stamp.bold
    assert str(stamp.font.color.rgb) == "808080"
    assert not body[0].runs[1].bold


def test_docx_leaves_out_unknown_metadata():
    import docx

    t = Transcript(TranscriptInfo(source="C:\\Users\\bo\\memo.m4a"), [Segment(1.9, 3.0, " hi ")])
    paragraphs = docx.Document(io.BytesIO(to_docx(t))).paragraphs
    assert [p.text for p in paragraphs] == ["memo", "Source: memo.m4a", "", "[0:00:01] hi"]


def test_docx_is_deterministic():
    t = make_transcript(False)
    first = to_docx(t)
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.testzip() is None
        assert {member.date_time for member in archive.infolist()} == {(2000, 1, 1, 0, 0, 0)}
        core = archive.read("docProps/core.xml").decode()
    assert "2000-01-01T00:00:00Z" in core
    assert to_docx(make_transcript(False)) == first
