"""Writing output files so that a failure never leaves a half-written transcript behind, and choosing
output names so that one run never overwrites another input's output."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

# Why a write failed, in words a user understands; anything else falls back to the system's message.
_REASONS = {
    errno.EROFS: "the folder is read-only",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "the folder does not exist",
    errno.ENOTDIR: "the folder does not exist",
    errno.EISDIR: "a folder of that name is in the way",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EFBIG: "the file is too large for this disk",
}


class OutputError(OSError):
    """An output file could not be written; str() is one sentence to show the user."""

    def __init__(self, path: Path, reason: str, code: int | None = None) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.message = f"cannot write {path}: {reason}"
        self.errno = code
        self.filename = str(path)
        self.reason = reason

    def __str__(self) -> str:
        # OSError.__str__ would print "[Errno None] ..." once filename is set.
        return self.message


def _reason(error: OSError) -> str:
    if error.errno in _REASONS:
        return _REASONS[error.errno]
    return (error.strerror or str(error)).rstrip(".").lower() or "unknown error"


def _new_file_mode(path: Path) -> int:
    """The mode a plain open() would have given: the old file's, or 0o666 less the umask. mkstemp makes
    0o600 files, which would hide a shared transcript from other users."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        pass
    return 0o666 & ~_umask()


def _umask() -> int:
    # Linux shows the umask in /proc; elsewhere reading it means setting it and putting it straight
    # back, which is racy with other threads creating files, hence the preference.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` all at once: readers see the old file or the new one, never a part."""
    path = Path(path)
    temp_name: str | None = None
    try:
        # Same folder as the target, so os.replace is a rename on one file system.
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fchmod(stream.fileno(), _new_file_mode(path))
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
        temp_name = None
    except OSError as error:
        raise OutputError(path, _reason(error), error.errno) from error
    finally:
        if temp_name is not None:
            try:
                os.unlink(temp_name)
            except OSError:
                pass
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    # Makes the rename itself survive a power cut. Best effort: not every platform can open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unique_output_path(out_dir: Path, source: Path, ext: str, taken: set[Path]) -> Path:
    """`<stem>.<ext>` in out_dir, or `<stem>-2.<ext>`, `-3`, ... when another input of this run already
    took it; the result is added to `taken`. A file left by an earlier run is not in `taken`, so it is
    overwritten: re-running on the same input updates its output."""
    ext = ext.lstrip(".")
    stem = Path(source).stem or "transcript"
    # Case-insensitive file systems (macOS, Windows) would make "A.srt" and "a.srt" one file.
    used = {str(p).casefold() for p in taken}
    candidate = Path(out_dir) / f"{stem}.{ext}"
    number = 2
    while str(candidate).casefold() in used:
        candidate = Path(out_dir) / f"{stem}-{number}.{ext}"
        number += 1
    taken.add(candidate)
    return candidate
