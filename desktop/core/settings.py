"""The user's settings: one frozen dataclass, saved as JSON in $VERBATIM_HOME/settings.json.

Reading never fails: a missing, unreadable or partly invalid file gives the defaults for whatever could not
be read, so a hand-edited or older settings file cannot stop the app from starting.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from desktop.core.export import FORMATS as EXPORT_FORMATS
from desktop.core.paths import home

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
COMPUTE_TYPES = ("auto", "int8", "int8_float16", "float16", "float32")
TASKS = ("transcribe", "translate")
MAX_BEAM_SIZE = 10
MAX_BATCH_SIZE = 256


@dataclass(frozen=True)
class Settings:
    # "base" (bundled), a faster-whisper hub name, or the path of a local CTranslate2 model folder.
    model: str = "base"
    device: str = "auto"
    compute_type: str = "auto"
    language: str | None = None  # None: detect per file
    task: str = "transcribe"
    word_timestamps: bool = False
    beam_size: int = 5
    # Speech chunks per decoder batch; None lets the engine choose by device. Smaller saves GPU memory.
    batch_size: int | None = None
    # What "Export all finished" writes for each job.
    export_formats: tuple[str, ...] = ("srt", "txt")

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError("model must be a non-empty name or folder")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}")
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute type must be one of {', '.join(COMPUTE_TYPES)}")
        if self.language is not None and not (isinstance(self.language, str) and self.language.strip()):
            raise ValueError("language must be a code such as 'en', or None for automatic detection")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}")
        if not isinstance(self.word_timestamps, bool):
            raise ValueError("word_timestamps must be true or false")
        if isinstance(self.beam_size, bool) or not isinstance(self.beam_size, int):
            raise ValueError("beam size must be a whole number")
        if not 1 <= self.beam_size <= MAX_BEAM_SIZE:
            raise ValueError(f"beam size must be between 1 and {MAX_BEAM_SIZE}")
        if self.batch_size is not None and (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or not 1 <= self.batch_size <= MAX_BATCH_SIZE
        ):
            raise ValueError(f"batch size must be a whole number between 1 and {MAX_BATCH_SIZE}, or automatic")
        if not self.export_formats or any(f not in EXPORT_FORMATS for f in self.export_formats):
            raise ValueError(f"export formats must be some of {', '.join(EXPORT_FORMATS)}")

    def model_key(self) -> tuple[str, str, str]:
        """What decides which model is loaded: a change here means a reload, any other change does not."""
        return (self.model, self.device, self.compute_type)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["export_formats"] = list(self.export_formats)
        return data

    @classmethod
    def from_json(cls, data: object) -> Settings:
        """Settings from parsed JSON; each field that is missing or invalid keeps its default."""
        if not isinstance(data, dict):
            return cls()
        settings = cls()
        for field in fields(cls):
            if field.name not in data:
                continue
            value = data[field.name]
            if field.name == "export_formats" and isinstance(value, list):
                value = tuple(value)
            try:
                settings = dataclasses.replace(settings, **{field.name: value})
            except (TypeError, ValueError) as exc:
                log.warning("ignoring setting %s=%r: %s", field.name, value, exc)
        return settings


def settings_path() -> Path:
    return home() / "settings.json"


def load_settings(path: Path | None = None) -> Settings:
    path = path or settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s (%s); using the default settings", path, exc)
        return Settings()
    return Settings.from_json(data)


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write atomically (temporary file and rename), so a crash never leaves half a settings file."""
    path = path or settings_path()
    text = json.dumps(settings.to_json(), indent=2, sort_keys=True) + "\n"
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".settings.", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        raise
