"""Icons and the style sheet from resources/ (installed as the desktop.resources package)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon


@cache
def resources_dir() -> Path:
    # Installed: pyproject maps resources/ to the package desktop.resources. From a checkout: the repo's folder.
    try:
        from importlib.resources import files

        installed = Path(str(files("desktop.resources")))
        if (installed / "icons").is_dir():
            return installed
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "resources"


@cache
def icon(name: str) -> QIcon:
    """resources/icons/<name>.svg; an empty icon when missing (a missing icon must not stop the app)."""
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def style_sheet() -> str:
    path = resources_dir() / "style.qss"
    return path.read_text(encoding="utf-8") if path.exists() else ""
