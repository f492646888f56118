"""Wiring for the window: QApplication, library, settings, the model worker and the main window.

`main(files)` returns when the window closes or the process gets SIGTERM/SIGINT; either way the worker
stops cooperatively (it ends between two batches) before the process exits.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desktop.workers.model_worker import ModelWorker

log = logging.getLogger(__name__)

# How long closing waits for the worker to finish its current batch.
SHUTDOWN_TIMEOUT_S = 8.0


def main(files: list[str]) -> int:
    from desktop.core.privacy import disable_telemetry

    disable_telemetry()  # before Qt and the model worker start threads or import the engine's libraries
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from desktop.core.settings import load_settings
    from desktop.core.store import Store, StoreError
    from desktop.ui.main_window import MainWindow
    from desktop.ui.resources import icon, style_sheet
    from desktop.workers.model_worker import ModelWorker

    _configure_logging()
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "verbatim"])
    app.setApplicationName("Verbatim")
    app.setApplicationDisplayName("Verbatim")
    app.setDesktopFileName("verbatim")
    app.setWindowIcon(icon("verbatim"))
    app.setStyleSheet(style_sheet())

    settings = load_settings()
    try:
        store = Store(owner=True)
    except StoreError as exc:
        print(f"verbatim: error: {exc}", file=sys.stderr)
        QMessageBox.critical(None, "Verbatim", f"{str(exc)[0].upper()}{str(exc)[1:]}.")
        return 1
    worker = ModelWorker(settings)
    window = MainWindow(store, worker, settings)
    window.show()
    if store.recovered_from is not None:
        window.notice.show_message(
            f"The library file was damaged and could not be read. It is kept as {store.recovered_from} and a new "
            "library was started.", "warning")
    if files:
        window.add_paths(files)
    # Start the model a moment after the first paint: importing faster_whisper holds the interpreter
    # for a while, and the window should be on screen before that.
    QTimer.singleShot(50, worker.start)
    _log_start_up(worker)

    with _quit_on_signals(window.close):
        exit_code = app.exec()

    finished = worker.shutdown(timeout_s=SHUTDOWN_TIMEOUT_S)
    store.close()
    if not finished:
        # The decoder is inside one long batch. Everything is saved; a QThread still running at
        # interpreter exit would abort the process, so leave without waiting for it.
        log.warning("the model worker did not stop within %.0f s; exiting anyway", SHUTDOWN_TIMEOUT_S)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code)
    return exit_code


def _configure_logging() -> None:
    """`VERBATIM_LOG=info` (or debug, warning) logs to stderr; off by default, as a window app has no console."""
    level_name = os.environ.get("VERBATIM_LOG", "").strip().upper()
    level = logging.getLevelName(level_name) if level_name else None
    if isinstance(level, int):
        logging.basicConfig(level=level, format="verbatim: %(message)s")


def _log_start_up(worker: ModelWorker) -> None:
    """Two start-up milestones, which packaging/smoke.py times on the frozen app."""
    from PySide6.QtCore import QTimer

    # A zero timer fires once the event loop runs, i.e. right after the window's first paint is queued.
    QTimer.singleShot(0, lambda: log.info("window shown"))
    worker.model_ready.connect(
        lambda status: log.info(
            "model ready: %s on %s (%s)", status.model, status.device, status.compute_type
        )
    )


@contextmanager
def _quit_on_signals(quit_app: Callable[[], object]) -> Iterator[None]:
    """Run `quit_app` on SIGTERM or SIGINT even while Qt's event loop is waiting.

    Python runs signal handlers only between bytecodes, and the interpreter is idle inside Qt's loop. The
    C-level handler writes the signal number to a socket (signal.set_wakeup_fd); a QSocketNotifier wakes
    the loop, and the Python handler runs right after the notifier's callback returns.
    """
    from PySide6.QtCore import QSocketNotifier, QTimer

    receiver, sender = socket.socketpair()
    receiver.setblocking(False)
    sender.setblocking(False)
    previous_fd = signal.set_wakeup_fd(sender.fileno())
    notifier = QSocketNotifier(receiver.fileno(), QSocketNotifier.Type.Read)

    def drain() -> None:
        try:
            while receiver.recv(64):
                pass
        except OSError:
            pass

    notifier.activated.connect(drain)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; closing", signal.Signals(signum).name)
        QTimer.singleShot(0, quit_app)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        notifier.setEnabled(False)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_fd)
        receiver.close()
        sender.close()
