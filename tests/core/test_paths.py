"""Where data lives: folders Verbatim creates for transcripts and recordings are the user's alone."""

from __future__ import annotations

import stat

from desktop.core import paths


def test_created_folders_are_private(tmp_path, monkeypatch):
    home = tmp_path / "new" / "home"
    monkeypatch.setenv("VERBATIM_HOME", str(home))
    assert paths.home() == home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    recordings = paths.recordings_dir()
    assert recordings == home / "recordings" and stat.S_IMODE(recordings.stat().st_mode) == 0o700
    assert paths.library_path() == home / "library.sqlite3"


def test_an_existing_folder_keeps_its_owners_permissions(tmp_path, monkeypatch):
    home = tmp_path / "shared-home"
    home.mkdir(mode=0o750)
    home.chmod(0o750)
    monkeypatch.setenv("VERBATIM_HOME", str(home))
    assert paths.home() == home
    assert stat.S_IMODE(home.stat().st_mode) == 0o750
