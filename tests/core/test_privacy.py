"""Dependency telemetry is off before a dependency loads: ONNX Runtime, loaded by Silero VAD, writes its device
id and event queue under the user's cache folder when imported unless told not to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.core.privacy import TELEMETRY_OFF, disable_telemetry

REPO = Path(__file__).resolve().parents[2]


def run_in_fresh_home(code: str, root: Path) -> list[str]:
    """Run `code` in a Python with nothing switched off from outside and a fresh HOME; the files it left there."""
    home, cache = root / "home", root / "cache"
    home.mkdir()
    cache.mkdir()
    # Nor "CI": ONNX Runtime sends no telemetry when it is set (as in CI), unlike on a user's machine.
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_OFF and k != "CI"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True, timeout=120)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_onnxruntime_imported_after_the_switch_writes_nothing(tmp_path: Path):
    code = "from desktop.core.privacy import disable_telemetry\ndisable_telemetry()\nimport onnxruntime\n"
    assert run_in_fresh_home(code, tmp_path) == []


def test_silero_vad_through_the_engine_package_writes_nothing(tmp_path: Path):
    # The lazy path: nothing but an engine module is imported before faster-whisper loads its VAD model.
    code = "import desktop.engine.prepare\nfrom faster_whisper.vad import get_vad_model\nget_vad_model()\n"
    assert run_in_fresh_home(code, tmp_path) == []


def test_without_the_switch_onnxruntime_does_write(tmp_path: Path):
    # What the switch is for; if a later ONNX Runtime stops doing this, the tests above prove less.
    assert any(".onnxruntime" in path for path in run_in_fresh_home("import onnxruntime", tmp_path))


def test_switching_off_twice_is_harmless(monkeypatch: pytest.MonkeyPatch):
    for name in TELEMETRY_OFF:
        monkeypatch.delenv(name, raising=False)
    disable_telemetry()
    disable_telemetry()
    assert {name: os.environ[name] for name in TELEMETRY_OFF} == TELEMETRY_OFF
