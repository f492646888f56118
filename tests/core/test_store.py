"""The SQLite library: jobs, streamed segments, edits, queue order and crash recovery."""

from __future__ import annotations

import sqlite3
import stat
import time

import pytest

from desktop.core.jobs import JobState
from desktop.core.paths import library_path
from desktop.core.segment import Segment, TranscriptInfo, Word
from desktop.core.store import SCHEMA_VERSION, Store, StoreError
from desktop.core.transcript import Transcript


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VERBATIM_HOME", str(tmp_path / "home"))


@pytest.fixture
def store():
    with Store() as opened:
        yield opened


def seg(start_s: float, end_s: float, text: str, **kwargs) -> Segment:
    return Segment(start_s, end_s, text, **kwargs)


def test_file_is_private_wal_and_versioned(store):
    path = library_path()
    assert store.path == path and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_new_job_is_queued_with_id_and_source(store):
    job = store.add_job("/audio/a.wav")
    assert job.id > 0 and job.source == "/audio/a.wav" and job.state == JobState.QUEUED
    assert store.jobs() == [job]
    assert store.job(job.id) == job
    with pytest.raises(KeyError):
        store.job(job.id + 100)


def test_streamed_segments_are_appended_in_order_with_everything_kept(store):
    job = store.add_job("/audio/a.wav")
    store.mark_started(job.id, 12.5, "en", 0.93, "base")
    words = (Word(0.0, 0.4, " Hi", 0.9), Word(0.5, 1.0, " there", 0.8))
    first = [seg(0.0, 1.0, " Hi there", words=words, avg_logprob=-0.2, no_speech_prob=0.01, compression_ratio=1.1)]
    store.append_segments(job.id, first, done_s=1.0)
    store.append_segments(job.id, [seg(1.5, 3.0, " second"), seg(3.0, 4.0, " third")], done_s=4.0)
    assert store.segments(job.id) == first + [seg(1.5, 3.0, " second"), seg(3.0, 4.0, " third")]
    running = store.job(job.id)
    assert running.state == JobState.RUNNING and running.done_s == 4.0 and running.duration_s == 12.5
    assert running.language == "en"
    info = store.info(job.id)
    assert info == TranscriptInfo("/audio/a.wav", "en", 0.93, 12.5, "base")


def test_segments_are_visible_to_another_connection_as_soon_as_appended(store):
    job = store.add_job("/audio/a.wav")
    store.append_segments(job.id, [seg(0.0, 1.0, " one")])
    other = sqlite3.connect(library_path())
    assert other.execute("SELECT text FROM segments WHERE job_id = ?", (job.id,)).fetchall() == [(" one",)]
    other.close()


def test_saved_edit_replaces_the_whole_transcript(store):
    job = store.add_job("/audio/a.wav")
    store.append_segments(job.id, [seg(0.0, 1.0, " one"), seg(1.0, 2.0, " two"), seg(2.0, 3.0, " three")])
    transcript = store.load_transcript(job.id)
    transcript.set_text(1, " TWO")
    transcript.merge_with_next(1)
    store.save_transcript(job.id, transcript)
    reopened = Store()
    assert [s.text for s in reopened.segments(job.id)] == [" one", " TWO three"]
    assert reopened.load_transcript(job.id).segments == transcript.segments
    reopened.close()


def test_done_finishes_progress_and_failure_keeps_reason(store):
    done = store.add_job("/audio/a.wav")
    store.mark_started(done.id, 8.0, "en", 0.9, "base")
    store.set_state(done.id, JobState.DONE)
    assert store.job(done.id).state == JobState.DONE and store.job(done.id).done_s == 8.0
    failed = store.add_job("/audio/broken.wav")
    store.set_state(failed.id, JobState.FAILED, "cannot read the audio")
    assert store.job(failed.id).error == "cannot read the audio"


def test_restart_clears_earlier_segments_and_requeue_resets(store):
    job = store.add_job("/audio/a.wav")
    store.mark_started(job.id, 5.0, "en", 0.9, "base")
    store.append_segments(job.id, [seg(0.0, 1.0, " old")], done_s=1.0)
    store.set_state(job.id, JobState.CANCELLED)
    store.requeue(job.id)
    assert store.segments(job.id) == [] and store.job(job.id).state == JobState.QUEUED
    assert store.job(job.id).done_s == 0.0
    store.append_segments(job.id, [seg(0.0, 1.0, " stale")])
    store.mark_started(job.id, 5.0, "en", 0.9, "base")
    assert store.segments(job.id) == []


