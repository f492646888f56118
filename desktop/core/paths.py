"""Where Verbatim keeps its data: $VERBATIM_HOME, else the platform's user data folder."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "Verbatim"


def home() -> Path:
    configured = os.environ.get("VERBATIM_HOME")
    if configured:
        path = Path(configured).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    _private_dir(path)
    return path


def _private_dir(path: Path) -> None:
    """Transcripts and recordings are private: a folder Verbatim creates is the user's alone (0700).
    An existing folder keeps the permissions its owner gave it."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)


def library_path() -> Path:
    return home() / "library.sqlite3"


def recordings_dir() -> Path:
    path = home() / "recordings"
    _private_dir(path)
    return path


def models_dir() -> Path:
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
