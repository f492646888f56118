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


def fake_download(home: Path, name: str, model_bytes: int) -> Path:
    """A finished download as models.py lays it out: $VERBATIM_HOME/models/<name>/ with model.bin + config.json."""
    folder = home / "models" / name
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"\0" * model_bytes)
    (folder / "config.json").write_text("{}")
    return folder


def item_texts(dialog: SettingsDialog) -> dict[str, str]:
    combo = dialog.model_combo
    return {combo.itemData(i): combo.itemText(i) for i in range(combo.count())}


def select(dialog: SettingsDialog, name: str) -> None:
    dialog.model_combo.setCurrentIndex(dialog.model_combo.findData(name))


def test_the_model_picker_shows_download_sizes_and_what_is_on_disk(qtbot, verbatim_home):
    fake_download(verbatim_home, "small", 3_000_000)
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    texts = item_texts(dialog)
    assert texts["base"] == "base — 145 MB · bundled, recommended · in use"
    assert texts["small"] == "small — 484 MB · downloaded"
    assert texts["tiny"] == "tiny — 75 MB · not downloaded"
    assert texts["large-v3"] == "large-v3 — 3.1 GB · not downloaded"
    select(dialog, "small")
    assert dialog.model_hint.text() == f"Downloaded: 3 MB in {verbatim_home / 'models' / 'small'}."
    select(dialog, "medium")
    assert dialog.model_hint.text().startswith("About 1.5 GB, downloaded from the model hub when you press OK")
    assert not dialog.delete_model_button.isEnabled()  # nothing on disk to delete


def test_a_downloaded_model_can_be_deleted_after_confirming(qtbot, verbatim_home):
    folder = fake_download(verbatim_home, "small", 2_000_000)
    dialog = SettingsDialog(Settings(language="de"))
    qtbot.addWidget(dialog)
    asked: list[tuple[str, str]] = []
    answer = False
    dialog.confirm_delete = lambda name, size: asked.append((name, size)) or answer
    select(dialog, "small")
    assert dialog.delete_model_button.isEnabled()
    dialog.delete_model_button.click()
    assert asked == [("small", "2 MB")] and folder.is_dir()  # said no: nothing deleted

    answer = True
    dialog.delete_model_button.click()
    assert not folder.exists()
    assert item_texts(dialog)["small"] == "small — 484 MB · not downloaded"
    # The choice goes back to the model in use, and the dialog says what was freed.
    assert dialog.model_combo.currentData() == "base" and dialog.settings() == Settings(language="de")
    assert dialog.deleted_label.text() == "Deleted small; 2 MB freed."


def test_neither_the_bundled_base_nor_the_model_in_use_can_be_deleted(qtbot, verbatim_home):
    small = fake_download(verbatim_home, "small", 1000)
    large = fake_download(verbatim_home, "large-v3", 1000)
    dialog = SettingsDialog(Settings(model="small"))  # the settings' model is the one in use
    qtbot.addWidget(dialog)
    deleting: list[str] = []
    dialog.confirm_delete = lambda name, size: deleting.append(name) or True
    assert dialog.model_combo.currentText() == "small — 484 MB · downloaded · in use"
    assert not dialog.delete_model_button.isEnabled()
    assert dialog.delete_model_button.toolTip() == "The model in use cannot be deleted"
    assert dialog.model_hint.text().endswith("In use, so it cannot be deleted now.")
    dialog.delete_model_button.click()
    select(dialog, "base")
    assert not dialog.delete_model_button.isEnabled()
    dialog.delete_model_button.click()
    assert deleting == [] and small.is_dir()

    # In use under an alias (large is large-v3): still protected.
    aliased = SettingsDialog(Settings(), in_use="large")
    qtbot.addWidget(aliased)
    aliased.confirm_delete = dialog.confirm_delete
    select(aliased, "large-v3")
    assert "in use" in aliased.model_combo.currentText() and not aliased.delete_model_button.isEnabled()
    aliased.delete_model_button.click()
    assert deleting == [] and large.is_dir()
