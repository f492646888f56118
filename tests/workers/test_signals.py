"""emit() keeps Python's bool singletons alive however many signals the app emits (PySide6 6.12.0 drops
a reference to True/False on every Python-side emit)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

from desktop.workers.signals import emit


class Emitter(QObject):
    happened = Signal(int)


def test_many_emits_leave_bool_reference_counts_unchanged():
    emitter = Emitter()
    received: list[int] = []
    emitter.happened.connect(received.append)
    before = sys.getrefcount(True) + sys.getrefcount(False)
    for i in range(5000):
        emit(emitter.happened, i)
    after = sys.getrefcount(True) + sys.getrefcount(False)
    assert received == list(range(5000))
    assert abs(after - before) < 50
