"""Safe output writing: all or nothing, with errors a user can read; and collision-free output names."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from desktop.core import fileio
from desktop.core.fileio import OutputError, unique_output_path, write_atomic


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VERBATIM_HOME", str(tmp_path / "home"))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- write_atomic --------------------------------------------------------------------------------
def test_write_creates_the_file(tmp_path):
    target = tmp_path / "a.srt"
    write_atomic(target, "Grüße\n".encode())
    assert target.read_bytes() == "Grüße\n".encode()
    assert leftovers(tmp_path) == ["a.srt"]


def test_write_replaces_and_keeps_the_mode(tmp_path):
    target = tmp_path / "a.txt"
    target.write_bytes(b"old content that is longer than the new one")
    target.chmod(0o640)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == ["a.txt"]


def test_new_file_gets_the_umask_mode_not_the_private_temp_mode(tmp_path):
    old_umask = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a.txt", b"x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640


def test_write_accepts_a_string_path(tmp_path):
    write_atomic(str(tmp_path / "a.json"), b"{}\n")
    assert (tmp_path / "a.json").read_bytes() == b"{}\n"


def test_missing_folder(tmp_path):
    target = tmp_path / "nope" / "a.srt"
    with pytest.raises(OutputError) as caught:
        write_atomic(target, b"x")
    assert str(caught.value) == f"cannot write {target}: the folder does not exist"
    assert caught.value.errno == errno.ENOENT
    assert isinstance(caught.value, OSError)
    assert leftovers(tmp_path) == []


def test_a_folder_in_the_way(tmp_path):
    (tmp_path / "a.srt").mkdir()
    with pytest.raises(OutputError, match="a folder of that name is in the way"):
        write_atomic(tmp_path / "a.srt", b"x")
    assert leftovers(tmp_path) == ["a.srt"]
    assert (tmp_path / "a.srt").is_dir()


def test_real_read_only_mount(readonly_mount):
    target = readonly_mount / "a.srt"
    with pytest.raises(OutputError) as caught:
        write_atomic(target, b"x")
    assert str(caught.value) == f"cannot write {target}: the folder is read-only"
    assert caught.value.errno == errno.EROFS
    assert leftovers(readonly_mount) == ["old.srt"]
    with pytest.raises(OutputError, match="read-only"):
        write_atomic(readonly_mount / "old.srt", b"x")
    assert (readonly_mount / "old.srt").read_bytes() == b"previous run\n"


def test_real_full_disk_leaves_nothing(tmpfs):
    (tmpfs / "a.srt").write_bytes(b"previous run\n")
    with pytest.raises(OutputError) as caught:
        write_atomic(tmpfs / "a.srt", b"x" * 1_000_000)
    assert "the disk is full" in str(caught.value)
    assert caught.value.errno == errno.ENOSPC
    # No temp file, and the previous output is untouched rather than truncated.
    assert leftovers(tmpfs) == ["a.srt"]
    assert (tmpfs / "a.srt").read_bytes() == b"previous run\n"
    with pytest.raises(OutputError, match="full"):
        write_atomic(tmpfs / "b.srt", b"x" * 1_000_000)
    assert leftovers(tmpfs) == ["a.srt"]


@pytest.mark.parametrize(
    "code, reason",
    [
        (errno.EROFS, "the folder is read-only"),
        (errno.ENOSPC, "the disk is full"),
        (errno.EDQUOT, "the disk quota is exceeded"),
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "permission denied"),
        (errno.EIO, "input/output error"),
    ],
)
def test_errors_while_writing_are_mapped_and_clean_up(tmp_path, monkeypatch, code, reason):
    """Fails after the temp file exists (as a disk filling up mid-write would), so cleanup is exercised."""
    real_fsync = os.fsync

    def failing_fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(code, os.strerror(code))
        real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", failing_fsync)
    target = tmp_path / "a.vtt"
    with pytest.raises(OutputError) as caught:
        write_atomic(target, b"WEBVTT\n")
    assert str(caught.value) == f"cannot write {target}: {reason}"
    assert caught.value.errno == code
    assert isinstance(caught.value.__cause__, OSError)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("code, reason", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied")])
def test_errors_creating_the_temp_file(tmp_path, monkeypatch, code, reason):
    # Root ignores chmod 0o555, so a read-only or forbidden folder is simulated where the file is created.
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fileio.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match=reason):
        write_atomic(tmp_path / "a.txt", b"x")
    assert leftovers(tmp_path) == []


def test_failed_rename_removes_the_temp_file(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fileio.os, "replace", refuse)
    (tmp_path / "a.txt").write_bytes(b"old")
    with pytest.raises(OutputError, match="permission denied"):
        write_atomic(tmp_path / "a.txt", b"new")
    assert leftovers(tmp_path) == ["a.txt"]
    assert (tmp_path / "a.txt").read_bytes() == b"old"


def test_interrupted_write_removes_the_temp_file(tmp_path, monkeypatch):
    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "a.txt", b"x")
    assert leftovers(tmp_path) == []


# -- unique_output_path ------------------------------------------------------------------------------
def test_unique_names_for_inputs_with_the_same_stem(tmp_path):
    taken: set[Path] = set()
    first = unique_output_path(tmp_path, Path("/a/talk.wav"), "srt", taken)
    second = unique_output_path(tmp_path, Path("/b/talk.mp3"), "srt", taken)
    third = unique_output_path(tmp_path, Path("/c/talk.flac"), ".srt", taken)
    assert (first, second, third) == (tmp_path / "talk.srt", tmp_path / "talk-2.srt", tmp_path / "talk-3.srt")
    assert taken == {first, second, third}


def test_formats_do_not_collide_with_each_other(tmp_path):
    taken: set[Path] = set()
    assert unique_output_path(tmp_path, Path("talk.wav"), "srt", taken) == tmp_path / "talk.srt"
    assert unique_output_path(tmp_path, Path("talk.wav"), "vtt", taken) == tmp_path / "talk.vtt"


def test_an_input_named_like_a_numbered_output(tmp_path):
    taken: set[Path] = set()
    names = [unique_output_path(tmp_path, Path(s), "txt", taken).name for s in ["a.wav", "a.mp3", "a-2.wav"]]
    assert names == ["a.txt", "a-2.txt", "a-2-2.txt"]


def test_a_previous_runs_file_is_overwritten(tmp_path):
    (tmp_path / "talk.srt").write_bytes(b"from yesterday")
    assert unique_output_path(tmp_path, Path("talk.wav"), "srt", set()) == tmp_path / "talk.srt"


def test_names_differing_only_in_case_collide(tmp_path):
    # They would be one file on macOS and Windows.
    taken: set[Path] = set()
    assert unique_output_path(tmp_path, Path("Talk.wav"), "srt", taken).name == "Talk.srt"
    assert unique_output_path(tmp_path, Path("talk.wav"), "srt", taken).name == "talk-2.srt"


def test_keeps_dots_and_unicode_in_the_stem(tmp_path):
    taken: set[Path] = set()
    assert unique_output_path(tmp_path, Path("Sitzung 2024.05.01 Müller.m4a"), "docx", taken).name == (
        "Sitzung 2024.05.01 Müller.docx"
    )
