"""Emitting Qt signals from Python, safely on every supported PySide6.

PySide6 6.12.0's `SignalInstance.emit()` returns True/False without taking a reference for it, so each
Python-side emit drops one reference to a bool singleton. A window that emits a few signals per progress
update reaches zero after some hundreds of emits and the interpreter aborts ("Fatal Python error:
bool_dealloc"). `emit()` here gives the reference back, but only where the bug is measured at import, so a
fixed PySide6 is left alone. Use it for every emit from Python in this app.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from PySide6.QtCore import QObject, Signal


class _Probe(QObject):
    fired = Signal()


def _emit_drops_a_bool_reference() -> bool:
    probe = _Probe()
    tries = 16
    before = sys.getrefcount(True) + sys.getrefcount(False)
    for _ in range(tries):
        probe.fired.emit()
    lost = before - (sys.getrefcount(True) + sys.getrefcount(False))
    if lost >= tries // 2:
        for _ in range(tries):  # give back what the probe itself took
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))
        return True
    return False


EMIT_DROPS_BOOL_REFERENCE = _emit_drops_a_bool_reference()


def emit(signal: Any, *args: Any) -> None:
    """signal.emit(*args), compensating for PySide6's lost reference where that bug exists."""
    result = signal.emit(*args)
    if EMIT_DROPS_BOOL_REFERENCE and isinstance(result, bool):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(result))
