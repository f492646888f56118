"""What a list of dropped or opened paths means to the queue: the media files to transcribe, and what is
refused with the reason. Folders are searched recursively."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from desktop.engine.audio import is_supported


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(files to queue, [(path, why refused)]). Folders are searched recursively for supported files;
    other files in them are skipped silently (a folder holds more than media), but a file named on its
    own that cannot be transcribed is refused with a reason."""
    accepted: list[Path] = []
    refused: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found: list[Path] = []
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(Path(folder) / f for f in sorted(files) if not f.startswith(".") and is_supported(Path(f)))
            if found:
                accepted.extend(found)
            else:
                refused.append((path, "no audio or video files in this folder"))
        elif not path.exists():
            refused.append((path, "file not found"))
        elif not is_supported(path):
            refused.append((path, "not an audio or video file Verbatim can read"))
        else:
            accepted.append(path)
    return accepted, refused
