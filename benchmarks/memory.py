"""Peak memory of transcribing one long MP3: the CLI, the window's worker, and plain faster-whisper.

    python benchmarks/memory.py [--minutes 60] [--paths cli,window,plain] [FILE]

Without FILE it builds (once, cached under .bench/memory/) an MP3 of real speech `--minutes` long: the
../shared/audio and ../shared/realspeech-dev recordings one after another with half a second of silence
between them, looped, as 44.1 kHz stereo 128 kb/s MP3 (a podcast's format: decoded and resampled).

Each path runs as a subprocess of this script, on the CPU with the base model (int8) and word timestamps:

- cli: `python -m desktop transcribe FILE --word-timestamps -f srt --device cpu`
- window: `python -m desktop FILE` under QT_QPA_PLATFORM=offscreen with its own VERBATIM_HOME (settings: CPU,
  word timestamps), until `python -m desktop library list --json` says the job is done; then SIGTERM.
- plain: `WhisperModel(base, device="cpu", compute_type="int8").transcribe(FILE, word_timestamps=True)`,
  every segment consumed.

Memory: every 0.1 s the script reads /proc/<pid>/status of each process in the path's tree (the process and
its descendants, so worker processes count). "main" is the main process's own peak (the kernel's VmHWM, also
taken from wait4's ru_maxrss at exit, whichever is larger); "tree" is the largest sum of the tree's VmRSS seen
in one sample (a sampled figure: a spike shorter than 0.1 s can be missed). The ratio is tree peak over plain
faster-whisper's in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SOURCES = [SHARED / "audio", SHARED / "realspeech-dev"]
CACHE = REPO / ".bench" / "memory"
SAMPLE_S = 0.1
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac")


@dataclass
class Result:
    path: str
    main_mb: float
    tree_mb: float
    wall_s: float
    processes: int
    ok: bool


def build_file(minutes: float) -> Path:
    """The cached MP3 of real speech, `minutes` long (made on first use)."""
    target = CACHE / f"speech-{minutes:g}min.mp3"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for folder in SOURCES for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        pieces = []
        for i, source in enumerate(sources):  # one format for the concat demuxer: 16 kHz mono WAV, plus a pause
            piece = Path(tmp) / f"{i:03d}.wav"
            subprocess.run(["ffmpeg", "-v", "error", "-i", str(source), "-af", "apad=pad_dur=0.5",
                            "-ar", "16000", "-ac", "1", str(piece)], check=True)
            pieces.append(piece)
        listing = Path(tmp) / "list.txt"
        listing.write_text("".join(f"file '{p}'\n" for p in pieces))
        loop = Path(tmp) / "loop.wav"
        subprocess.run(["ffmpeg", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing), str(loop)],
                       check=True)
        partial = target.with_suffix(".part.mp3")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(loop), "-t", str(minutes * 60),
                        "-ar", "44100", "-ac", "2", "-b:a", "128k", str(partial)], check=True)
        partial.rename(target)
    return target


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(parent, []).append(int(entry))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def _status_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB; zeros when the process is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


class TreeSampler:
    """Samples a process tree's memory until stopped (see the module's docstring)."""

    def __init__(self, pid: int, exclude: set[int] | None = None) -> None:
        self.pid = pid
        self.exclude = exclude if exclude is not None else set()
        self.main_hwm_kb = 0
        self.tree_peak_kb = 0
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in _descendants(self.pid):
                if pid in self.exclude:
                    continue
                rss, hwm = _status_kb(pid)
                total += rss
                self.seen.add(pid)
                if pid == self.pid:
                    self.main_hwm_kb = max(self.main_hwm_kb, hwm)
            self.tree_peak_kb = max(self.tree_peak_kb, total)
            self._stop.wait(SAMPLE_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _python() -> str:
    return sys.executable


SOURCE = [REPO]  # the tree whose code runs (--source: compare with another checkout)


def _env(home: Path, model_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(SOURCE[0]), VERBATIM_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    if model_dir is not None:
        env["VERBATIM_BASE_MODEL"] = str(model_dir)
    return env


def _finish(name: str, process: subprocess.Popen, sampler: TreeSampler, started: float, ok: bool) -> Result:
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall_s = time.perf_counter() - started
    sampler.stop()
    main_kb = max(sampler.main_hwm_kb, usage.ru_maxrss)
    tree_kb = max(sampler.tree_peak_kb, main_kb)
    return Result(name, main_kb / 1024, tree_kb / 1024, wall_s, len(sampler.seen), ok)


def run_cli(audio: Path, work: Path, model_dir: Path) -> Result:
    out = work / "cli-out"
    out.mkdir(parents=True, exist_ok=True)
    command = [_python(), "-m", "desktop", "transcribe", str(audio), "--word-timestamps", "-f", "srt",
               "--device", "cpu", "-o", str(out)]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=_env(work / "cli-home", model_dir), stdout=subprocess.DEVNULL,
                               cwd=SOURCE[0])
    sampler = TreeSampler(process.pid)
    result = _finish("cli", process, sampler, started, True)
    result.ok = process.returncode == 0
    return result


def _library(env: dict[str, str]) -> list[dict]:
    listed = subprocess.run([_python(), "-m", "desktop", "library", "list", "--json"], env=env, cwd=SOURCE[0],
                            capture_output=True, text=True, check=False)
    try:
        return json.loads(listed.stdout or "[]")
    except json.JSONDecodeError:
        return []


def run_window(audio: Path, work: Path, model_dir: Path, timeout_s: float) -> Result:
    home = work / "window-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.json").write_text(json.dumps({"device": "cpu", "word_timestamps": True}))
    env = _env(home, model_dir)
    started = time.perf_counter()
    process = subprocess.Popen([_python(), "-m", "desktop", str(audio)], env=env, cwd=SOURCE[0],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampler = TreeSampler(process.pid)
    ok = False
    while time.perf_counter() - started < timeout_s and process.poll() is None:
        time.sleep(2.0)
        jobs = _library(env)
        if jobs and all(job["state"] in ("done", "failed", "cancelled") for job in jobs):
            ok = all(job["state"] == "done" for job in jobs)
            break
    process.send_signal(signal.SIGTERM)
    return _finish("window", process, sampler, started, ok)


PLAIN = """
import sys
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8")
segments, info = model.transcribe(sys.argv[2], word_timestamps=True)
print(sum(1 for _ in segments), "segments")
"""


def run_plain(audio: Path, work: Path, model_dir: Path) -> Result:
    started = time.perf_counter()
    process = subprocess.Popen([_python(), "-c", PLAIN, str(model_dir), str(audio)],
                               env=_env(work / "plain-home", None), stdout=subprocess.DEVNULL)
    sampler = TreeSampler(process.pid)
    result = _finish("plain", process, sampler, started, True)
    result.ok = process.returncode == 0
    return result


def model_dir() -> Path:
    """An assembled copy of the base model, so no path pays for joining it (that is not transcription)."""
    configured = os.environ.get("VERBATIM_BASE_MODEL")
    if configured:
        return Path(configured)
    home = CACHE / "home"
    env = dict(os.environ, PYTHONPATH=str(REPO), VERBATIM_HOME=str(home))
    found = subprocess.run([_python(), "-c", "from desktop.engine.models import ensure_base_model as e; print(e())"],
                           env=env, capture_output=True, text=True, check=True)
    return Path(found.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", type=Path, help="an audio file (default: build one of --minutes)")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--paths", default="cli,window,plain", help="comma-separated: cli,window,plain")
    parser.add_argument("--keep", type=Path, help="copy the CLI's SRT here (to compare transcripts)")
    parser.add_argument("--timeout-s", type=float, default=3 * 3600)
    parser.add_argument("--source", type=Path, default=REPO, help="run this checkout's code (default: this one)")
    args = parser.parse_args()
    SOURCE[0] = args.source.resolve()
    audio = args.file or build_file(args.minutes)
    model = model_dir()
    print(f"file: {audio} ({audio.stat().st_size / 1e6:.0f} MB)  model: {model}  code: {SOURCE[0]}", flush=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="verbatim-memory-") as tmp:
        work = Path(tmp)
        for name in args.paths.split(","):
            if name == "cli":
                result = run_cli(audio, work, model)
                if args.keep:
                    for srt in (work / "cli-out").glob("*.srt"):
                        shutil.copy(srt, args.keep)
            elif name == "window":
                result = run_window(audio, work, model, args.timeout_s)
            elif name == "plain":
                result = run_plain(audio, work, model)
            else:
                parser.error(f"unknown path {name}")
            results.append(result)
            print(f"  {result}", flush=True)
    plain = next((r for r in results if r.path == "plain"), None)
    print("\n| path | peak MB, main | peak MB, tree | processes | wall s | tree peak vs plain | ok |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        ratio = f"{r.tree_mb / plain.tree_mb:.2f}x" if plain else "-"
        print(f"| {r.path} | {r.main_mb:.0f} | {r.tree_mb:.0f} | {r.processes} | {r.wall_s:.0f} | {ratio} | {r.ok} |")


if __name__ == "__main__":
    main()
