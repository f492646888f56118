"""Times as the editor shows and reads them: 1:02.345 (and 1:02:03.450 past an hour)."""

from __future__ import annotations

import re

_TIME = re.compile(r"^\s*(?:(?:(\d+):)?(\d+):)?(\d+(?:[.,]\d*)?)\s*$")


def format_time(seconds: float) -> str:
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}.{ms:03d}"
    return f"{minutes}:{secs:02d}.{ms:03d}"


def parse_time(text: str) -> float:
    """Seconds from "83.5", "1:23.5" or "0:01:23,500"; ValueError with a sentence for anything else."""
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"“{text.strip()}” is not a time; write it like 1:23.456")
    hours, minutes, seconds = match.groups()
    value = float(seconds.replace(",", "."))
    if minutes is not None and value >= 60:
        raise ValueError(f"“{text.strip()}”: seconds must be below 60 after the minutes")
    if hours is not None and int(minutes) >= 60:
        raise ValueError(f"“{text.strip()}”: minutes must be below 60 after the hours")
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + value


def format_duration(seconds: float | None) -> str:
    """Short, for the queue: 0:07, 12:34, 1:02:03."""
    if seconds is None:
        return "—"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_eta(seconds: float) -> str:
    if seconds < 1:
        return "< 1 s"
    if seconds < 60:
        return f"~{int(round(seconds))} s"
    if seconds < 3600:
        return f"~{int(round(seconds / 60))} min"
    return f"~{seconds / 3600:.1f} h"