def test_running_jobs_are_queued_again_after_a_crash_keeping_their_progress(store):
    a, b = store.add_job("/a.wav"), store.add_job("/b.wav")
    store.mark_started(a.id, 10.0, "en", 0.9, "base")
    store.append_segments(a.id, [seg(0.0, 2.0, " kept")], done_s=2.0)
    store.close()
    reopened = Store(owner=True)
    assert reopened.recover_interrupted() == [a.id]
    recovered = reopened.job(a.id)
    assert recovered.state == JobState.QUEUED and recovered.done_s == 2.0
    assert reopened.segments(a.id) == [seg(0.0, 2.0, " kept")]
    assert reopened.job(b.id).state == JobState.QUEUED
    reopened.close()


def test_queue_order_and_removal(store):
    a, b, c = (store.add_job(f"/{name}.wav") for name in "abc")
    store.set_order([c.id, a.id])
    assert [j.id for j in store.jobs()] == [c.id, a.id, b.id]
    # The library list stays oldest first whatever the queue order.
    assert [r.job.id for r in store.records()] == [a.id, b.id, c.id]
    store.append_segments(a.id, [seg(0.0, 1.0, " gone")])
    store.remove_job(a.id)
    assert [j.id for j in store.jobs()] == [c.id, b.id]
    assert [r.job.id for r in store.records()] == [b.id, c.id]
    assert not store.has_job(a.id)
    store.purge_removed()
    assert store.segments(a.id) == []


def test_a_removed_job_comes_back_as_it_was(store):
    a, b, c = (store.add_job(f"/{name}.wav") for name in "abc")
    store.mark_started(b.id, 2.0, "en", 0.9, "base")
    store.append_segments(b.id, [seg(0.0, 1.0, " one"), seg(1.0, 2.0, " two")], done_s=2.0)
    store.set_state(b.id, JobState.DONE)
    edited = Transcript(store.info(b.id), store.segments(b.id))
    edited.set_text(1, " two, edited")
    store.save_transcript(b.id, edited)
    before = store.job(b.id)

    store.remove_job(b.id)
    assert [j.id for j in store.jobs()] == [a.id, c.id]
    # Another connection (`verbatim library list` while the window runs) no longer sees it either.
    with Store(store.path) as other:
        assert [r.job.id for r in other.records()] == [a.id, c.id] and not other.has_job(b.id)

    store.restore_job(b.id)
    assert [j.id for j in store.jobs()] == [a.id, b.id, c.id]  # back in its place
    assert store.job(b.id) == before
    assert [s.text for s in store.segments(b.id)] == [" one", " two, edited"]
    assert store.has_job(b.id)
    with pytest.raises(KeyError):
        store.restore_job(9999)


def test_purge_deletes_removed_jobs_for_good_and_only_those(store):
    kept, old, recent = (store.add_job(f"/{name}.wav") for name in ("kept", "old", "recent"))
    for job in (kept, old, recent):
        store.append_segments(job.id, [seg(0.0, 1.0, f" {job.source}")])
    store.remove_job(old.id)
    raw = sqlite3.connect(library_path())
    raw.execute("UPDATE jobs SET removed_at = removed_at - 3600 WHERE id = ?", (old.id,))
    raw.commit()
    raw.close()
    store.remove_job(recent.id)

    assert store.purge_removed(removed_before=time.time() - 60) == 1
    with pytest.raises(KeyError):
        store.job(old.id)
    assert store.segments(old.id) == []
    store.restore_job(recent.id)  # removed a moment ago: still there
    store.remove_job(recent.id)
    assert store.purge_removed() == 1
    with pytest.raises(KeyError):
        store.restore_job(recent.id)
    assert [j.id for j in store.jobs()] == [kept.id]
    assert [s.text for s in store.segments(kept.id)] == [" /kept.wav"]


