"""Settings: defaults, validation, and a JSON file that survives restarts and bad edits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from desktop.core.settings import Settings, load_settings, save_settings, settings_path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("VERBATIM_HOME", str(tmp_path / "home"))


def test_defaults_when_no_file_exists():
    assert not settings_path().exists()
    assert load_settings() == Settings()
    assert Settings().model == "base" and Settings().language is None


def test_saved_settings_load_back_equal():
    chosen = Settings(
        model="small", device="cpu", compute_type="int8", language="de", task="translate",
        word_timestamps=True, beam_size=3, batch_size=2, export_formats=("vtt", "docx"),
    )
    save_settings(chosen)
    assert settings_path().parent == Path(os.environ["VERBATIM_HOME"])
    assert load_settings() == chosen
    # Nothing temporary is left next to the file.
    assert sorted(p.name for p in settings_path().parent.iterdir()) == ["settings.json"]


def test_saving_again_replaces_the_file():
    save_settings(Settings(beam_size=2))
    save_settings(Settings(beam_size=7))
    assert load_settings().beam_size == 7


@pytest.mark.parametrize(
    "changes",
    [
        {"device": "tpu"},
        {"compute_type": "int4"},
        {"task": "summarise"},
        {"beam_size": 0},
        {"beam_size": 11},
        {"beam_size": True},
        {"batch_size": 0},
        {"batch_size": 257},
        {"batch_size": 2.5},
        {"batch_size": False},
        {"language": ""},
        {"model": " "},
        {"export_formats": ()},
        {"export_formats": ("srt", "pdf")},
    ],
)
def test_invalid_values_are_refused(changes):
    with pytest.raises(ValueError):
        Settings(**changes)


def test_invalid_fields_in_the_file_fall_back_to_defaults_one_by_one():
    settings_path().write_text(
        json.dumps({"model": "tiny", "device": "quantum", "beam_size": "five", "language": "fr", "unknown": 1})
    )
    loaded = load_settings()
    assert loaded.model == "tiny"
    assert loaded.language == "fr"
    assert loaded.device == Settings().device
    assert loaded.beam_size == Settings().beam_size


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_unreadable_file_gives_defaults(content):
    settings_path().write_text(content)
    assert load_settings() == Settings()


def test_model_key_changes_only_with_model_device_or_compute_type():
    base = Settings()
    assert Settings(language="en", beam_size=2, task="translate").model_key() == base.model_key()
    assert Settings(model="tiny").model_key() != base.model_key()
    assert Settings(device="cpu").model_key() != base.model_key()
    assert Settings(compute_type="float32").model_key() != base.model_key()
