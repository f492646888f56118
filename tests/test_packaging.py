"""The parts of packaging/ that can be checked without a build; `make package package-smoke` tests the build.

- the PortAudio runtime hook answers "portaudio" with the bundled library, and only then;
- every Qt plugin the spec keeps exists in the installed PySide6 (a PySide6 update that renames one would
  otherwise silently drop it from the app);
- the committed icons match the SVG renderer's output format (the .ico directory points at real PNGs).
"""

from __future__ import annotations

import ast
import ctypes.util
import importlib.util
import struct
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGING = REPO / "packaging"


def _spec_constant(name: str) -> object:
    tree = ast.parse((PACKAGING / "verbatim.spec").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in verbatim.spec")


def _load_rthook(monkeypatch: pytest.MonkeyPatch, bundle: Path) -> None:
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    # The hook replaces ctypes.util.find_library; monkeypatch puts the original back afterwards.
    monkeypatch.setattr(ctypes.util, "find_library", ctypes.util.find_library)
    spec = importlib.util.spec_from_file_location("rthook_portaudio", PACKAGING / "rthook_portaudio.py")
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_portaudio_hook_prefers_the_bundled_library(tmp_path, monkeypatch):
    bundled = tmp_path / "libportaudio.so.2"
    bundled.write_bytes(b"\x7fELF")
    _load_rthook(monkeypatch, tmp_path)

    assert ctypes.util.find_library("portaudio") == str(bundled)
    assert ctypes.util.find_library("c") not in (None, str(bundled))  # other names: the system's answer


def test_portaudio_hook_falls_back_to_the_system(tmp_path, monkeypatch):
    system_answer = ctypes.util.find_library("portaudio")
    _load_rthook(monkeypatch, tmp_path)  # nothing bundled

    assert ctypes.util.find_library("portaudio") == system_answer


def test_every_kept_qt_plugin_exists_in_pyside6():
    import PySide6

    plugins = Path(PySide6.__file__).parent / "Qt" / "plugins"
    kept = _spec_constant("KEEP_QT_PLUGINS")
    assert isinstance(kept, set) and "platforms/libqxcb.so" in kept and "platforms/libqoffscreen.so" in kept
    missing = sorted(name for name in kept if not (plugins / name).is_file())
    assert missing == []


def test_icon_files_hold_the_pngs_they_list():
    ico = (REPO / "resources" / "icons" / "verbatim.ico").read_bytes()
    reserved, kind, count = struct.unpack_from("<HHH", ico)
    assert (reserved, kind) == (0, 1) and count >= 5
    sides = []
    for index in range(count):
        side, _, _, _, _, _, size, offset = struct.unpack_from("<BBBBHHII", ico, 6 + 16 * index)
        assert ico[offset : offset + 8] == b"\x89PNG\r\n\x1a\n"
        assert offset + size <= len(ico)
        width, height = struct.unpack(">II", ico[offset + 16 : offset + 24])  # the PNG's IHDR
        assert width == height == (side or 256)
        sides.append(side or 256)
    assert 16 in sides and 256 in sides
    for size_px in (16, 32, 48, 64, 128, 256, 512):
        png = (REPO / "resources" / "icons" / "png" / f"verbatim-{size_px}.png").read_bytes()
        assert struct.unpack(">II", png[16:24]) == (size_px, size_px)


def test_every_qt_module_the_app_imports_is_packaged():
    """A Qt module the spec excludes (or whose library it drops) makes the frozen app fail where the app
    imports it: QtNetwork carries the socket that keeps one window per library."""
    import re

    imported = set()
    for source in (REPO / "desktop").rglob("*.py"):
        imported.update(re.findall(r"^\s*(?:from|import) (PySide6\.Qt\w+)", source.read_text(encoding="utf-8"),
                                   flags=re.MULTILINE))
    assert "PySide6.QtNetwork" in imported
    excluded = set(_spec_constant("EXCLUDES"))  # type: ignore[arg-type]
    dropped = set(_spec_constant("DROP_QT_LIBS"))  # type: ignore[arg-type]
    assert not imported & excluded
    assert not {f"libQt6{module.removeprefix('PySide6.Qt')}" for module in imported} & dropped
