"""The library: jobs, their segments and the user's edits in one SQLite file ($VERBATIM_HOME/library.sqlite3).

Write-ahead logging keeps readers (`verbatim library list` while the window runs) from blocking the writer,
and every change is one transaction, so a crash leaves either the old or the new state, never a mix.
Segments are appended as they stream in; an edit re-saves the whole transcript in one transaction.

One Store (one connection) belongs to one thread: the GUI thread in the app, the main thread in the CLI.

One process at a time owns the library (`Store(owner=True)`): it holds an exclusive lock on
`library.sqlite3.lock` for as long as it runs, and only the owner may treat a `running` job as a crash
left-over and resume it. The lock is the kernel's (flock), so it goes with the process however it ends, and
a library whose lock is free has no other owner alive. Other processes (`verbatim library`, `verbatim
record`) read, and add jobs, beside the owner.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from desktop.core.jobs import Job, JobState
from desktop.core.paths import library_path
from desktop.core.segment import Segment, TranscriptInfo, Word
from desktop.core.transcript import Transcript

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    language TEXT,
    language_probability REAL,
    duration_s REAL,
    model TEXT,
    error TEXT,
    done_s REAL NOT NULL DEFAULT 0,
    position INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    removed_at REAL
);
CREATE INDEX jobs_position ON jobs (position);
CREATE TABLE segments (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    text TEXT NOT NULL,
    words_json TEXT,
    avg_logprob REAL,
    no_speech_prob REAL,
    compression_ratio REAL,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
"""

# Steps that bring a library of the version before each key up to it. A removed job is kept (removed_at set)
# until it is purged, so removing one can be undone.
_MIGRATIONS = {
    2: ("ALTER TABLE jobs ADD COLUMN removed_at REAL",),
}

_JOB_COLUMNS = "id, source, state, language, duration_s, error, done_s"


class StoreError(Exception):
    """The library cannot be opened or used; the message is a sentence for the user."""


class LibraryInUse(StoreError):
    """Another process owns the library (an open window)."""


