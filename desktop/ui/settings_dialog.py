"""The settings dialog: model, device, language, task, word timestamps, beam and batch size, export formats.

The model picker says, for each model, about how much it downloads and whether it is on disk, and can delete a
downloaded one (not the bundled base, not the one in use)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.core.settings import COMPUTE_TYPES, EXPORT_FORMATS, MAX_BATCH_SIZE, MAX_BEAM_SIZE, Settings

log = logging.getLogger(__name__)

# Names for the languages people pick most; other Whisper languages show their code.
_LANGUAGE_NAMES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "pl": "Polish", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "fi": "Finnish",
    "cs": "Czech", "sk": "Slovak", "hu": "Hungarian", "ro": "Romanian", "el": "Greek", "tr": "Turkish",
    "ru": "Russian", "uk": "Ukrainian", "ar": "Arabic", "he": "Hebrew", "fa": "Persian", "hi": "Hindi",
    "bn": "Bengali", "ur": "Urdu", "ta": "Tamil", "zh": "Chinese", "ja": "Japanese", "ko": "Korean",
    "vi": "Vietnamese", "th": "Thai", "id": "Indonesian", "ms": "Malay", "ca": "Catalan", "hr": "Croatian",
    "sr": "Serbian", "bg": "Bulgarian", "lt": "Lithuanian", "lv": "Latvian", "et": "Estonian", "sl": "Slovenian",
    "cy": "Welsh", "ga": "Irish", "is": "Icelandic", "sw": "Swahili", "af": "Afrikaans", "tl": "Tagalog",
}
_FALLBACK_HUB_MODELS = (
    "tiny", "tiny.en", "base.en", "small", "small.en", "medium", "medium.en",
    "large-v1", "large-v2", "large-v3", "large-v3-turbo", "distil-large-v3",
)
_DEVICE_LABELS = {"auto": "Automatic (GPU when available)", "cpu": "CPU", "cuda": "NVIDIA GPU (CUDA)"}
_LOCAL = "__local__"


def whisper_languages() -> list[str]:
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        return sorted(_LANGUAGE_CODES, key=lambda code: (code not in _LANGUAGE_NAMES, language_name(code)))
    except Exception:  # noqa: BLE001 - the list is a convenience; the known names are enough
        return sorted(_LANGUAGE_NAMES, key=language_name)


def language_name(code: str) -> str:
    return _LANGUAGE_NAMES.get(code, code)


# The model combo's item data: UserRole is the model's name or folder; this role its ModelRow.
_ROW_ROLE = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class ModelRow:
    """One model in the picker."""

    name: str
    state: str  # "bundled", "downloaded", "not downloaded", or "" when unknown
    download_mb: int | None = None  # approximate
    size_bytes: int | None = None  # on disk
    path: Path | None = None


def _model_rows() -> list[ModelRow]:
    """The bundled base, then each downloadable model, smallest first."""
    try:
        from desktop.engine import models

        rows = []
        for info in models.list_models():
            if info.kind == "bundled":
                state = models.BUNDLED
            elif info.kind == "hub":
                state = models.DOWNLOADED if info.installed else models.NOT_DOWNLOADED
            else:
                continue  # folders of the user's appear when chosen ("Local model folder…")
            rows.append(ModelRow(info.name, state, info.download_mb, info.size_bytes, info.path))
        hub = sorted(rows[1:], key=lambda row: (row.download_mb or 1 << 30, row.name))
        return [rows[0], *hub]
    except Exception:  # noqa: BLE001 - the picker still works with the names alone
        log.debug("cannot list models", exc_info=True)
        return [ModelRow("base", "bundled"), *(ModelRow(name, "") for name in _FALLBACK_HUB_MODELS)]


def _same_model(a: str, b: str) -> bool:
    try:
        from desktop.engine.models import canonical_model_name

        return canonical_model_name(a) == canonical_model_name(b)
    except Exception:  # noqa: BLE001
        return a == b


def _megabytes(mb: float) -> str:
    return f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb:.0f} MB"


def model_label(row: ModelRow, in_use: bool) -> str:
    """What the picker shows for a model, e.g. "small — 484 MB · downloaded"."""
    size = _megabytes(row.download_mb) if row.download_mb is not None else None
    state = row.state + (", recommended" if row.name == "base" else "")
    parts = [p for p in (size, state, "in use" if in_use else None) if p]
    return f"{row.name} — {' · '.join(parts)}" if parts else row.name


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None, *, in_use: str | None = None) -> None:
        """`in_use`: the model the app runs now (by default the settings' model); it cannot be deleted."""
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)
        self._initial = settings
        self._in_use = in_use if in_use is not None else settings.model

        self.model_combo = QComboBox()
        for row in _model_rows():
            self.model_combo.addItem(model_label(row, _same_model(row.name, self._in_use)), row.name)
            self._set_row(self.model_combo.count() - 1, row)
        self.model_combo.addItem("Local model folder…", _LOCAL)
        self._local_folder: str | None = None
        self.model_combo.activated.connect(self._model_chosen)
        self.model_combo.currentIndexChanged.connect(self._update_hint)
        self.delete_model_button = QPushButton("Delete…")
        self.delete_model_button.clicked.connect(self._delete_current_model)
        model_row = QWidget()
        model_layout = QHBoxLayout(model_row)
        model_layout.setContentsMargins(0, 0, 0, 0)
        model_layout.addWidget(self.model_combo, 1)
        model_layout.addWidget(self.delete_model_button)
        self.model_hint = QLabel()
        self.model_hint.setWordWrap(True)
        self.model_hint.setProperty("role", "hint")

        self.device_combo = QComboBox()
        for device, label in _DEVICE_LABELS.items():
            self.device_combo.addItem(label, device)
        self.compute_combo = QComboBox()
        for compute_type in COMPUTE_TYPES:
            self.compute_combo.addItem("Automatic" if compute_type == "auto" else compute_type, compute_type)

        self.language_combo = QComboBox()
        self.language_combo.addItem("Detect automatically", None)
        for code in whisper_languages():
            self.language_combo.addItem(f"{language_name(code)} ({code})", code)
        self.task_combo = QComboBox()
        self.task_combo.addItem("Transcribe (keep the spoken language)", "transcribe")
        self.task_combo.addItem("Translate to English", "translate")
        self.word_timestamps_check = QCheckBox("Word timestamps (slower; for karaoke-style subtitles and JSON)")
        self.beam_spin = QSpinBox()
        self.beam_spin.setRange(1, MAX_BEAM_SIZE)
        self.beam_spin.setToolTip("Higher is a little more accurate and slower; 5 is a good default.")
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(0, MAX_BATCH_SIZE)
        self.batch_spin.setSpecialValueText("Automatic")  # shown for 0
        self.batch_spin.setToolTip(
            "Speech chunks (up to 30 s each) decoded together. Automatic: on a GPU, up to 960 s of speech "
            "in at most 96 chunks, and no more than fit in its free memory; 4 on the CPU. "
            "A number here is a count of chunks (still capped by the GPU's free memory)."
        )

        formats_row = QWidget()
        formats_layout = QHBoxLayout(formats_row)
        formats_layout.setContentsMargins(0, 0, 0, 0)
        self.format_checks: dict[str, QCheckBox] = {}
        for fmt in EXPORT_FORMATS:
            check = QCheckBox(fmt.upper())
            self.format_checks[fmt] = check
            formats_layout.addWidget(check)
        formats_layout.addStretch(1)

        form = QFormLayout()
        form.addRow("Model", model_row)
        form.addRow("", self.model_hint)
        form.addRow("Device", self.device_combo)
        form.addRow("Compute type", self.compute_combo)
        form.addRow("Language", self.language_combo)
        form.addRow("Task", self.task_combo)
        form.addRow("Beam size", self.beam_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("", self.word_timestamps_check)
        form.addRow("Export all writes", formats_row)

        self.error_label = QLabel()
        self.error_label.setProperty("role", "error")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.deleted_label = QLabel()
        self.deleted_label.setProperty("role", "hint")
        self.deleted_label.hide()

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button: QPushButton = buttons.button(QDialogButtonBox.StandardButton.Ok)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.deleted_label)
        layout.addWidget(buttons)
        self._show(settings)

    # Injectable for tests: returns a folder or "".
    def ask_model_folder(self) -> str:
        return QFileDialog.getExistingDirectory(self, "Choose a CTranslate2 Whisper model folder")

    # Injectable for tests: True to delete.
    def confirm_delete(self, name: str, size_text: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Delete model",
            f"Delete the downloaded model “{name}” ({size_text})?\n\nIt can be downloaded again later.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _show(self, settings: Settings) -> None:
        index = self.model_combo.findData(settings.model)
        if index < 0:
            # A local folder (or a hub name this list does not know): show it as its own entry.
            self._local_folder = settings.model
            self.model_combo.insertItem(self.model_combo.count() - 1, _folder_label(settings.model), settings.model)
            index = self.model_combo.count() - 2
        self.model_combo.setCurrentIndex(index)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(settings.device)))
        self.compute_combo.setCurrentIndex(max(0, self.compute_combo.findData(settings.compute_type)))
        language_index = self.language_combo.findData(settings.language) if settings.language else 0
        if language_index < 0:
            self.language_combo.addItem(settings.language, settings.language)
            language_index = self.language_combo.count() - 1
        self.language_combo.setCurrentIndex(language_index)
        self.task_combo.setCurrentIndex(max(0, self.task_combo.findData(settings.task)))
        self.word_timestamps_check.setChecked(settings.word_timestamps)
        self.beam_spin.setValue(settings.beam_size)
        self.batch_spin.setValue(settings.batch_size or 0)
        for fmt, check in self.format_checks.items():
            check.setChecked(fmt in settings.export_formats)
        self._update_hint()

    def _model_chosen(self, index: int) -> None:
        if self.model_combo.itemData(index) == _LOCAL:
            folder = self.ask_model_folder()
            if folder:
                existing = self.model_combo.findData(folder)
                if existing < 0:
                    self.model_combo.insertItem(self.model_combo.count() - 1, _folder_label(folder), folder)
                    existing = self.model_combo.count() - 2
                self.model_combo.setCurrentIndex(existing)
            else:
                self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(self._initial.model)))
        self._update_hint()

    def _set_row(self, index: int, row: ModelRow) -> None:
        self.model_combo.setItemData(index, row, _ROW_ROLE)
        # Models that need a download are dimmer in the list (still clearly choosable), so those on disk
        # stand out.
        grey = QColor(self.palette().color(QPalette.ColorRole.Text))
        grey.setAlphaF(0.6)
        self.model_combo.setItemData(
            index, grey if row.state == "not downloaded" else None, Qt.ItemDataRole.ForegroundRole
        )

    def _current_row(self) -> ModelRow | None:
        row = self.model_combo.currentData(_ROW_ROLE)
        return row if isinstance(row, ModelRow) else None

    def _update_hint(self) -> None:
        model = self.model_combo.currentData()
        row = self._current_row()
        in_use = row is not None and _same_model(row.name, self._in_use)
        if row is not None and row.state == "bundled":
            hint = "Ships with Verbatim; nothing to download."
        elif row is not None and row.state == "not downloaded":
            about = f"About {_megabytes(row.download_mb)}, downloaded" if row.download_mb else "Downloaded"
            hint = f"{about} from the model hub when you press OK; the status bar shows the progress."
        elif row is not None and row.state == "downloaded":
            on_disk = _megabytes(row.size_bytes / 1e6) if row.size_bytes is not None else "on disk"
            hint = f"Downloaded: {on_disk} in {row.path}." if row.path else "Downloaded."
            if in_use:
                hint += " In use, so it cannot be deleted now."
        elif model is not None and Path(str(model)).is_absolute():
            hint = f"Loaded from {model}."
        else:
            hint = ""
        self.model_hint.setText(hint)
        self.model_hint.setVisible(bool(hint))
        deletable = row is not None and row.state == "downloaded" and not in_use
        self.delete_model_button.setEnabled(deletable)
        if deletable:
            self.delete_model_button.setToolTip("Delete this downloaded model from the disk")
        elif in_use:
            self.delete_model_button.setToolTip("The model in use cannot be deleted")
        else:
            self.delete_model_button.setToolTip("Only downloaded models can be deleted")

    def _delete_current_model(self) -> None:
        row = self._current_row()
        if row is None or row.state != "downloaded" or _same_model(row.name, self._in_use):
            return
        size_text = _megabytes(row.size_bytes / 1e6) if row.size_bytes is not None else "its files"
        if not self.confirm_delete(row.name, size_text):
            return
        from desktop.engine.models import ModelError, delete_model

        try:
            freed_bytes = delete_model(row.name)
        except ModelError as exc:
            self.error_label.setText(f"Could not delete {row.name}: {exc}")
            self.error_label.show()
            return
        log.info("deleted model %s (%d bytes)", row.name, freed_bytes)
        index = self.model_combo.currentIndex()
        gone = dataclasses.replace(row, state="not downloaded", size_bytes=None, path=None)
        self.model_combo.setItemText(index, model_label(gone, in_use=False))
        self._set_row(index, gone)
        # A model just deleted is not one to switch to: the choice goes back to the settings' own.
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(self._initial.model)))
        self.error_label.hide()
        self.deleted_label.setText(f"Deleted {row.name}; {_megabytes(freed_bytes / 1e6)} freed.")
        self.deleted_label.show()

    def settings(self) -> Settings:
        """The settings as chosen; raises ValueError when they are not valid."""
        formats = tuple(fmt for fmt, check in self.format_checks.items() if check.isChecked())
        return dataclasses.replace(
            self._initial,
            model=str(self.model_combo.currentData()),
            device=self.device_combo.currentData(),
            compute_type=self.compute_combo.currentData(),
            language=self.language_combo.currentData(),
            task=self.task_combo.currentData(),
            word_timestamps=self.word_timestamps_check.isChecked(),
            beam_size=self.beam_spin.value(),
            batch_size=self.batch_spin.value() or None,
            export_formats=formats,
        )

    def accept(self) -> None:
        try:
            self.settings()
        except ValueError as exc:
            message = str(exc)
            if "export formats" in message:
                message = "Choose at least one format for “Export all finished”."
            self.error_label.setText(message)
            self.error_label.show()
            return
        super().accept()


def _folder_label(folder: str) -> str:
    return f"{Path(folder).name or folder} (local folder)"
