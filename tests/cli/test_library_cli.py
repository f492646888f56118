"""`verbatim library list [--json]` and `verbatim library export`, over a library filled as the window fills it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from desktop import cli
from desktop.core.jobs import JobState
from desktop.core.paths import library_path
from desktop.core.segment import Segment
from desktop.core.store import Store

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(argv: list[str]) -> int:
    return cli.main(argv)


@pytest.fixture
def library() -> dict[str, int]:
    """Three jobs: one done and then edited, one failed, one still queued."""
    with Store() as store:
        done = store.add_job("/talks/keynote.wav")
        store.mark_started(done.id, 7.5, "en", 0.97, "base")
        store.append_segments(done.id, [Segment(0.0, 2.0, " Hello everyone."), Segment(2.5, 4.0, " Welcome.")])
        store.set_state(done.id, JobState.DONE)
        transcript = store.load_transcript(done.id)
        transcript.set_text(1, " Welcome to the keynote.")
        store.save_transcript(done.id, transcript)
        failed = store.add_job("/talks/broken.mp3")
        store.set_state(failed.id, JobState.FAILED, "cannot read the audio")
        queued = store.add_job("/talks/later.mp4")
    return {"done": done.id, "failed": failed.id, "queued": queued.id}


def test_list_json_is_the_documented_shape_oldest_first_with_edits(library, capsys):
    assert run_cli(["library", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [
        {"id": library["done"], "source": "/talks/keynote.wav", "state": "done", "language": "en",
         "duration": 7.5, "error": None, "text": "Hello everyone. Welcome to the keynote."},
        {"id": library["failed"], "source": "/talks/broken.mp3", "state": "failed", "language": None,
         "duration": None, "error": "cannot read the audio", "text": ""},
        {"id": library["queued"], "source": "/talks/later.mp4", "state": "queued", "language": None,
         "duration": None, "error": None, "text": ""},
    ]


def test_list_as_a_table(library, capsys):
    assert run_cli(["library", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "STATE", "LANG", "DURATION", "SOURCE"]
    assert lines[1].split() == [str(library["done"]), "done", "en", "0:08", "/talks/keynote.wav"]
    assert "cannot read the audio" in lines[2]
    # `library` alone lists too.
    assert run_cli(["library"]) == 0
    assert capsys.readouterr().out.splitlines() == lines


def test_an_empty_library_lists_nothing_and_is_not_created(capsys):
    assert run_cli(["library", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert not library_path().exists()


def test_export_writes_the_edited_transcript(library, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    assert run_cli(["library", "export", str(library["done"]), "-f", "srt,txt", "-o", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "keynote.srt"), str(out / "keynote.txt")]
    srt = (out / "keynote.srt").read_text(encoding="utf-8")
    assert "00:00:02,500 --> 00:00:04,000\nWelcome to the keynote." in srt
    assert "Welcome to the keynote." in (out / "keynote.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("which", "message"),
    [("missing", "no job"), ("queued", "is queued")],
)
def test_export_of_a_missing_or_unfinished_job_fails_clearly(library, tmp_path, capsys, which, message):
    job_id = library.get(which, 999)
    assert run_cli(["library", "export", str(job_id), "-o", str(tmp_path)]) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_exit_2(library, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        run_cli(["library", "export", str(library["done"]), "-f", "pdf", "-o", str(tmp_path)])
    assert exited.value.code == 2
    assert "unknown format" in capsys.readouterr().err
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    assert run_cli(["library", "export", str(library["done"]), "-o", str(a_file)]) == 2


def test_the_installed_command_line_lists_while_the_library_is_open(library):
    # WAL: another process reads while this one holds the library open (as the window does).
    with Store():
        result = subprocess.run(
            [sys.executable, "-m", "desktop", "library", "list", "--json"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
        )
    assert [job["state"] for job in json.loads(result.stdout)] == ["done", "failed", "queued"]


def test_one_damaged_transcript_does_not_break_listing_or_exporting_the_others(library, tmp_path, capsys):
    import sqlite3

    with Store() as store:
        bad = store.add_job("/talks/scrambled.wav")
        store.mark_started(bad.id, 9.0, "en", 0.9, "base")
    # Overlapping, out-of-order segments, as two writers once left them.
    raw = sqlite3.connect(library_path())
    raw.executemany("INSERT INTO segments (job_id, idx, start_s, end_s, text) VALUES (?, ?, ?, ?, ?)",
                    [(bad.id, 0, 4.0, 6.0, " later"), (bad.id, 1, 1.0, 5.0, " earlier")])
    raw.execute("UPDATE jobs SET state = 'done' WHERE id = ?", (bad.id,))
    raw.commit()
    raw.close()

    assert run_cli(["library", "list", "--json"]) == 0
    captured = capsys.readouterr()
    listed = {job["id"]: job for job in json.loads(captured.out)}
    assert listed[library["done"]]["text"] == "Hello everyone. Welcome to the keynote."
    assert listed[bad.id]["text"] == "" and "damaged" in listed[bad.id]["error"]
    assert f"job {bad.id}: the saved transcript is damaged" in captured.err

    assert run_cli(["library", "export", str(bad.id), "-f", "srt", "-o", str(tmp_path)]) == 1
    assert "damaged" in capsys.readouterr().err
    # A folder that does not exist yet is made, as `transcribe -o` does.
    out = tmp_path / "new" / "folder"
    assert run_cli(["library", "export", str(library["done"]), "-f", "txt", "-o", str(out)]) == 0
    assert (out / "keynote.txt").read_text(encoding="utf-8").startswith("Hello everyone.")


def test_a_recordings_transcript_for_a_job_removed_meanwhile_is_not_an_error(tmp_path, capsys):
    from desktop.cli_capture import _LibraryEntry
    from desktop.core.segment import TranscriptInfo
    from desktop.core.transcript import Transcript

    flac = tmp_path / "rec.flac"
    flac.write_bytes(b"fLaC")
    entry = _LibraryEntry.open(flac)
    assert entry is not None
    try:
        # The window removed the job (and purged it on closing) while `verbatim record` was transcribing.
        with Store(owner=True) as window:
            window.remove_job(entry.job_id)
            window.purge_removed()
        transcript = Transcript(TranscriptInfo(source=str(flac), language="en", duration_s=2.0),
                                [Segment(0.0, 1.0, " Hello.")])
        entry.save(flac, transcript)  # a message, not a FOREIGN KEY traceback
    finally:
        entry.close()
    assert "removed from the library" in capsys.readouterr().err
