"""Seconds per phase, counts and an optional timeline of one run (benchmarks and logs)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class RunStats:
    """Seconds spent per phase in one run, for benchmarks and logs. CPU-stage phases (decode, vad,
    features) add up over the pool's threads; the others are on the decoder thread."""

    def __init__(self, tracing: bool = False) -> None:
        self.seconds: dict[str, float] = {}
        self.tracing = tracing  # a window's run can last all day: the timeline only when asked for
        self.batches = 0
        self.items = 0
        self.fallback_items = 0  # item retries, summed over temperatures
        self._lock = threading.Lock()
        self.started = time.perf_counter()
        # A timeline for benchmarks: (seconds since the run began, what, details), in the order recorded.
        self.trace: list[tuple[float, str, dict[str, Any]]] = []

    def mark(self, what: str, **details: Any) -> None:
        if not self.tracing:
            return
        with self._lock:
            details["thread"] = threading.current_thread().name.rpartition("-")[2]
            self.trace.append((time.perf_counter() - self.started, what, details))

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self.seconds[phase] = self.seconds.get(phase, 0.0) + elapsed

    def add(self, phase: str, seconds: float) -> None:
        with self._lock:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def count_batch(self, items: int) -> None:
        with self._lock:
            self.batches += 1
            self.items += items

    def count_fallback(self, items: int) -> None:
        with self._lock:
            self.fallback_items += items

    def summary(self) -> str:
        phases = " ".join(f"{name}={value:.2f}s" for name, value in sorted(self.seconds.items()))
        mean = self.items / self.batches if self.batches else 0.0
        return f"{self.batches} batches, {mean:.1f} items/batch, {self.fallback_items} fallback retries; {phases}"
