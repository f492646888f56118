"""A private PulseAudio null sink per test: the real capture path (PortAudio's ALSA device → PulseAudio →
the sink's monitor) without sharing the default sink with other processes playing into it.

libpulse takes its default source from PULSE_SOURCE when a stream connects, so setting it points the
system default input (what the app records by default) at this sink's monitor. Tests using it are
skipped, with the reason, only when no PulseAudio server is reachable (.ci/run starts one)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

_names = itertools.count()


@dataclass(frozen=True)
class PulseSink:
    name: str

    def play(self, wav: Path) -> subprocess.Popen:
        return subprocess.Popen(["paplay", f"--device={self.name}", str(wav)])


def _server_reachable() -> bool:
    if shutil.which("pactl") is None or shutil.which("paplay") is None:
        return False
    return subprocess.run(["pactl", "info"], capture_output=True, timeout=10).returncode == 0


@pytest.fixture
def pulse_sink(monkeypatch: pytest.MonkeyPatch):
    if not _server_reachable():
        pytest.skip("no PulseAudio server reachable (DESIGN.md, 'Test rigs'; .ci/run starts one)")
    name = f"verbatim_test_{os.getpid()}_{next(_names)}"
    loaded = subprocess.run(["pactl", "load-module", "module-null-sink", f"sink_name={name}"],
                            capture_output=True, text=True, check=True)
    monkeypatch.setenv("PULSE_SOURCE", f"{name}.monitor")
    try:
        yield PulseSink(name)
    finally:
        subprocess.run(["pactl", "unload-module", loaded.stdout.strip()], capture_output=True)
