"""desktop/core, desktop/engine and desktop/capture stay free of Qt (DESIGN.md, "Layers")."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QT_FREE = ("core", "engine", "capture")
FORBIDDEN = ("PySide6", "desktop.ui", "desktop.workers", "desktop.app")


def imports_of(layer: str) -> list[tuple[Path, str]]:
    found = []
    for path in (REPO / "desktop" / layer).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(path, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((path, node.module))
    return found


def test_no_qt_imports_in_the_source():
    offenders = [f"{path.relative_to(REPO)}: {name}" for layer in QT_FREE for path, name in imports_of(layer)
                 if name.startswith(FORBIDDEN)]
    assert offenders == []


def test_lower_layers_do_not_import_higher_ones():
    # core < capture < engine: dependencies point down only.
    above = {"core": ("desktop.capture", "desktop.engine"), "capture": ("desktop.engine",)}
    offenders = [f"{path.relative_to(REPO)}: {name}" for layer, banned in above.items()
                 for path, name in imports_of(layer) if name.startswith(banned)]
    assert offenders == []


def test_importing_every_qt_free_module_loads_no_qt():
    modules = [
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for layer in QT_FREE
        for path in (REPO / "desktop" / layer).rglob("*.py")
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name.removesuffix('.__init__'))\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken6'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
