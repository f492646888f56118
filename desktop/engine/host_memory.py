"""Keeping the CPU engine's resident memory down: the encoder in slices of a batch, and freed heap memory
given back to the system. Neither changes a result: the encoder reads each row on its own (its outputs
are bit for bit those of the whole batch), and the batch is still decoded as one."""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import numpy as np

from desktop.engine.prepare import FRAMES_PER_CHUNK

# On the CPU the encoder takes this many 30 s rows at a time, more when its window is shorter. Its
# self-attention holds heads x (frames/2)^2 float32 scores per row: 72 MB for a 30 s row of base, so a
# batch of 8 such rows at once lifted the process by 0.67 GB for the moment it ran (1.2 GB peak on a
# 10-minute file, where plain faster-whisper, one row at a time, peaked at 0.73 GB). Two rows at a time
# ran no slower (the encoder's matrix products have 3000 rows already).
CPU_ENCODER_FULL_ROWS = 2


def encoder_rows(frames: int, full_rows: int = CPU_ENCODER_FULL_ROWS) -> int:
    """Rows per encoder call for a window of `frames`: the attention memory of `full_rows` 30 s rows
    (it grows with the square of the window)."""
    return max(1, int(full_rows * (FRAMES_PER_CHUNK / max(1, frames)) ** 2))


def encode_in_slices(encode: Callable[[np.ndarray], np.ndarray], features: np.ndarray, rows: int) -> np.ndarray:
    """encode(features), `rows` rows of the batch at a time, joined into one array (a copy of the
    encoder's output, a few MB, rather than its working memory for the whole batch)."""
    if len(features) <= rows:
        return encode(features)
    parts = [encode(features[start : start + rows]) for start in range(0, len(features), rows)]
    return np.concatenate(parts)


_libc: ctypes.CDLL | None | bool = None


def release_freed_heap() -> bool:
    """Hand the heap's free pages back to the system (glibc's malloc_trim(0)); False where there is no
    glibc. Why: glibc keeps memory that a batch's work freed in its arenas (one per thread that
    allocated: decoder, CPU pool, CTranslate2's workers), and raises its mmap threshold after each large
    block freed, so later large blocks come from those arenas too; resident memory then stays near the
    largest batch's peak and a new batch's working memory lands on top of it. Trimming takes a few
    milliseconds; a batch takes seconds."""
    global _libc
    if _libc is None:
        # The process's own symbols (glibc's among them), not ctypes.util.find_library("c"): that runs
        # ldconfig in a subprocess, a fork of this process at its largest.
        try:
            library: ctypes.CDLL | None = ctypes.CDLL(None)
        except (OSError, TypeError):  # (Windows takes no None)
            library = None
        _libc = library if library is not None and hasattr(library, "malloc_trim") else False
    if not _libc:
        return False
    _libc.malloc_trim(0)  # type: ignore[union-attr]
    return True
