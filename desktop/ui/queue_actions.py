"""What the user does to the queue: add files (open, drop; folders searched), cancel, retry, move, remove and
undo a removal. The library side is the coordinator's (retry, order) and job_removal's (remove, undo).

A mixin of MainWindow: it uses the window's store, worker, jobs, queue_model, queue_view, removals,
transcript_model, notice, select_job, current_job_id, _show_job, show_error, _update_actions and status bar.
ask_open_files is an attribute so tests can replace the dialog."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog

from desktop.core.jobs import Job, JobState
from desktop.core.store import StoreError
from desktop.engine.sources import expand_paths
from desktop.ui.wording import count


class QueueActions:
    def ask_open_files(self) -> list[str]:
        from desktop.engine.audio import SUPPORTED_EXTENSIONS

        patterns = " ".join(f"*{ext}" for ext in sorted(SUPPORTED_EXTENSIONS))
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add audio or video files", "", f"Audio and video ({patterns});;All files (*)"
        )
        return files

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        if self.handle_drop(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def handle_drop(self, mime: QMimeData) -> bool:
        paths = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
        if not paths:
            return False
        self.add_paths(paths)
        return True

    def open_files(self) -> None:
        files = self.ask_open_files()
        if files:
            self.add_paths(files)

    def add_paths(self, paths: Iterable[str | Path]) -> list[Job]:
        """Queue every supported file (folders searched recursively); refuse the rest with a message.
        Jobs wait in the queue until the model is ready."""
        accepted, refused = expand_paths(paths)
        waiting = {Path(j.source) for j in self.queue_model.jobs() if not j.state.is_final}
        added: list[Job] = []
        for path in accepted:
            source = path.resolve()
            if source in waiting:
                refused.append((path, "already in the queue"))
                continue
            waiting.add(source)
            try:
                job = self.store.add_job(str(source))
            except StoreError as exc:
                refused.append((path, f"not saved to the library: {exc}"))
                continue
            self.queue_model.add(job)
            self.worker.enqueue(job.id, job.source)
            added.append(job)
        if added and self.current_job_id() is None:
            self.select_job(added[0].id)
        if refused:
            self._show_refused(refused)
        elif added:
            self.statusBar().showMessage(f"Added {count(len(added), 'file')} to the queue.", 5000)
        return added

    def _show_refused(self, refused: Sequence[tuple[Path, str]]) -> None:
        shown = "; ".join(f"{p.name or p}: {why}" for p, why in refused[:3])
        more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
        text = f"Not added — {shown}{more}."
        self.notice.show_message(text, "error", hide_after_ms=12_000)
        self.statusBar().showMessage(text, 12_000)

    def cancel_selected(self) -> None:
        job_id = self.current_job_id()
        entry = self.queue_model.entry(job_id) if job_id is not None else None
        if entry is not None and not entry.job.state.is_final:
            self.worker.cancel_job(entry.job.id)
            self.statusBar().showMessage(f"Cancelling {Path(entry.job.source).name}…", 4000)

    def retry_selected(self) -> None:
        job_id = self.current_job_id()
        entry = self.queue_model.entry(job_id) if job_id is not None else None
        if entry is None or not entry.job.state.is_final:
            return
        try:
            self.jobs.requeue(job_id)
        except StoreError as exc:
            self.show_error("Retry failed", f"The job could not be queued again: {exc}")
            return
        self.queue_model.update(job_id, state=JobState.QUEUED, error=None, done_s=0.0)
        self.worker.enqueue(job_id, entry.job.source)
        self._show_job(job_id)

    def move_selected(self, delta: int) -> None:
        job_id = self.current_job_id()
        if job_id is None or not self.queue_model.move(job_id, delta):
            return
        order = self.queue_model.job_ids()
        try:
            self.jobs.reorder(order)
        except StoreError as exc:
            self.statusBar().showMessage(f"The new order is not saved: {exc}", 8000)
        self.worker.reorder(order)
        self.select_job(job_id)
        self._update_actions()

    def remove_selected(self) -> None:
        job_id = self.current_job_id()
        if job_id is None:
            return
        row = self.queue_model.row_of(job_id)
        self.removals.remove(job_id)
        if self.queue_model.rowCount():
            self.select_job(self.queue_model.job(min(row or 0, self.queue_model.rowCount() - 1)).id)
        else:
            self._show_job(None)

    def undo_remove(self) -> None:
        job_id = self.removals.undo()
        if job_id is not None:
            self.select_job(job_id)
            self.queue_view.setFocus()
        self._update_actions()

    def _undo_goes_to_queue(self) -> bool:
        """Ctrl+Z undoes a removal where the queue has the focus, or where the transcript has nothing to undo."""
        transcript = self.transcript_model.transcript
        return self.removals.can_undo() and (
            self.focusWidget() is self.queue_view or transcript is None or not transcript.can_undo())

    def undo(self) -> None:
        if self._undo_goes_to_queue():
            self.undo_remove()
        else:
            self.transcript_model.undo()
