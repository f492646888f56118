"""The question asked before quitting with work unfinished: the files still being transcribed stop now and
resume at the next start, from what was saved."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtWidgets import QMessageBox, QWidget

from desktop.core.jobs import Job


def unfinished(jobs: Iterable[Job]) -> int:
    """How many jobs are still waiting or being transcribed."""
    return sum(1 for job in jobs if not job.state.is_final)


def quit_question(count: int) -> str:
    if count == 1:
        return ("1 file is still being transcribed. It will resume where it stopped the next time you open "
                "Verbatim.")
    return (f"{count} files are still being transcribed. They will resume where they stopped the next time you "
            "open Verbatim.")


def ask_quit(parent: QWidget, count: int) -> bool:
    """Quit (True) or Cancel (False); Cancel is the default, so a stray Enter keeps the work going."""
    box = QMessageBox(QMessageBox.Icon.Question, "Quit Verbatim?", quit_question(count), parent=parent)
    quit_button = box.addButton("&Quit", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is quit_button
