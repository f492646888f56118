"""Exporting from the window: one transcript through a save dialog (remembering the folder and format
chosen last), or every finished transcript into a folder in the formats the settings name.

A mixin of MainWindow: it uses the window's store, queue_model, settings, transcript_for, show_error and status
bar. ask_save_path and ask_folder are attributes so tests can replace the dialogs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from desktop.core.export import FORMAT_NAMES, FORMATS, export
from desktop.core.fileio import OutputError, unique_output_path, write_atomic
from desktop.core.jobs import JobState
from desktop.ui.wording import count

# The save dialog's filters, by format: "SubRip subtitles (*.srt)".
EXPORT_FILTERS = {fmt: f"{name} (*.{fmt})" for fmt, name in FORMAT_NAMES.items()}


class ExportActions:
    # Where and as what the last export went: the next save dialog starts there.
    _last_export_dir: Path | None = None
    _last_export_format = "srt"

    def export_selected(self) -> Path | None:
        job_id = self.current_job_id()
        return self.export_job(job_id) if job_id is not None else None

    def export_job(self, job_id: int) -> Path | None:
        job = self.store.job(job_id)
        transcript = self.transcript_for(job_id)
        fmt = self._last_export_format
        folder = self._last_export_dir or Path(job.source).parent
        suggested = str(folder / f"{Path(job.source).stem}.{fmt}")
        filters = ";;".join(EXPORT_FILTERS[f] for f in FORMATS)
        chosen, chosen_filter = self.ask_save_path(suggested, filters, EXPORT_FILTERS[fmt])
        if not chosen:
            return None
        path = Path(chosen)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            fmt = next((f for f, label in EXPORT_FILTERS.items() if label == chosen_filter), self._last_export_format)
            path = path.with_name(f"{path.name}.{fmt}")
        try:
            write_atomic(path, export(transcript, fmt))
        except (OutputError, ValueError) as exc:
            self.show_error("Export failed", f"The transcript was not exported: {exc}")
            return None
        self._last_export_dir, self._last_export_format = path.parent, fmt
        self.statusBar().showMessage(f"Exported {path}", 8000)
        return path

    def export_all_finished(self) -> list[Path]:
        finished = [job for job in self.queue_model.jobs() if job.state == JobState.DONE]
        if not finished:
            self.statusBar().showMessage("No finished transcripts to export yet.", 6000)
            return []
        chosen = self.ask_folder("Export all finished transcripts to")
        if not chosen:
            return []
        folder = Path(chosen)
        taken: set[Path] = set()
        written: list[Path] = []
        errors: list[str] = []
        for job in finished:
            transcript = self.transcript_for(job.id)
            for fmt in self.settings.export_formats:
                path = unique_output_path(folder, Path(job.source), fmt, taken)
                try:
                    write_atomic(path, export(transcript, fmt))
                    written.append(path)
                except (OutputError, ValueError) as exc:
                    errors.append(str(exc))
        self._last_export_dir = folder
        if errors:
            shown = "\n".join(errors[:5]) + (f"\n… and {len(errors) - 5} more" if len(errors) > 5 else "")
            self.show_error("Some exports failed", f"{count(len(written), 'file')} written, "
                            f"{len(errors)} failed:\n{shown}")
        else:
            self.statusBar().showMessage(f"Exported {count(len(written), 'file')} to {folder}", 8000)
        return written

    def ask_save_path(self, suggested: str, filters: str, selected_filter: str) -> tuple[str, str]:
        return QFileDialog.getSaveFileName(self, "Export transcript", suggested, filters, selected_filter)

    def ask_folder(self, title: str) -> str:
        return QFileDialog.getExistingDirectory(self, title, str(self._last_export_dir or Path.home()))
