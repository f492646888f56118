"""Verbatim keeps to its own folders and reports to nobody. `verbatim transcribe`, `verbatim record` and the
window each run as on a machine where nothing ran before: a fresh HOME, fresh XDG folders, their own TMPDIR,
VERBATIM_HOME and output folder. Afterwards every file under the fresh folders, and any new file in this
checkout, must lie in VERBATIM_HOME, the output folder or TMPDIR.

This catches what the network guard cannot: a C library phoning home by itself. ONNX Runtime (Silero VAD)
wrote a device id and a queue of telemetry events under ~/.cache/Microsoft/DeveloperTools/.onnxruntime, and
its uploader resolved names in C++, outside Python's socket module."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.pulserig import pulse_sink  # noqa: F401  (fixture)

pytestmark = pytest.mark.model
REPO = Path(__file__).resolve().parents[2]

# Switches that would turn telemetry off from outside: the app must do it itself, so the runs start without.
# "CI" too: ONNX Runtime sends no telemetry when it is set (as it is in CI), which would hide what a user's
# machine does.
TELEMETRY_SWITCHES = ("ORT_DISABLE_TELEMETRY", "HF_HUB_DISABLE_TELEMETRY", "HF_XET_TELEMETRY_ENABLED",
                      "DISABLE_TELEMETRY", "DO_NOT_TRACK", "CI")
# The sound server's client cookie: libpulse creates it on any program's first connection, and the server
# may ask for it. It belongs to the desktop's sound system, not to Verbatim, and says nothing about the user.
SOUND_SERVER_FILES = ("config/pulse/cookie",)
# Python's own byte-code caches and tools' caches in this checkout are not the app's doing.
REPO_CACHES = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


@dataclass
class FreshMachine:
    """Every folder a program may write to by default, empty, under `root`."""

    root: Path
    placed: set[Path] = field(default_factory=set)  # input files the test put there

    @property
    def verbatim_home(self) -> Path:
        return self.root / "verbatim-home"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"  # the current folder

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_SWITCHES}
        env.update(
            HOME=str(self.root / "home"),
            XDG_CONFIG_HOME=str(self.root / "config"),
            XDG_CACHE_HOME=str(self.root / "cache"),
            XDG_DATA_HOME=str(self.root / "data"),
            XDG_STATE_HOME=str(self.root / "state"),
            XDG_RUNTIME_DIR=str(self.root / "runtime"),
            TMPDIR=str(self.tmp_dir),
            VERBATIM_HOME=str(self.verbatim_home),
            # The checkout under test, not an installed copy, whatever the current folder.
            PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
        )
        env.update(extra)
        return env

    def verbatim(self, *args: str, **extra_env: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "desktop", *args], cwd=self.work_dir, env=self.env(**extra_env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stray_files(self) -> list[str]:
        """Files (not folders: libpulse makes an empty one in XDG_RUNTIME_DIR) outside the allowed places."""
        allowed = (self.verbatim_home, self.output_dir, self.tmp_dir)
        return sorted(
            rel for path in self.root.rglob("*")
            if not path.is_dir() and path not in self.placed
            and not any(path.is_relative_to(folder) for folder in allowed)
            and (rel := path.relative_to(self.root).as_posix()) not in SOUND_SERVER_FILES
        )


@pytest.fixture
def fresh(tmp_path: Path, use_session_model: Path) -> FreshMachine:
    machine = FreshMachine(tmp_path / "machine")
    for name in ("home", "config", "cache", "data", "state", "tmp", "work", "input", "output"):
        (machine.root / name).mkdir(parents=True)
    (machine.root / "runtime").mkdir(mode=0o700)
    return machine


def _repo_files() -> set[str]:
    found = set()
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [name for name in subfolders if name not in REPO_CACHES]
        found.update(os.path.relpath(os.path.join(folder, name), REPO) for name in files)
    return found


@pytest.fixture
def checkout_untouched() -> Iterator[None]:
    before = _repo_files()
    yield
    assert sorted(_repo_files() - before) == [], "new files in the checkout"


def speech_file(machine: FreshMachine, make_speech, text: str) -> Path:
    # In the fresh tree, so anything written beside the source file shows up too.
    source = machine.root / "input" / "privacy.wav"
    shutil.copy(make_speech(text), source)
    machine.placed.add(source)
    return source


def test_transcribe_writes_only_to_its_own_folders(fresh: FreshMachine, make_speech, checkout_untouched):
    source = speech_file(fresh, make_speech, "Nothing about this sentence leaves the machine.")
    process = fresh.verbatim("transcribe", str(source), "-o", str(fresh.output_dir), "-f", "txt", "-q")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "machine" in (fresh.output_dir / "privacy.txt").read_text(encoding="utf-8").lower()
    assert fresh.stray_files() == []


def _pulse_server() -> str:
    """The rig's server, reached directly: its socket is not in the fresh XDG_RUNTIME_DIR."""
    info = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=10, check=True).stdout
    address = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Server String:"))
    return f"unix:{address}" if address.startswith("/") else address


@pytest.mark.audio
def test_record_writes_only_to_its_own_folders(fresh: FreshMachine, pulse_sink, checkout_untouched):  # noqa: F811
    process = fresh.verbatim("record", "--seconds", "2", "-o", str(fresh.output_dir), PULSE_SERVER=_pulse_server())
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert Path(stdout.strip()).parent == fresh.output_dir
    assert fresh.stray_files() == []


def test_the_window_writes_only_to_its_own_folders(qtbot, fresh: FreshMachine, make_speech, checkout_untouched):
    source = speech_file(fresh, make_speech, "The window keeps this sentence to itself.")
    app = fresh.verbatim(str(source), QT_QPA_PLATFORM="offscreen")

    def job_done() -> bool:
        assert app.poll() is None, app.communicate()[1]
        listing = fresh.verbatim("library", "list", "--json")
        stdout, stderr = listing.communicate(timeout=60)
        assert listing.returncode == 0, stderr
        return [job["state"] for job in json.loads(stdout)] == ["done"]

    try:
        qtbot.waitUntil(job_done, timeout=240_000)
        app.send_signal(signal.SIGTERM)
        _, stderr = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    assert app.returncode == 0, stderr
    assert fresh.stray_files() == []