def test_a_version_1_library_is_migrated_keeping_everything(tmp_path):
    path = tmp_path / "v1.sqlite3"
    raw = sqlite3.connect(path)
    # The schema as version 1 wrote it.
    raw.executescript(V1_SCHEMA)
    raw.execute(
        "INSERT INTO jobs (source, state, duration_s, position, created_at, updated_at) "
        "VALUES ('/old.wav', 'done', 2.0, 0, 1.0, 1.0)"
    )
    raw.execute("INSERT INTO segments (job_id, idx, start_s, end_s, text) VALUES (1, 0, 0.0, 2.0, ' kept')")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()

    with Store(path) as migrated:
        assert migrated._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        [job] = migrated.jobs()
        assert (job.source, job.state) == ("/old.wav", JobState.DONE)
        assert [s.text for s in migrated.segments(job.id)] == [" kept"]
        migrated.remove_job(job.id)
        assert migrated.jobs() == []
        migrated.restore_job(job.id)
        assert [j.id for j in migrated.jobs()] == [job.id]
    with Store(path) as reopened:  # a second open finds it current and changes nothing
        assert [j.source for j in reopened.jobs()] == ["/old.wav"]


V1_SCHEMA = """
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
    updated_at REAL NOT NULL
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


def test_a_failed_transaction_changes_nothing(store):
    job = store.add_job("/a.wav")
    store.append_segments(job.id, [seg(0.0, 1.0, " one")])
    transcript = Transcript(store.info(job.id), [seg(0.0, 1.0, " one"), seg(1.0, 2.0, " two")])

    class Broken(Transcript):
        @property
        def segments(self):
            return [seg(0.0, 1.0, " x"), "not a segment"]

    broken = Broken(transcript.info, transcript.segments)
    with pytest.raises(AttributeError):
        store.save_transcript(job.id, broken)
    assert store.segments(job.id) == [seg(0.0, 1.0, " one")]


def test_library_from_a_newer_version_is_refused(store):
    store.close()
    raw = sqlite3.connect(library_path())
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer"):
        Store()


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the library"):
        Store(path)


def test_resume_point_is_past_everything_committed(store):
    job = store.add_job("/a.wav")
    store.mark_started(job.id, 60.0, "en", 0.9, "base")
    assert store.resume_point(job.id) == 0.0
    store.append_segments(job.id, [seg(1.0, 4.0, " one"), seg(5.0, 9.5, " two")], done_s=12.0)
    assert store.resume_point(job.id) == 12.0  # silence decoded after the last segment counts
    # A crash between the segments' transaction and the progress update: the segments are ahead.
    store.append_segments(job.id, [seg(13.0, 20.0, " three")])
    assert store.resume_point(job.id) == 20.0
    with pytest.raises(KeyError):
        store.resume_point(999)


def test_a_resumed_start_keeps_what_came_before_and_the_language(store):
    job = store.add_job("/a.wav")
    store.mark_started(job.id, 60.0, "de", 0.8, "base")
    store.append_segments(job.id, [seg(1.0, 4.0, " eins"), seg(5.0, 9.5, " zwei")], done_s=10.0)
    edited = store.load_transcript(job.id)
    edited.set_text(0, " Eins, korrigiert")
    store.save_transcript(job.id, edited)
    store.close()
    store = Store(owner=True)
    assert store.recover_interrupted() == [job.id]

    store.mark_started(job.id, 60.0, "en", 0.5, "base", start_at_s=9.5)
    assert [s.text for s in store.segments(job.id)] == [" Eins, korrigiert", " zwei"]
    resumed = store.job(job.id)
    assert resumed.state == JobState.RUNNING and resumed.language == "de" and resumed.done_s == 9.5
    # A segment past the start point (it would be decoded twice) is dropped.
    store.mark_started(job.id, 60.0, "de", 0.8, "base", start_at_s=4.5)
    assert [s.text for s in store.segments(job.id)] == [" Eins, korrigiert"]
    store.close()


def test_two_processes_creating_the_library_at_once_both_open_it(tmp_path):
    """The window creates the library while `verbatim library list` opens it: the second one read
    version 0, then waited for the write lock while the first created the schema. It must not create it again."""
    import threading

    from desktop.core.store import _SCHEMA

    path = tmp_path / "library.sqlite3"
    first = sqlite3.connect(path, isolation_level=None)
    first.execute("PRAGMA journal_mode = WAL")
    first.execute("BEGIN IMMEDIATE")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            first.execute(statement)
    first.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    outcome: dict[str, object] = {}

    def open_second() -> None:
        try:
            with Store(path) as second:
                outcome["jobs"] = second.records()
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    opener = threading.Thread(target=open_second)
    opener.start()
    opener.join(0.5)  # it reads version 0 (the schema is not committed) and waits for the write lock
    assert opener.is_alive(), outcome
    first.execute("COMMIT")
    opener.join(10)
    first.close()
    assert outcome == {"jobs": []}
