"""Real small file systems for full-disk tests: a tmpfs of a given size (root only; skipped elsewhere), and
filling it up so that the library's next write has to grow a file on a full disk."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path, library: Path | None = None) -> Path:
    """Fill the file system of `folder` with a file (returned, to free the space again). With a library,
    its WAL is shrunk to nothing first: SQLite reuses a WAL's space, so only a write that grows it fails."""
    if library is not None:
        raw = sqlite3.connect(library)
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw.close()
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    return filler
