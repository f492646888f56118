"""The base model inside a frozen app (PyInstaller puts it at sys._MEIPASS/models/base): used in place, never
copied, checked against the same SHA-256 as every other copy. packaging/smoke.py covers the real frozen app."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from desktop.core.paths import models_dir
from desktop.engine import models
from desktop.engine.models import BASE_MODEL_SHA256, ModelError, ensure_base_model, list_models, resolve_model


def _frozen(monkeypatch: pytest.MonkeyPatch, bundle: Path) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)


def _bundle_with_model(base_model_dir: Path, bundle: Path, link: bool) -> Path:
    """bundle/models/base holding the real model: hard links when the test only reads it, else a copy."""
    folder = bundle / "models" / "base"
    folder.mkdir(parents=True)
    for source in base_model_dir.iterdir():
        if source.name.startswith("."):
            continue  # the assembler's marker stays with its own folder, as the spec leaves it out
        if link:
            os.link(source, folder / source.name)
        else:
            shutil.copy2(source, folder / source.name)
    return folder


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    paths: list[Path] = []
    real = models._sha256_file

    def counting(path: Path) -> str:
        paths.append(Path(path))
        return real(path)

    monkeypatch.setattr(models, "_sha256_file", counting)
    return paths


def test_a_frozen_app_uses_its_bundled_model_in_place(base_model_dir, tmp_path, monkeypatch, hashed):
    bundled = _bundle_with_model(base_model_dir, tmp_path / "bundle", link=True)
    before = sorted(p.name for p in bundled.iterdir())
    _frozen(monkeypatch, tmp_path / "bundle")

    assert ensure_base_model() == bundled
    assert resolve_model("base") == bundled
    assert hashed == [bundled / "model.bin"]  # checked once; the marker under models/ spares the second hash
    assert not (models_dir() / "base").exists()  # nothing assembled or copied into VERBATIM_HOME
    assert sorted(p.name for p in bundled.iterdir()) == before  # nothing written into the app folder

    base = list_models()[0]
    assert (base.name, base.kind, base.installed, base.path) == ("base", "bundled", True, bundled)
    assert base.size_bytes == sum((bundled / name).stat().st_size for name in before)


def test_a_damaged_bundled_model_is_never_loaded(base_model_dir, tmp_path, monkeypatch):
    bundled = _bundle_with_model(base_model_dir, tmp_path / "bundle", link=False)
    with open(bundled / "model.bin", "r+b") as f:
        f.seek(8192)
        byte = f.read(1)
        f.seek(8192)
        f.write(bytes([byte[0] ^ 0xFF]))
    _frozen(monkeypatch, tmp_path / "bundle")

    with pytest.raises(
        ModelError, match=r"the app's bundled base model .* does not match the expected SHA-256"
    ):
        ensure_base_model()
    assert not (models_dir() / "base").exists()


def test_verbatim_base_model_still_wins_in_a_frozen_app(base_model_dir, tmp_path, monkeypatch):
    _bundle_with_model(base_model_dir, tmp_path / "bundle", link=True)
    _frozen(monkeypatch, tmp_path / "bundle")
    monkeypatch.setenv("VERBATIM_BASE_MODEL", str(base_model_dir))

    assert ensure_base_model() == base_model_dir


def test_a_frozen_app_without_a_bundled_model_assembles_it_as_before(tmp_path, monkeypatch):
    (tmp_path / "bundle").mkdir()
    _frozen(monkeypatch, tmp_path / "bundle")

    folder = ensure_base_model()
    assert folder == models_dir() / "base"
    assert models._sha256_file(folder / "model.bin") == BASE_MODEL_SHA256
