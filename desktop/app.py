"""Wiring for the window: QApplication, library, settings, the model worker and the main window.

One app per library: a second `verbatim [FILE ...]` on the same VERBATIM_HOME hands its files to the window
already open and exits (desktop/workers/single_instance.py), before it loads anything heavy.

`main(files)` ends the process when the window closes or the process gets SIGTERM/SIGINT, within a couple of
seconds whatever the model is doing: the worker is told to stop, given SHUTDOWN_TIMEOUT_S to end between two
batches, the library is closed (everything the window was given is in it), the CPU stage's processes are
stopped, and the process leaves with os._exit. A normal interpreter exit would first join the engine's
executor threads, i.e. wait for the batch being decoded and the file being prepared: on the CPU that took
minutes. What the decoder was in the middle of is decoded again at the next start, from the committed point.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from desktop.core.store import Store
    from desktop.ui.main_window import MainWindow
    from desktop.workers.model_worker import ModelWorker
    from desktop.workers.single_instance import HandOver

log = logging.getLogger(__name__)

# How long closing waits for the worker to finish its current batch before leaving without it.
SHUTDOWN_TIMEOUT_S = 1.5
# How long the CPU stage's processes get to end once told to.
PROCESS_STOP_TIMEOUT_S = 0.5


def main(files: list[str]) -> int:
    from desktop.core.privacy import disable_telemetry

    disable_telemetry()  # before Qt and the model worker start threads or import the engine's libraries
    from PySide6.QtWidgets import QApplication

    from desktop.core.paths import home
    from desktop.workers.single_instance import HandOverFailed, claim

    _configure_logging()
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "verbatim"])
    # Before the store, the settings and the model: a second launch only passes its files on, quickly.
    try:
        instance = claim(home(), files)
    except HandOverFailed as exc:
        print(f"verbatim: {exc}", file=sys.stderr)
        return 1
    if instance is None:
        return 0

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    from desktop.core.settings import load_settings
    from desktop.core.store import Store, StoreError
    from desktop.ui.main_window import MainWindow
    from desktop.ui.resources import icon, style_sheet
    from desktop.workers.model_worker import ModelWorker

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
    instance.files_received.connect(lambda handover: _take_hand_over(window, handover))
    # Start the model a moment after the first paint: importing faster_whisper holds the interpreter
    # for a while, and the window should be on screen before that.
    QTimer.singleShot(50, worker.start)
    _log_start_up(worker)

    with _quit_on_signals(window.close):
        exit_code = app.exec()
    instance.close()
    _exit(exit_code, worker, store)


def _take_hand_over(window: MainWindow, handover: HandOver) -> None:
    """Another launch's files, queued as if dropped, and the window brought to the front."""
    from PySide6.QtCore import Qt

    log.info("another launch handed over %d file(s)", len(handover.files))
    window.setWindowState(window.windowState() & ~Qt.WindowState.WindowMinimized)
    window.show()
    window.raise_()
    window.activateWindow()
    if handover.files:
        window.add_paths(handover.files)


def _exit(exit_code: int, worker: ModelWorker, store: Store) -> NoReturn:
    """Leave within about SHUTDOWN_TIMEOUT_S + PROCESS_STOP_TIMEOUT_S, whatever the model is doing."""
    if not worker.shutdown(timeout_s=SHUTDOWN_TIMEOUT_S):
        log.info("the model worker is inside a batch; leaving without it (it resumes at the next start)")
    store.close()
    prepare = sys.modules.get("desktop.engine.prepare")  # not imported: no model was loaded, no processes
    if prepare is not None:
        prepare.terminate_worker_processes(PROCESS_STOP_TIMEOUT_S)
    log.info("exiting")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


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
