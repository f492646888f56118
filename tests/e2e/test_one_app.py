"""One app per library, as people start it: `verbatim file.wav` while the window is open hands the file to
that window and exits; command-line work beside the open window works; a crashed window's socket does not
stop the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QDir

from desktop.workers.single_instance import server_name

pytestmark = pytest.mark.model

REPO_ROOT = Path(__file__).resolve().parents[2]
# A second launch imports Qt and connects: seconds, not the model's load.
HAND_OVER_LIMIT_S = 15


class RunningApp:
    """`python -m desktop [FILE ...]` in its own process, its log (VERBATIM_LOG=info) in a file."""

    def __init__(self, files: list[Path], log_path: Path) -> None:
        self.log_path = log_path
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", VERBATIM_LOG="info")
        self._log = log_path.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "desktop", *map(str, files)], cwd=REPO_ROOT,
                                        env=env, stdout=subprocess.DEVNULL, stderr=self._log, text=True)

    def log(self) -> str:
        return self.log_path.read_text()

    def alive(self) -> bool:
        assert self.process.poll() is None, self.log()
        return True

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def running_apps():
    started: list[RunningApp] = []

    def start(files: list[Path], log_path: Path) -> RunningApp:
        app = RunningApp(files, log_path)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


def run_cli(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-m", "desktop", *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout_s)


def library() -> list[dict]:
    listed = run_cli("library", "list", "--json", timeout_s=60)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def test_a_second_launch_hands_its_file_to_the_open_window_and_cli_work_runs_beside_it(
        qtbot, use_session_model, verbatim_home, make_speech, running_apps, tmp_path):
    talk = make_speech("This file was handed over by a second launch of Verbatim.", name="handed.wav")
    window = running_apps([], tmp_path / "window.log")
    qtbot.waitUntil(lambda: window.alive() and "window shown" in window.log(), timeout=60_000)

    begin = time.monotonic()
    second = run_cli(str(talk), timeout_s=60)
    took_s = time.monotonic() - begin
    assert second.returncode == 0, second.stderr
    assert took_s < HAND_OVER_LIMIT_S
    assert window.alive() and "another launch handed over 1 file(s)" in window.log()

    # Beside the open window, at the same time: a transcription to files, and a look at the library.
    other = make_speech("The command line transcribes this one on its own.", name="cli.wav")
    out = tmp_path / "out"
    transcribe = subprocess.Popen([sys.executable, "-m", "desktop", "transcribe", str(other), "-o", str(out),
                                   "-f", "txt"], cwd=REPO_ROOT, env=dict(os.environ), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
    listing = subprocess.Popen([sys.executable, "-m", "desktop", "library", "list", "--json"], cwd=REPO_ROOT,
                               env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    listed_out, listed_err = listing.communicate(timeout=60)
    transcribed_out, transcribed_err = transcribe.communicate(timeout=180)
    assert listing.returncode == 0, listed_err
    assert [job["source"] for job in json.loads(listed_out)] == [str(talk.resolve())]
    assert transcribe.returncode == 0, transcribed_err
    assert "command line" in (out / "cli.txt").read_text().lower()

    # The open window transcribes the handed-over file into its library; the library stays whole.
    qtbot.waitUntil(lambda: window.alive() and [j["state"] for j in library()] == ["done"], timeout=180_000)
    [job] = library()
    assert job["source"] == str(talk.resolve())
    assert "second launch" in job["text"].lower()
    assert window.stop() == 0


def test_a_crashed_windows_socket_does_not_stop_the_next_start(qtbot, use_session_model, verbatim_home,
                                                               make_speech, running_apps, tmp_path):
    crashed = running_apps([], tmp_path / "crashed.log")
    qtbot.waitUntil(lambda: crashed.alive() and "window shown" in crashed.log(), timeout=60_000)
    crashed.process.send_signal(signal.SIGKILL)
    crashed.process.wait(timeout=10)
    socket_file = Path(QDir.tempPath()) / server_name(verbatim_home)
    assert socket_file.exists()  # what a crash leaves behind

    talk = make_speech("Started after a crash, this window still takes the file.", name="after.wav")
    window = running_apps([talk], tmp_path / "window.log")
    qtbot.waitUntil(lambda: window.alive() and [j["state"] for j in library()] == ["done"], timeout=180_000)
    assert "removing the stale socket" in window.log()

    # And it answers the launches after it.
    begin = time.monotonic()
    third = run_cli(timeout_s=60)
    assert third.returncode == 0, third.stderr
    assert time.monotonic() - begin < HAND_OVER_LIMIT_S
    assert window.alive() and "another launch handed over 0 file(s)" in window.log()
    assert window.stop() == 0
    assert not socket_file.exists()
