"""Exporters: pure functions from a transcript to the bytes of a file. Writing is the caller's job
(see desktop.core.fileio), so the UI and the CLI share one way of failing safely.

Segments whose text is empty (after stripping) are left out of every format: an empty subtitle cue or
paragraph is only noise, and numbering and JSON ids stay contiguous.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath, PureWindowsPath

from desktop.core.segment import Segment
from desktop.core.transcript import Transcript

# Every export format, by file extension, with the name a person knows it by: the one list the CLI, the
# settings and the window's save dialog use.
FORMAT_NAMES = {
    "srt": "SubRip subtitles",
    "vtt": "WebVTT subtitles",
    "txt": "Plain text",
    "docx": "Word document",
    "json": "JSON",
}
FORMATS = tuple(FORMAT_NAMES)


@dataclass(frozen=True)
class ExportOptions:
    # TXT as "[00:00:01.000 --> 00:00:03.500] text" lines instead of plain paragraphs.
    txt_timestamps: bool = False


def export(transcript: Transcript, fmt: str, options: ExportOptions = ExportOptions()) -> bytes:
    fmt = fmt.lower().lstrip(".")
    if fmt == "txt":
        return to_txt(transcript, timestamps=options.txt_timestamps)
    writers: dict[str, Callable[[Transcript], bytes]] = {
        "srt": to_srt,
        "vtt": to_vtt,
        "docx": to_docx,
        "json": to_json,
    }
    if fmt not in writers:
        raise ValueError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    return writers[fmt](transcript)


# -- time formatting ---------------------------------------------------------------------------
def _split_ms(seconds: float) -> tuple[int, int, int, int]:
    # Round to whole milliseconds before splitting, so 59.9996 s becomes 00:01:00.000, never 00:00:60.000.
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return hours, minutes, secs, ms


def _clock(seconds: float, ms_separator: str) -> str:
    """HH:MM:SS<sep>mmm, hours growing past two digits if they must."""
    hours, minutes, secs, ms = _split_ms(seconds)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{ms_separator}{ms:03d}"


def _clock_whole_s(seconds: float) -> str:
    """H:MM:SS, cut (not rounded) to the second, as media players show a position."""
    hours, minutes, secs, _ = _split_ms(seconds)
    return f"{hours}:{minutes:02d}:{secs:02d}"


# -- text helpers ------------------------------------------------------------------------------
def _spoken(transcript: Transcript) -> list[Segment]:
    return [s for s in transcript.segments if s.text.strip()]


def _cue_text(text: str) -> str:
    # A blank line ends a cue in SRT and VTT, so lines inside one cue must not be empty.
    return "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())


def _one_line(text: str) -> str:
    # TXT has one line per segment, so a segment's own line breaks become spaces.
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _vtt_escape(text: str) -> str:
    # VTT cue text is markup; escaping '>' also keeps a literal "-->" from reading as a timing line.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _source_name(source: str) -> PurePath:
    # A source recorded on Windows keeps its backslashes, which a POSIX path would not split on.
    return PureWindowsPath(source) if "\\" in source else PurePosixPath(source)


# -- formats -----------------------------------------------------------------------------------
def to_srt(t: Transcript) -> bytes:
    blocks = [
        f"{number}\n{_clock(s.start_s, ',')} --> {_clock(s.end_s, ',')}\n{_cue_text(s.text)}\n"
        for number, s in enumerate(_spoken(t), start=1)
    ]
    return "\n".join(blocks).encode("utf-8")


def to_vtt(t: Transcript) -> bytes:
    cues = [
        f"{_clock(s.start_s, '.')} --> {_clock(s.end_s, '.')}\n{_vtt_escape(_cue_text(s.text))}\n"
        for s in _spoken(t)
    ]
    return "\n".join(["WEBVTT\n", *cues]).encode("utf-8")


def to_txt(t: Transcript, timestamps: bool = False) -> bytes:
    if timestamps:
        lines = [
            f"[{_clock(s.start_s, '.')} --> {_clock(s.end_s, '.')}] {_one_line(s.text)}" for s in _spoken(t)
        ]
    else:
        lines = [_one_line(s.text) for s in _spoken(t)]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def to_json(t: Transcript) -> bytes:
    info = t.info
    spoken = _spoken(t)
    with_words = any(s.words for s in spoken)
    segments = []
    for number, s in enumerate(spoken, start=1):
        item: dict[str, object] = {
            "id": number,
            "start": round(s.start_s, 3),
            "end": round(s.end_s, 3),
            "text": s.text.strip(),
        }
        if with_words:
            # Words keep their text as the model gave it (with its leading space), so joining them
            # gives back the spoken text.
            item["words"] = [
                {
                    "start": round(w.start_s, 3),
                    "end": round(w.end_s, 3),
                    "word": w.text,
                    "probability": round(w.probability, 4),
                }
                for w in s.words
            ]
        segments.append(item)
    document = {
        "source": info.source,
        "language": info.language,
        "language_probability": round(info.language_probability, 4),
        "duration": round(info.duration_s, 3),
        "model": info.model,
        "segments": segments,
    }
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# A fixed date keeps two exports of the same transcript byte-identical (no clock in the output).
_DOCX_DATE = (2000, 1, 1, 0, 0, 0)


def to_docx(t: Transcript) -> bytes:
    import datetime as dt

    import docx  # heavy (lxml): imported only when a DOCX is asked for
    from docx.shared import Pt, RGBColor

    info = t.info
    source = _source_name(info.source)
    title = source.stem or "Transcript"

    document = docx.Document()
    fixed = dt.datetime(*_DOCX_DATE, tzinfo=dt.timezone.utc)
    props = document.core_properties
    props.title = title
    props.author = "Verbatim"
    props.last_modified_by = "Verbatim"
    props.created = fixed
    props.modified = fixed
    props.revision = 1

    document.add_heading(title, level=1)
    metadata = [("Source", source.name), ("Language", info.language)]
    if info.duration_s > 0:
        metadata.append(("Duration", _clock_whole_s(info.duration_s)))
    metadata.append(("Model", info.model))
    for label, value in metadata:
        if not value:
            continue
        line = document.add_paragraph()
        label_run = line.add_run(f"{label}: ")
        label_run.bold = True
        line.add_run(value)
        line.paragraph_format.space_after = Pt(0)
    document.add_paragraph()  # a gap between the metadata and the text

    muted = RGBColor(0x80, 0x80, 0x80)
    for segment in _spoken(t):
        paragraph = document.add_paragraph()
        stamp = paragraph.add_run(f"[{_clock_whole_s(segment.start_s)}] ")
        stamp.bold = True
        stamp.font.color.rgb = muted
        paragraph.add_run(_cue_text(segment.text))  # line breaks inside a segment stay line breaks

    buffer = io.BytesIO()
    document.save(buffer)
    return _normalize_zip(buffer.getvalue())


def _normalize_zip(data: bytes) -> bytes:
    """Rewrite a zip with a fixed timestamp on every member: python-docx stamps them with the current
    time, which would make every export of the same transcript differ."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for member in source.infolist():
            info = zipfile.ZipInfo(member.filename, date_time=_DOCX_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = member.external_attr
            target.writestr(info, source.read(member.filename))
    return out.getvalue()
