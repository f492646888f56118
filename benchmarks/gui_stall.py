"""How responsive the window stays while the model works.

Runs the real window (model worker included) with a QTimer heartbeat in the GUI thread, drops N short
espeak-ng clips on it once the model is ready, and waits until all are transcribed. A heartbeat that fires
late means the GUI thread was busy (or starved of the interpreter) for that long: that is the stall.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_stall.py --files 64

Prints launch-to-window-shown, model ready, drop-to-first-segment, total time, and the p50 / p99 / max
stall while transcribing (goal: p99 < 30 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SENTENCES = (
    "The weather report says rain is coming this afternoon.",
    "Please remember to bring the blue folder to the meeting.",
    "Seven green bottles were standing on the kitchen table.",
    "Our train leaves from platform nine at a quarter past ten.",
    "She counted the stars until the sky turned grey.",
    "The committee will publish its findings next spring.",
    "A small boat drifted slowly across the quiet lake.",
    "He fixed the bicycle with a wrench and some patience.",
)


def make_clips(folder: Path, count: int) -> list[Path]:
    clips = []
    for i in range(count):
        path = folder / f"clip{i:03d}.wav"
        text = f"Clip {i}. {SENTENCES[i % len(SENTENCES)]}"
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
        clips.append(path)
    return clips


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=64, help="how many clips to transcribe (default 64)")
    parser.add_argument("--heartbeat-ms", type=int, default=5)
    parser.add_argument("--model", default="base")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--timeout-s", type=float, default=900)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="verbatim-gui-stall-"))
    os.environ.setdefault("VERBATIM_HOME", str(work / "home"))
    clips = make_clips(work, args.files)

    # "Launch" starts here, after making the clips: it covers the Qt and app imports, as a real start does.
    launch_s = time.perf_counter()
    from PySide6.QtCore import QEvent, QMimeData, QObject, QTimer, QUrl
    from PySide6.QtWidgets import QApplication

    from desktop.core.settings import Settings
    from desktop.core.store import Store
    from desktop.ui.main_window import MainWindow
    from desktop.ui.resources import style_sheet
    from desktop.workers.model_worker import ModelWorker

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setStyleSheet(style_sheet())
    settings = Settings(model=args.model, device=args.device)
    store = Store(owner=True)
    worker = ModelWorker(settings)
    window = MainWindow(store, worker, settings)
    marks: dict[str, float] = {}

    class FirstPaint(QObject):
        def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint and "shown" not in marks:
                marks["shown"] = time.perf_counter()
            return False

    painted = FirstPaint()
    window.installEventFilter(painted)
    window.show()
    QTimer.singleShot(50, worker.start)

    beats: list[tuple[float, float]] = []  # (time, lateness in ms)
    last = [time.perf_counter()]

    def beat() -> None:
        now = time.perf_counter()
        beats.append((now, max(0.0, (now - last[0]) * 1000 - args.heartbeat_ms)))
        last[0] = now

    heartbeat = QTimer()
    heartbeat.setTimerType(heartbeat.timerType().PreciseTimer)
    heartbeat.setInterval(args.heartbeat_ms)
    heartbeat.timeout.connect(beat)
    heartbeat.start()

    ended: set[int] = set()

    def on_ready(_status) -> None:
        if "ready" in marks:
            return
        marks["ready"] = time.perf_counter()
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in clips])
        marks["drop"] = time.perf_counter()
        window.handle_drop(mime)

    def on_segments(_job_id, _segments) -> None:
        marks.setdefault("first_segment", time.perf_counter())

    def on_end(job_id, *_args) -> None:
        ended.add(job_id)
        if len(ended) == len(clips):
            marks["done"] = time.perf_counter()
            QTimer.singleShot(0, window.close)

    worker.model_ready.connect(on_ready)
    worker.model_failed.connect(lambda reason: (print(f"model failed: {reason}"), window.close()))
    worker.segments_decoded.connect(on_segments)
    worker.job_finished.connect(on_end)
    worker.job_failed.connect(on_end)
    worker.job_cancelled.connect(on_end)
    QTimer.singleShot(int(args.timeout_s * 1000), window.close)

    app.exec()
    heartbeat.stop()
    worker.shutdown(timeout_s=10)
    failed = sum(1 for j in store.jobs() if j.state.value != "done")
    audio_s = sum(j.duration_s or 0.0 for j in store.jobs())
    store.close()

    if "done" not in marks:
        print(f"did not finish: {len(ended)} of {len(clips)} jobs ended")
        return 1
    during = [late for t, late in beats if marks["drop"] <= t <= marks["done"]]
    loading = [late for t, late in beats if t < marks["ready"]]
    wall_s = marks["done"] - marks["drop"]
    print(f"files: {len(clips)} ({audio_s:.0f} s of audio), failed: {failed}, heartbeat: {args.heartbeat_ms} ms")
    print(f"launch to window shown: {(marks['shown'] - launch_s) * 1000:.0f} ms")
    print(f"launch to model ready:  {(marks['ready'] - launch_s) * 1000:.0f} ms")
    print(f"drop to first segment:  {(marks['first_segment'] - marks['drop']) * 1000:.0f} ms")
    print(f"drop to all done:       {wall_s:.1f} s ({audio_s / wall_s:.1f}x real time)")
    for label, values in (("while transcribing", during), ("while loading the model", loading)):
        print(
            f"GUI stall {label}: p50 {statistics.median(values) if values else 0:.1f} ms, "
            f"p99 {percentile(values, 0.99):.1f} ms, max {max(values, default=0):.1f} ms ({len(values)} beats)"
        )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
