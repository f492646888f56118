"""Paths dropped on or opened in the window, as the queue takes them: media found in folders, the rest refused."""

from __future__ import annotations

from desktop.engine.sources import expand_paths


def test_folders_are_searched_in_order_and_single_files_are_checked(tmp_path):
    folder = tmp_path / "talks"
    (folder / "day2").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    for name in ("b.wav", "a.mp3", "notes.txt", ".c.wav", "day2/z.mkv", ".hidden/d.wav"):
        (folder / name).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "slides.pdf").write_bytes(b"%PDF")

    accepted, refused = expand_paths([folder, tmp_path / "empty", tmp_path / "slides.pdf", tmp_path / "gone.wav",
                                      str(folder / "b.wav")])

    assert accepted == [folder / "a.mp3", folder / "b.wav", folder / "day2" / "z.mkv", folder / "b.wav"]
    assert refused == [(tmp_path / "empty", "no audio or video files in this folder"),
                       (tmp_path / "slides.pdf", "not an audio or video file Verbatim can read"),
                       (tmp_path / "gone.wav", "file not found")]
