"""`verbatim models [list|download NAME|path NAME]`: see, fetch and locate speech models."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import TextIO


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, download and locate speech models",
        description="List, download and locate speech models (default action: list).",
    )
    actions = parser.add_subparsers(dest="models_action", metavar="{list,download,path}")
    actions.add_parser(
        "list",
        help="the bundled model, hub models and local model folders, with their size on disk and download size "
        "(default)",
    )
    download = actions.add_parser("download", help="download a model from the model hub")
    download.add_argument("name", metavar="NAME", help="a model name such as small or large-v3")
    path = actions.add_parser("path", help="print the folder of an installed model")
    path.add_argument("name", metavar="NAME", help="a model name or folder")
    parser.set_defaults(func=run_models, models_action="list")


def run_models(args: argparse.Namespace) -> int:
    from desktop.engine.models import ModelError

    try:
        if args.models_action == "download":
            return _download(args.name)
        if args.models_action == "path":
            return _path(args.name)
        return _list()
    except ModelError as exc:
        print(f"verbatim: error: {exc}", file=sys.stderr)
        return 1


def _list() -> int:
    from desktop.engine.models import list_models

    # PATH stays last (it may hold spaces); columns are only ever added before it.
    rows = [("NAME", "KIND", "INSTALLED", "SIZE", "DOWNLOAD", "PATH")]
    for info in list_models():
        size = _megabytes(info.size_bytes) if info.size_bytes is not None else "-"
        # What fetching it costs (approximate): for hub models, whether or not they are installed.
        download = f"~{info.download_mb} MB" if info.download_mb is not None and info.kind == "hub" else "-"
        rows.append(
            (info.name, info.kind, "yes" if info.installed else "no", size, download, str(info.path or "-"))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def _path(name: str) -> int:
    from desktop.engine.models import resolve_model

    print(resolve_model(name, download=False))
    return 0


def _download(name: str) -> int:
    from desktop.engine.models import DownloadCancelled, download_model

    bar = _DownloadBar(sys.stderr, name)
    cancel = threading.Event()

    def on_interrupt(signum: int, frame: object) -> None:
        # The first Ctrl+C asks the download to stop (it then removes its partial files); a second one is
        # for a download stuck on a dead connection, and interrupts at once.
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        folder = download_model(name, progress=bar.update, cancel=cancel)
    except DownloadCancelled:
        bar.finish()
        print(f"verbatim: download of {name} cancelled", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    bar.finish()
    print(folder)
    return 0


def _megabytes(size_bytes: int) -> str:
    return f"{size_bytes / 1e6:.1f} MB"


class _DownloadBar:
    """A self-rewriting bar on a terminal; otherwise a line at the start, every quarter and the end."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self.stream = stream
        self.name = name
        self.tty = stream.isatty()
        self._last_draw_s = 0.0
        self._quarters_shown = -1
        self._width = 0

    def update(self, done_bytes: int, total_bytes: int) -> None:
        fraction = done_bytes / total_bytes if total_bytes else 0.0
        text = (
            f"downloading {self.name}: {fraction:4.0%}  {_megabytes(done_bytes)} of {_megabytes(total_bytes)}"
        )
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw_s < 0.1 and done_bytes < total_bytes:
                return
            self._last_draw_s = now
            bar = "#" * int(fraction * 30)
            line = f"[{bar:<30}] {text}"
            self.stream.write("\r" + line + " " * max(self._width - len(line), 0))
            self._width = len(line)
        else:
            quarters = int(fraction * 4)
            if quarters == self._quarters_shown:
                return
            self._quarters_shown = quarters
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