class StoreWriteError(StoreError):
    """A change could not be saved (a full disk, a read-only or vanished folder). Nothing of that change
    was written: every write is one transaction."""

    def __init__(self, message: str, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full


def _write_error(exc: BaseException) -> StoreWriteError:
    text = str(exc)
    disk_full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "disk is full" in text or (
        "SQLITE_FULL" in text
    )
    if disk_full:
        return StoreWriteError("the disk is full", disk_full=True)
    if "readonly" in text or "read-only" in text or (isinstance(exc, OSError) and exc.errno == errno.EROFS):
        return StoreWriteError("the library's folder is read-only")
    return StoreWriteError(f"the library could not be written ({text})")


def _is_damaged(exc: sqlite3.DatabaseError) -> bool:
    """The file is not a database SQLite can read, as opposed to a busy or unwritable one."""
    if isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


@dataclass(frozen=True)
class JobRecord:
    """A job with everything the library knows about it besides segments."""

    job: Job
    language_probability: float | None
    model: str | None
    position: int
    created_at: float
    updated_at: float


class Store:
    def __init__(self, path: Path | None = None, *, owner: bool = False) -> None:
        """Open (or create) the library. `owner=True` takes the library's lock for the Store's life
        (LibraryInUse when another process holds it), and sets a damaged file aside as a dated backup
        before starting a new one (`recovered_from` then names the backup)."""
        self.owner = owner
        self.recovered_from: Path | None = None
        self._lock_fd: int | None = None
        try:
            self.path = Path(path) if path is not None else library_path()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if owner:
                self._lock_fd = _take_lock(self.path.with_name(self.path.name + ".lock"))
            # Create the file with 0600 before SQLite does: transcripts are private. SQLite gives the -wal
            # and -shm files the permissions of the database file.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            os.chmod(self.path, 0o600)
        except OSError as exc:
            self._release_lock()
            reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise StoreError(f"cannot open the library {library_path() if path is None else path}: {reason}") from exc
        try:
            self._connect()
        except sqlite3.DatabaseError as exc:
            if not (owner and _is_damaged(exc)):
                self._release_lock()
                raise StoreError(f"cannot open the library {self.path}: {_open_reason(exc)}") from exc
            self.recovered_from = self._set_aside()
            log.warning("the library %s was damaged (%s); kept it as %s", self.path, exc, self.recovered_from)
            try:
                self._connect()
            except sqlite3.DatabaseError as again:
                self._release_lock()
                raise StoreError(f"cannot open the library {self.path}: {_open_reason(again)}") from again

    def _connect(self) -> None:
        self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; only a power cut may lose the
            # last transactions, never corrupt the file.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            # Reading every table once finds a damaged file now, at open, rather than in the middle of a run.
            self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()
            self._db.execute("SELECT COUNT(*) FROM segments").fetchone()
        except BaseException:
            self._db.close()
            raise

    def _set_aside(self) -> Path:
        """Move the damaged library (and its WAL) to a dated backup beside it; nothing is deleted."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = self.path.with_name(f"{self.path.stem}.damaged-{stamp}{self.path.suffix}")
        n = 2
        while backup.exists():
            backup = self.path.with_name(f"{self.path.stem}.damaged-{stamp}-{n}{self.path.suffix}")
            n += 1
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.replace(backup.with_name(backup.name + suffix))
        self.path.replace(backup)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        return backup

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        self._db.close()
        self._release_lock()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One all-or-nothing write. A write SQLite refuses (full disk, read-only file) raises
        StoreWriteError with the old state intact."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _write_error(exc) from exc
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rolling back a failed write failed")
            if isinstance(exc, sqlite3.OperationalError | OSError):
                raise _write_error(exc) from exc
            raise

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the library {self.path} was written by a newer Verbatim (schema {version}); update the app"
            )
        if version == 0:
            with self._transaction() as db:
                # Another process (the window, a `library list`) may have created the schema between our
                # read and this write lock: read again under the lock.
                if db.execute("PRAGMA user_version").fetchone()[0] != 0:
                    return
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._transaction() as db:
                # As above: another process may have migrated it already.
                if db.execute("PRAGMA user_version").fetchone()[0] >= target:
                    continue
                for statement in _MIGRATIONS[target]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {target}")

    # -- jobs --------------------------------------------------------------------------------------
    def add_job(self, source: str | Path) -> Job:
        now = time.time()
        with self._transaction() as db:
            position = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM jobs").fetchone()[0]
            cursor = db.execute(
                "INSERT INTO jobs (source, state, position, created_at, updated_at) VALUES (?, 'queued', ?, ?, ?)",
                (str(source), position, now, now),
            )
            job_id = cursor.lastrowid
        assert job_id is not None
        return self.job(job_id)

    def job(self, job_id: int) -> Job:
        row = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return _job(row)

    def has_job(self, job_id: int) -> bool:
        """Whether the job is in the library (a removed job, waiting to be purged, is not)."""
        row = self._db.execute("SELECT 1 FROM jobs WHERE id = ? AND removed_at IS NULL", (job_id,)).fetchone()
        return row is not None

    def jobs(self) -> list[Job]:
        """All jobs in queue order (the order the user arranged), removed ones left out."""
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE removed_at IS NULL ORDER BY position, id"
        ).fetchall()
        return [_job(row) for row in rows]

    def records(self) -> list[JobRecord]:
        """All jobs, oldest first, with their bookkeeping; removed ones left out."""
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS}, language_probability, model, position, created_at, updated_at "
            "FROM jobs WHERE removed_at IS NULL ORDER BY created_at, id"
        ).fetchall()
        return [JobRecord(_job(row[:7]), row[7], row[8], row[9], row[10], row[11]) for row in rows]

    def mark_started(
        self,
        job_id: int,
        duration_s: float,
        language: str,
        language_probability: float,
        model: str,
        start_at_s: float = 0.0,
    ) -> None:
        """The engine began a job: it is running, and any segments of an earlier attempt are gone. A
        resume (start_at_s > 0) keeps the segments before its start point, and the job's language."""
        if start_at_s > 0:
            with self._transaction() as db:
                db.execute("DELETE FROM segments WHERE job_id = ? AND end_s > ?", (job_id, start_at_s + 1e-6))
                db.execute(
                    "UPDATE jobs SET state = 'running', duration_s = ?, language = COALESCE(language, ?), "
                    "language_probability = COALESCE(language_probability, ?), model = COALESCE(model, ?), "
                    "error = NULL, done_s = ?, updated_at = ? WHERE id = ?",
                    (duration_s, language or None, language_probability, model, start_at_s, time.time(), job_id),
                )
            return
        with self._transaction() as db:
            db.execute("DELETE FROM segments WHERE job_id = ?", (job_id,))
            db.execute(
                "UPDATE jobs SET state = 'running', duration_s = ?, language = ?, language_probability = ?, "
                "model = ?, error = NULL, done_s = 0, updated_at = ? WHERE id = ?",
                (duration_s, language or None, language_probability, model, time.time(), job_id),
            )

    def set_state(self, job_id: int, state: JobState, error: str | None = None) -> None:
        with self._transaction() as db:
            _update_state(db, job_id, state, error)

    def requeue(self, job_id: int) -> None:
        """Back to the queue from scratch (retry): no segments, no error, no progress."""
        with self._transaction() as db:
            db.execute("DELETE FROM segments WHERE job_id = ?", (job_id,))
            db.execute(
                "UPDATE jobs SET state = 'queued', error = NULL, done_s = 0, updated_at = ? WHERE id = ?",
                (time.time(), job_id),
            )

    def set_done_s(self, job_id: int, done_s: float) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET done_s = MAX(done_s, ?), updated_at = ? WHERE id = ?", (done_s, time.time(), job_id)
            )

    def remove_job(self, job_id: int) -> None:
        """Take the job out of the library, undoably: it and its segments stay in the file, out of `jobs()`
        and `records()`, until `restore_job` brings it back or `purge_removed` deletes it for good."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET removed_at = ? WHERE id = ? AND removed_at IS NULL", (time.time(), job_id))

    def restore_job(self, job_id: int) -> None:
        """Undo `remove_job`: the job is back as it was (state, segments, edits, queue position)."""
        with self._transaction() as db:
            if db.execute("UPDATE jobs SET removed_at = NULL WHERE id = ?", (job_id,)).rowcount != 1:
                raise KeyError(job_id)

    def purge_removed(self, removed_before: float | None = None) -> int:
        """Delete removed jobs and their segments for good (those removed before `removed_before`, a
        time.time(), when given). Returns how many."""
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM jobs WHERE removed_at IS NOT NULL AND removed_at < ?",
                (float("inf") if removed_before is None else removed_before,),
            )
        return cursor.rowcount

    def set_order(self, job_ids: Sequence[int]) -> None:
        """Queue order: the listed jobs first, in this order; any others keep their relative order after."""
        listed = list(dict.fromkeys(job_ids))
        rest = [job.id for job in self.jobs() if job.id not in set(listed)]
        with self._transaction() as db:
            db.executemany(
                "UPDATE jobs SET position = ? WHERE id = ?", [(i, job_id) for i, job_id in enumerate(listed + rest)]
            )

    def resume_point(self, job_id: int) -> float:
        """Where an interrupted job carries on: past everything committed. Segments and the `done_s` that
        covers them are written together (append_segments), but segments saved by an edit during the run
        may reach past `done_s`; decoding again from the later of the two never duplicates a segment and
        never skips audio that has none."""
        row = self._db.execute(
            "SELECT MAX(j.done_s, COALESCE((SELECT MAX(end_s) FROM segments WHERE job_id = j.id), 0)) "
            "FROM jobs j WHERE j.id = ?",
            (job_id,),
        ).fetchone()
        if row is None:
            raise KeyError(job_id)
        return float(row[0])

    def recover_interrupted(self) -> list[int]:
        """Jobs left `running` by a crash go back to the queue; their committed segments and `done_s`
        stay, so a resume can start where they stopped. Returns their ids.

        Only the owner may: holding the lock proves that no other process is running these jobs. Jobs
        whose source another live process holds (a recording still being made or transcribed by
        `verbatim record`) are not crash left-overs and are left alone."""
        if not self.owner:
            raise StoreError("only the process that owns the library may resume its jobs")
        with self._transaction() as db:
            rows = db.execute("SELECT id, source FROM jobs WHERE state = 'running' ORDER BY position").fetchall()
            ids = [job_id for job_id, source in rows if not source_is_busy(source)]
            db.executemany(
                "UPDATE jobs SET state = 'queued', updated_at = ? WHERE id = ?", [(time.time(), i) for i in ids]
            )
        return ids

    def finish_job(self, job_id: int, segments: Iterable[Segment], state: JobState, error: str | None = None) -> None:
        """The job's last segments and its final state, in one transaction."""
        rows = list(segments)
        with self._transaction() as db:
            if rows:
                self._insert_after(db, job_id, rows)
            _update_state(db, job_id, state, error)

    # -- segments ----------------------------------------------------------------------------------
    def append_segments(self, job_id: int, segments: Iterable[Segment], done_s: float | None = None) -> None:
        """Add streamed segments after the ones stored, and move `done_s` forward, in one transaction."""
        rows = list(segments)
        with self._transaction() as db:
            self._insert_after(db, job_id, rows)
            if done_s is not None:
                db.execute(
                    "UPDATE jobs SET done_s = MAX(done_s, ?), updated_at = ? WHERE id = ?",
                    (done_s, time.time(), job_id),
                )

    @staticmethod
    def _insert_after(db: sqlite3.Connection, job_id: int, rows: Sequence[Segment]) -> None:
        first = db.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM segments WHERE job_id = ?", (job_id,))
        start_idx = first.fetchone()[0]
        db.executemany(_INSERT_SEGMENT, [_segment_row(job_id, start_idx + i, s) for i, s in enumerate(rows)])

    def save_transcript(self, job_id: int, transcript: Transcript) -> None:
        """Replace all of the job's segments by the transcript's, in one transaction (after an edit)."""
        with self._transaction() as db:
            db.execute("DELETE FROM segments WHERE job_id = ?", (job_id,))
            db.executemany(_INSERT_SEGMENT, [_segment_row(job_id, i, s) for i, s in enumerate(transcript.segments)])
            db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (time.time(), job_id))

    def segments(self, job_id: int) -> list[Segment]:
        rows = self._db.execute(
            "SELECT start_s, end_s, text, words_json, avg_logprob, no_speech_prob, compression_ratio "
            "FROM segments WHERE job_id = ? ORDER BY idx",
            (job_id,),
        )
        return [_segment(row) for row in rows]

    def info(self, job_id: int) -> TranscriptInfo:
        row = self._db.execute(
            "SELECT source, language, language_probability, duration_s, model FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise KeyError(job_id)
        source, language, probability, duration_s, model = row
        return TranscriptInfo(
            source=source,
            language=language or "",
            language_probability=probability or 0.0,
            duration_s=duration_s or 0.0,
            model=model or "",
        )

    def load_transcript(self, job_id: int) -> Transcript:
        return Transcript(self.info(job_id), self.segments(job_id))


def _update_state(db: sqlite3.Connection, job_id: int, state: JobState, error: str | None) -> None:
    if state == JobState.DONE:  # done covers the whole file: a resume point at its end
        db.execute(
            "UPDATE jobs SET state = ?, error = NULL, done_s = COALESCE(duration_s, done_s), updated_at = ? "
            "WHERE id = ?",
            (state.value, time.time(), job_id),
        )
    else:
        db.execute(
            "UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ?",
            (state.value, error, time.time(), job_id),
        )


def _open_reason(exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "disk is full" in text:
        return "the disk is full; free some space and start again"
    if _is_damaged(exc):
        return f"the file is damaged ({text})"
    return text


def _take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = ""
        try:
            holder = os.read(fd, 32).decode(errors="replace").strip()
        except OSError:
            pass
        os.close(fd)
        who = f" (process {holder})" if holder.isdigit() else ""
        raise LibraryInUse(f"the library {path.with_suffix('')} is open in another Verbatim window{who}") from None
    except OSError:
        os.close(fd)
        raise
    # The holder's pid, for the message another process shows; the lock itself is the flock.
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except OSError:
        pass
    return fd


def hold_source(path: str | Path) -> int | None:
    """Mark `path` as in use by this process (a recording being made or transcribed outside the window)
    for as long as the returned descriptor stays open; None when the file cannot be opened. The mark is a
    shared flock on the file itself, so it ends with the process however the process ends."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def source_is_busy(path: str | Path) -> bool:
    """True while another live process holds `path` with hold_source."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


_INSERT_SEGMENT = (
    "INSERT INTO segments (job_id, idx, start_s, end_s, text, words_json, avg_logprob, no_speech_prob, "
    "compression_ratio) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _job(row: Sequence[object]) -> Job:
    job_id, source, state, language, duration_s, error, done_s = row
    return Job(
        id=int(job_id),  # type: ignore[call-overload]
        source=str(source),
        state=JobState(state),
        language=language,  # type: ignore[arg-type]
        duration_s=duration_s,  # type: ignore[arg-type]
        error=error,  # type: ignore[arg-type]
        done_s=float(done_s or 0.0),  # type: ignore[arg-type]
    )


def _segment_row(job_id: int, idx: int, segment: Segment) -> tuple[object, ...]:
    words = (
        json.dumps([[w.start_s, w.end_s, w.text, w.probability] for w in segment.words], ensure_ascii=False)
        if segment.words
        else None
    )
    return (
        job_id,
        idx,
        segment.start_s,
        segment.end_s,
        segment.text,
        words,
        segment.avg_logprob,
        segment.no_speech_prob,
        segment.compression_ratio,
    )


def _segment(row: Sequence[object]) -> Segment:
    start_s, end_s, text, words_json, avg_logprob, no_speech_prob, compression_ratio = row
    words: tuple[Word, ...] = ()
    if words_json:
        words = tuple(Word(float(a), float(b), str(t), float(p)) for a, b, t, p in json.loads(str(words_json)))
    return Segment(
        start_s=float(start_s),  # type: ignore[arg-type]
        end_s=float(end_s),  # type: ignore[arg-type]
        text=str(text),
        words=words,
        avg_logprob=avg_logprob,  # type: ignore[arg-type]
        no_speech_prob=no_speech_prob,  # type: ignore[arg-type]
        compression_ratio=compression_ratio,  # type: ignore[arg-type]
    )
