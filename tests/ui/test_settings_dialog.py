"""The settings dialog shows the current settings and returns what the user picked."""

from __future__ import annotations

from pathlib import Path

from desktop.core.settings import Settings
from desktop.ui.settings_dialog import SettingsDialog
from desktop.workers.signals import emit


def test_shows_current_settings_and_returns_the_choice(qtbot, tmp_path):
    dialog = SettingsDialog(Settings(language="fr", beam_size=4, export_formats=("vtt",)))
    qtbot.addWidget(dialog)
    assert dialog.model_combo.currentData() == "base"
    assert dialog.language_combo.currentData() == "fr"
    assert dialog.beam_spin.value() == 4
    assert dialog.batch_spin.value() == 0 and dialog.batch_spin.text() == "Automatic"
    assert [f for f, c in dialog.format_checks.items() if c.isChecked()] == ["vtt"]

    dialog.language_combo.setCurrentIndex(0)
    dialog.task_combo.setCurrentIndex(dialog.task_combo.findData("translate"))
    dialog.word_timestamps_check.setChecked(True)
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    dialog.format_checks["json"].setChecked(True)
    dialog.batch_spin.setValue(8)
    chosen = dialog.settings()
    assert chosen == Settings(device="cpu", task="translate", word_timestamps=True, beam_size=4, batch_size=8,
                              export_formats=("vtt", "json"))


def test_a_local_model_folder_can_be_chosen(qtbot, tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    dialog.ask_model_folder = lambda: str(folder)
    emit(dialog.model_combo.activated, dialog.model_combo.count() - 1)  # "Local model folder…"
    assert dialog.settings().model == str(folder)
    assert "my-model" in dialog.model_combo.currentText()
    # Reopening shows the folder as the current choice.
    again = SettingsDialog(dialog.settings())
    qtbot.addWidget(again)
    assert again.model_combo.currentData() == str(folder) and Path(again.settings().model) == folder


def test_no_export_format_is_refused_in_the_dialog(qtbot):
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    for check in dialog.format_checks.values():
        check.setChecked(False)
    dialog.accept()
    assert dialog.result() != SettingsDialog.DialogCode.Accepted
    assert not dialog.error_label.isHidden() and "at least one format" in dialog.error_label.text()
