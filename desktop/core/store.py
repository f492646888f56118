"""The library: jobs, their segments and the user's edits in one SQLite file ($VERBATIM_HOME/library.sqlite3).

Write-ahead logging keeps readers (`verbatim library list` while the window runs) from blocking the writer,
and every change is one transaction, so a crash leaves either the old or the new state, never a mix.
Segments are appended as they stream in; an edit re-saves the whole transcript in one transaction.

One Store (one connection) belongs to one thread: the GUI thread in the app, the main thread in the CLI.
"""

from __future__ import annotations

import json
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
    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else library_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Create the file with 0600 before SQLite does: transcripts are private. SQLite gives the -wal and
        # -shm files the permissions of the database file.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)
        try:
            self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; only a power cut may lose the
            # last transactions, never corrupt the file.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the library {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

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
            if state == JobState.DONE:
                db.execute(
                    "UPDATE jobs SET state = ?, error = NULL, done_s = COALESCE(duration_s, done_s), "
                    "updated_at = ? WHERE id = ?",
                    (state.value, time.time(), job_id),
                )
            else:
                db.execute(
                    "UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                    (state.value, error, time.time(), job_id),
                )

    def requeue(self, job_id: int) -> None:
        """Back to the queue from scratch (retry): no segments, no error, no progress."""
        with self._transaction() as db:
            db.execute("DELETE FROM segments WHERE job_id = ?", (job_id,))
            db.execute(
                "UPDATE jobs SET state = 'queued', error = NULL, done_s = 0, updated_at = ? WHERE id = ?",
                (time.time(), job_id),
            )

    def set_done_s(self, job_id: int, done_s: float) -> None:
        self._db.execute(
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
        """Where an interrupted job carries on: past everything committed. `done_s` and the segments are
        written in separate transactions, so either may be ahead after a crash; decoding again from the
        later of the two never duplicates a segment and never skips audio that has none."""
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
        stay, so a resume can start where they stopped. Returns their ids."""
        with self._transaction() as db:
            ids = [row[0] for row in db.execute("SELECT id FROM jobs WHERE state = 'running' ORDER BY position")]
            db.execute("UPDATE jobs SET state = 'queued', updated_at = ? WHERE state = 'running'", (time.time(),))
        return ids

    # -- segments ----------------------------------------------------------------------------------
    def append_segments(self, job_id: int, segments: Iterable[Segment], done_s: float | None = None) -> None:
        """Add streamed segments after the ones stored, and move `done_s` forward, in one transaction."""
        rows = list(segments)
        with self._transaction() as db:
            first = db.execute("SELECT COALESCE(MAX(idx), -1) + 1 FROM segments WHERE job_id = ?", (job_id,))
            start_idx = first.fetchone()[0]
            db.executemany(_INSERT_SEGMENT, [_segment_row(job_id, start_idx + i, s) for i, s in enumerate(rows)])
            if done_s is not None:
                db.execute(
                    "UPDATE jobs SET done_s = MAX(done_s, ?), updated_at = ? WHERE id = ?",
                    (done_s, time.time(), job_id),
                )

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
