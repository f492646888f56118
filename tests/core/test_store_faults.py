"""The library under faults: a second owner, a damaged file, a full disk, a source another process holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.core.coordinator import JobCoordinator
from desktop.core.jobs import JobState
from desktop.core.paths import library_path
from desktop.core.segment import Segment
from desktop.core.store import LibraryInUse, Store, StoreError, StoreWriteError, hold_source, source_is_busy
from tests.fulldisk import fill, small_tmpfs

REPO = Path(__file__).resolve().parents[2]


def seg(start_s: float, end_s: float, text: str) -> Segment:
    return Segment(start_s, end_s, text)


def holder(code: str) -> subprocess.Popen[str]:
    """A second process that runs `code`, prints "ready" and waits for its standard input to close."""
    script = f"import sys\n{code}\nprint('ready', flush=True)\nsys.stdin.read()\n"
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def test_one_owner_per_library_and_a_dead_owner_frees_it():
    other = holder("from desktop.core.store import Store\nstore = Store(owner=True)")
    try:
        with pytest.raises(LibraryInUse, match=f"another Verbatim window \\(process {other.pid}\\)"):
            Store(owner=True)
        # Reading and adding jobs beside the owner still work.
        with Store() as reader:
            reader.add_job("/a.wav")
            assert [job.source for job in reader.jobs()] == ["/a.wav"]
            with pytest.raises(StoreError, match="only the process that owns"):
                reader.recover_interrupted()
    finally:
        other.send_signal(signal.SIGKILL)
        other.communicate(timeout=30)
    # A crashed owner leaves no lock behind.
    with Store(owner=True) as store:
        assert store.owner and [job.source for job in store.jobs()] == ["/a.wav"]


def test_a_job_whose_source_a_live_process_holds_is_not_resumed(tmp_path):
    recording = tmp_path / "rec.flac"
    recording.write_bytes(b"fLaC")
    with Store() as store:
        held = store.add_job(str(recording))
        other = store.add_job(str(tmp_path / "other.wav"))
        for job in (held, other):
            store.mark_started(job.id, 10.0, "en", 0.9, "base")
    process = holder(f"from desktop.core.store import hold_source\nfd = hold_source({str(recording)!r})\n"
                     "assert fd is not None")
    try:
        assert source_is_busy(recording)
        with Store(owner=True) as owner:
            assert owner.recover_interrupted() == [other.id]
            assert owner.job(held.id).state == JobState.RUNNING
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    assert not source_is_busy(recording)
    with Store(owner=True) as owner:
        assert owner.recover_interrupted() == [held.id]


def test_hold_source_is_released_when_closed(tmp_path):
    path = tmp_path / "a.flac"
    path.write_bytes(b"x")
    fd = hold_source(path)
    assert fd is not None
    os.close(fd)
    assert not source_is_busy(path) and not source_is_busy(tmp_path / "missing.flac")


def test_a_damaged_library_is_kept_aside_and_a_new_one_started():
    path = library_path()
    garbage = b"this is not an SQLite file at all " * 300
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match="damaged"):
        Store()  # a reader never moves the owner's file
    assert path.read_bytes() == garbage
    with Store(owner=True) as store:
        assert store.recovered_from is not None and store.recovered_from.parent == path.parent
        assert store.recovered_from.read_bytes() == garbage
        assert "damaged" in store.recovered_from.name
        assert store.add_job("/new.wav").id == 1
    with Store() as reader:
        assert [job.source for job in reader.jobs()] == ["/new.wav"]


@pytest.fixture
def full_disk_store(tmp_path, monkeypatch):
    """A library on a real 1 MiB file system, and a way to fill that file system up."""
    with small_tmpfs(tmp_path / "small", "1m") as disk:
        monkeypatch.setenv("VERBATIM_HOME", str(disk / "home"))
        store = Store(owner=True)
        yield store, lambda: fill(disk, store.path), disk / "filler"
        store.close()


def test_a_full_disk_refuses_the_write_whole_and_says_so(full_disk_store):
    store, fill, filler = full_disk_store
    job = store.add_job("/a.wav")
    store.mark_started(job.id, 600.0, "en", 0.9, "base")
    store.append_segments(job.id, [seg(0.0, 2.0, " kept")], done_s=2.0)
    fill()
    many = [seg(2.0 + i, 2.5 + i, " lost words " * 40) for i in range(200)]
    with pytest.raises(StoreWriteError, match="disk is full") as caught:
        store.append_segments(job.id, many, done_s=300.0)
    assert caught.value.disk_full
    # Neither the segments nor the resume point moved: the resume starts where the saved text ends.
    assert store.segments(job.id) == [seg(0.0, 2.0, " kept")]
    assert store.resume_point(job.id) == 2.0
    filler.unlink()
    store.append_segments(job.id, many[:1], done_s=3.0)
    assert store.resume_point(job.id) == 3.0


def test_the_coordinator_never_saves_a_resume_point_ahead_of_the_text(full_disk_store):
    store, fill, filler = full_disk_store
    coordinator = JobCoordinator(store)
    job = store.add_job("/a.wav")
    coordinator.started(job.id, 600.0, "en", 0.9, "base")
    coordinator.decoded(job.id, [seg(0.0, 2.0, " one")])
    # Segments wait for the progress that covers them, then go in with it.
    assert store.segments(job.id) == []
    coordinator.progressed(job.id, 2.5)
    assert store.segments(job.id) == [seg(0.0, 2.0, " one")] and store.job(job.id).done_s == 2.5
    fill()
    coordinator.decoded(job.id, [seg(3.0 + i, 3.5 + i, " two " * 60) for i in range(200)])
    with pytest.raises(StoreWriteError):
        coordinator.progressed(job.id, 250.0)
    assert coordinator.is_halted(job.id)
    filler.unlink()
    # Later events of the halted job are not written: they would land after a gap.
    coordinator.decoded(job.id, [seg(251.0, 252.0, " after the gap")])
    coordinator.progressed(job.id, 260.0)
    coordinator.ended(job.id, JobState.DONE)
    assert store.job(job.id).state == JobState.RUNNING
    assert store.resume_point(job.id) == 2.5
    # Started again (a resume), the job takes writes again.
    resumed = coordinator.started(job.id, 600.0, "en", 0.9, "base", start_at_s=store.resume_point(job.id))
    assert [s.text for s in resumed.segments] == [" one"]
    coordinator.decoded(job.id, [seg(3.0, 4.0, " two")])
    coordinator.ended(job.id, JobState.DONE)
    assert [s.text for s in store.segments(job.id)] == [" one", " two"]
    assert store.job(job.id).state == JobState.DONE


def test_an_edit_during_the_run_saves_streamed_segments_once():
    with Store(owner=True) as store:
        coordinator = JobCoordinator(store)
        job = store.add_job("/a.wav")
        transcript = coordinator.started(job.id, 10.0, "en", 0.9, "base")
        coordinator.decoded(job.id, [seg(0.0, 1.0, " one"), seg(1.0, 2.0, " two")])
        transcript.set_text(0, " One")
        coordinator.edited(job.id, transcript)
        coordinator.progressed(job.id, 2.0)
        coordinator.decoded(job.id, [seg(2.0, 3.0, " three")])
        coordinator.ended(job.id, JobState.DONE)
        assert [s.text for s in store.segments(job.id)] == [" One", " two", " three"]


def test_resumable_lists_interrupted_jobs_at_their_saved_point_and_queued_ones_from_zero(tmp_path):
    with Store() as store:
        a, b, c = (store.add_job(str(tmp_path / f"{n}.wav")) for n in "abc")
        store.mark_started(a.id, 10.0, "en", 0.9, "base")
        store.append_segments(a.id, [seg(0.0, 4.0, " a")], done_s=3.0)
        store.finish_job(c.id, [], JobState.DONE)
    with Store(owner=True) as owner:
        found = JobCoordinator(owner).resumable()
    assert [(r.job.id, r.start_at_s, r.interrupted) for r in found] == [(a.id, 4.0, True), (b.id, 0.0, False)]


def test_a_full_disk_at_open_is_a_message_not_a_traceback(tmpfs, monkeypatch):
    filler = fill(tmpfs)
    monkeypatch.setenv("VERBATIM_HOME", str(tmpfs / "home"))
    with pytest.raises(StoreError, match="disk is full|No space"):
        Store(owner=True)
    # The lock is not left taken by the failed open.
    filler.unlink()
    with Store(owner=True):
        pass
