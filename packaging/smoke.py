"""Smoke test of the frozen app, headless: `make package-smoke` (or `python packaging/smoke.py [APP]`).

1. `transcribe` on a short espeak-ng recording in an empty environment (`env -i`), checking the words.
2. `transcribe --device cuda`: on a machine without a usable CUDA it must say so and still succeed on the CPU.
3. The window, offscreen, with the recording queued: waits for "window shown" and "model ready" on stderr
   (VERBATIM_LOG=info), then for the job to be done in the library (`verbatim library list --json`), then
   sends SIGTERM, which the app handles by closing the window; it must exit 0 within SHUTDOWN_TIMEOUT_S.
   Started twice: the first start checks the bundled model's SHA-256, the second finds it checked.

Prints the start-up times it measured (from starting the process to the log line). Exit 0 when all pass.
Needs espeak-ng. Nothing here imports the app: it only runs the frozen executable.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_APP = ROOT / "dist" / "verbatim" / "verbatim"
SENTENCE = "Good morning everyone. This is a short test of the speech recognition."
# The words a correct transcript must hold (the base model hears espeak-ng's voice well on this sentence).
EXPECTED_WORDS = ("good", "morning", "everyone", "short", "test", "speech", "recognition")
TRANSCRIBE_TIMEOUT_S = 120.0
WINDOW_TIMEOUT_S = 60.0
MODEL_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 120.0
SHUTDOWN_TIMEOUT_S = 20.0


class SmokeFailure(Exception):
    pass


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def _check_words(text: str, where: str) -> None:
    missing = [w for w in EXPECTED_WORDS if w not in _words(text)]
    if missing:
        raise SmokeFailure(f"{where}: missing {', '.join(missing)} in {text!r}")


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    """Like `env -i`: only what the test sets (no PATH, no HOME, no LD_LIBRARY_PATH, no Python variables)."""
    return {"VERBATIM_HOME": str(home), **extra}


def make_recording(folder: Path) -> Path:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SmokeFailure("espeak-ng is needed to make the test recording (apt-get install espeak-ng)")
    wav = folder / "one.wav"
    subprocess.run([espeak, "-w", str(wav), SENTENCE], check=True)
    return wav


def check_transcribe(app: Path, wav: Path, work: Path) -> None:
    out = work / "out"
    command = [str(app), "transcribe", str(wav), "-f", "txt,json", "-o", str(out), "--device", "cpu"]
    started_s = time.monotonic()
    result = subprocess.run(
        command,
        env=_clean_env(work / "home"),
        capture_output=True,
        text=True,
        timeout=TRANSCRIBE_TIMEOUT_S,
        cwd=work,
    )
    elapsed_s = time.monotonic() - started_s
    if result.returncode != 0:
        raise SmokeFailure(f"transcribe exited {result.returncode}: {result.stderr.strip()}")
    text = (out / "one.txt").read_text(encoding="utf-8")
    _check_words(text, "transcribe --device cpu")
    document = json.loads((out / "one.json").read_text(encoding="utf-8"))
    if document["language"] != "en" or not document["segments"]:
        raise SmokeFailure(f"transcribe: unexpected JSON {document}")
    if (work / "home" / "models" / "base").exists():
        raise SmokeFailure(
            "transcribe: the bundled model was copied into VERBATIM_HOME instead of used in place"
        )
    print(f"ok   transcribe --device cpu in an empty environment ({elapsed_s:.1f} s): {text.strip()!r}")


def check_cuda_fails_soft(app: Path, wav: Path, work: Path) -> None:
    out = work / "out-cuda"
    command = [str(app), "transcribe", str(wav), "-f", "txt", "-o", str(out), "--device", "cuda"]
    result = subprocess.run(
        command,
        env=_clean_env(work / "home"),
        capture_output=True,
        text=True,
        timeout=TRANSCRIBE_TIMEOUT_S,
        cwd=work,
    )
    if result.returncode != 0:
        raise SmokeFailure(f"transcribe --device cuda exited {result.returncode}: {result.stderr.strip()}")
    _check_words((out / "one.txt").read_text(encoding="utf-8"), "transcribe --device cuda")
    notes = [line for line in result.stderr.splitlines() if "CUDA" in line]
    if notes:
        if not any("using the CPU" in line for line in notes):
            raise SmokeFailure(f"transcribe --device cuda: unclear CUDA message: {notes}")
        print(f"ok   transcribe --device cuda without CUDA: {notes[0].strip()!r}, transcribed on the CPU")
    else:
        print("ok   transcribe --device cuda ran on the GPU")


class _LogReader(threading.Thread):
    """Collects a process's stderr lines with the time each arrived (seconds since `started_s`)."""

    def __init__(self, process: subprocess.Popen[str], started_s: float) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.started_s = started_s
        self.lines: list[tuple[float, str]] = []
        self.changed = threading.Condition()

    def run(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self.changed:
                self.lines.append((time.monotonic() - self.started_s, line.rstrip("\n")))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, fragment: str, timeout_s: float) -> float:
        deadline_s = time.monotonic() + timeout_s
        with self.changed:
            while True:
                for at_s, line in self.lines:
                    if fragment in line:
                        return at_s
                if self.process.poll() is not None and not self.is_alive():
                    raise SmokeFailure(
                        f"the app exited ({self.process.returncode}) before {fragment!r}:\n" + self.text()
                    )
                remaining_s = deadline_s - time.monotonic()
                if remaining_s <= 0:
                    raise SmokeFailure(f"no {fragment!r} within {timeout_s:.0f} s:\n" + self.text())
                self.changed.wait(min(remaining_s, 0.5))

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def _library_jobs(app: Path, env: dict[str, str]) -> list[dict[str, object]]:
    result = subprocess.run(
        [str(app), "library", "list", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise SmokeFailure(f"library list exited {result.returncode}: {result.stderr.strip()}")
    jobs: list[dict[str, object]] = json.loads(result.stdout)
    return jobs


def _wait_for_new_job(
    app: Path, env: dict[str, str], jobs_before: int, timeout_s: float
) -> dict[str, object]:
    """The job the window added to the library (oldest first, so the last one), once it has ended."""
    deadline_s = time.monotonic() + timeout_s
    while True:
        jobs = _library_jobs(app, env)
        if len(jobs) > jobs_before and jobs[-1]["state"] in ("done", "failed", "cancelled"):
            return jobs[-1]
        if time.monotonic() > deadline_s:
            raise SmokeFailure(f"the queued recording was not transcribed within {timeout_s:.0f} s: {jobs}")
        # Each poll starts the frozen app (about a second), which paces this loop.


def check_window(app: Path, wav: Path, work: Path, platform: str, label: str) -> tuple[float, float]:
    extra = {"QT_QPA_PLATFORM": platform, "VERBATIM_LOG": "info"}
    if platform != "offscreen":
        extra.update(
            {k: os.environ[k] for k in ("DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY") if k in os.environ}
        )
    env = _clean_env(work / "home", **extra)
    jobs_before = len(_library_jobs(app, env))
    started_s = time.monotonic()
    process = subprocess.Popen(
        [str(app), str(wav)], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=work
    )
    reader = _LogReader(process, started_s)
    reader.start()
    try:
        window_s = reader.wait_for("window shown", WINDOW_TIMEOUT_S)
        ready_s = reader.wait_for("model ready", MODEL_TIMEOUT_S)
        job = _wait_for_new_job(app, env, jobs_before, JOB_TIMEOUT_S)
        if job["state"] != "done":
            raise SmokeFailure(f"window: the queued recording ended {job['state']}: {job.get('error')}")
        _check_words(str(job["text"]), "window")
        process.send_signal(signal.SIGTERM)
        try:
            exit_code = process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise SmokeFailure(f"the app did not quit within {SHUTDOWN_TIMEOUT_S:.0f} s of SIGTERM") from None
        reader.join(timeout=5)
        if exit_code != 0:
            raise SmokeFailure(f"the app exited {exit_code} after SIGTERM:\n{reader.text()}")
        if "Traceback" in reader.text():
            raise SmokeFailure(f"the app printed a traceback:\n{reader.text()}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    model_line = next(line for _, line in reader.lines if "model ready" in line)
    print(
        f"ok   window ({platform}, {label}): shown after {window_s:.1f} s, {model_line.split(': ', 1)[1]} "
        f"after {ready_s:.1f} s; transcribed the queued file; SIGTERM closed it (exit 0)"
    )
    return window_s, ready_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", nargs="?", type=Path, default=DEFAULT_APP, help=f"default: {DEFAULT_APP}")
    parser.add_argument(
        "--platform", default="offscreen", help="Qt platform for the window (default: offscreen)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args(argv)
    app = args.app.resolve()
    if not os.access(app, os.X_OK):
        print(f"smoke: no frozen app at {app}; run `make package` first", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="verbatim-smoke-"))
    try:
        wav = make_recording(work)
        check_transcribe(app, wav, work)
        check_cuda_fails_soft(app, wav, work)
        # A fresh VERBATIM_HOME for the window, so its first start includes the model's checksum.
        gui_work = work / "gui"
        gui_work.mkdir()
        check_window(app, wav, gui_work, args.platform, "first start")
        check_window(app, wav, gui_work, args.platform, "second start")
    except (SmokeFailure, subprocess.SubprocessError, OSError) as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
