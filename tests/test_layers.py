"""desktop/core, desktop/engine and desktop/capture stay free of Qt (DESIGN.md, "Layers")."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QT_FREE = ("core", "engine", "capture")
FORBIDDEN = ("PySide6", "desktop.ui", "desktop.workers", "desktop.app")


def test_no_qt_imports_in_the_source():
    offenders = []
    for layer in QT_FREE:
        for path in (REPO / "desktop" / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.startswith(FORBIDDEN)]
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
