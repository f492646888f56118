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
    path.mkdir(parents=True, exist_ok=True)
    return path


def library_path() -> Path:
    return home() / "library.sqlite3"


def recordings_dir() -> Path:
    path = home() / "recordings"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
