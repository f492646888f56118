"""`verbatim models list|download|path`, run through the real argument parser."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from desktop import cli_models
from desktop.engine.models import BASE_MODEL_SHA256, hub_model_names
from tests.engine.hubserver import FakeHub, fake_model_files

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_REPO = "Systran/faster-whisper-tiny"


def run_cli(argv: list[str]) -> int:
    """Parse like desktop/cli.py does: cli_models adds `models` to the subcommands, then args.func runs."""
    parser = argparse.ArgumentParser(prog="verbatim")
    cli_models.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("VERBATIM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VERBATIM_BASE_MODEL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with FakeHub({TINY_REPO: fake_model_files()}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


def table_rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "KIND", "INSTALLED", "SIZE"]
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_list_is_the_default_and_shows_base(home, capsys):
    assert run_cli(["models"]) == 0
    default_out = capsys.readouterr().out
    assert run_cli(["models", "list"]) == 0
    rows = table_rows(capsys.readouterr().out)

    assert rows["base"][1:3] == ["bundled", "yes"]
    assert set(hub_model_names()) <= set(rows)
    assert rows["small"][1:3] == ["hub", "no"]
    assert table_rows(default_out) == rows


def test_list_shows_download_sizes_and_what_is_on_disk(home, capsys):
    from desktop.engine.models import approx_download_mb

    folder = home / "models" / "small"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"\0" * 2_000_000)
    (folder / "config.json").write_text("{}")
    assert run_cli(["models", "list"]) == 0
    out = capsys.readouterr().out
    # Columns are added before PATH, which stays last; the first four keep their names and places.
    assert out.splitlines()[0].split() == ["NAME", "KIND", "INSTALLED", "SIZE", "DOWNLOAD", "PATH"]
    rows = table_rows(out)
    assert rows["small"] == ["small", "hub", "yes", "2.0", "MB", f"~{approx_download_mb('small')}", "MB", str(folder)]
    assert rows["medium"] == ["medium", "hub", "no", "-", f"~{approx_download_mb('medium')}", "MB", "-"]
    assert rows["base"][1:3] == ["bundled", "yes"] and rows["base"][-2] == "-"  # nothing to download


def test_path_base_prints_the_assembled_folder(home, capsys):
    assert run_cli(["models", "path", "base"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder == home / "models" / "base"
    assert (folder / "model.bin").stat().st_size > 100_000_000

    # Once assembled, `list` reports its folder and size.
    run_cli(["models", "list"])
    row = table_rows(capsys.readouterr().out)["base"]
    assert row[-1] == str(folder)
    assert (
        row[3] == f"{sum(p.stat().st_size for p in folder.iterdir() if not p.name.startswith('.')) / 1e6:.1f}"
    )


def test_path_of_unknown_or_missing_models_fails(home, capsys):
    assert run_cli(["models", "path", "nosuch"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("verbatim: error: unknown model 'nosuch'")

    assert run_cli(["models", "path", "small"]) == 1
    assert "run `verbatim models download small`" in capsys.readouterr().err
    assert not (home / "models" / "small").exists()


def test_download_then_path(home, hub, capsys):
    assert run_cli(["models", "download", "tiny"]) == 0
    captured = capsys.readouterr()
    folder = Path(captured.out.strip())
    assert folder == home / "models" / "tiny"
    assert (folder / "model.bin").read_bytes() == hub.repos[TINY_REPO]["model.bin"]
    # stderr is not a terminal here: a few plain lines instead of a bar, ending at 100%.
    lines = captured.err.splitlines()
    assert 2 <= len(lines) <= 5
    assert "\r" not in captured.err
    assert lines[-1].startswith("downloading tiny: 100%")

    assert run_cli(["models", "path", "tiny"]) == 0
    assert capsys.readouterr().out.strip() == str(folder)
    assert table_rows((run_cli(["models", "list"]), capsys.readouterr().out)[1])["tiny"][1:3] == [
        "hub",
        "yes",
    ]


def test_download_failure_is_one_error_line(home, hub, capsys):
    assert run_cli(["models", "download", "small"]) == 1  # the fake hub has no such repo
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("verbatim: error: could not download model 'small': ")
    assert "Traceback" not in err


def test_ctrl_c_cancels_the_download_cleanly(home, hub):
    # A slow link: 4 KB pieces with pauses, so the download is still running when Ctrl+C arrives.
    hub.repos[TINY_REPO]["model.bin"] = os.urandom(400_000)
    hub.piece_bytes = 4096
    hub.piece_delay_s = 0.02
    code = (
        "import argparse, sys\n"
        "from desktop import cli_models\n"
        "parser = argparse.ArgumentParser()\n"
        "cli_models.add_parser(parser.add_subparsers(dest='command'))\n"
        "args = parser.parse_args(['models', 'download', 'tiny'])\n"
        "sys.exit(args.func(args))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert hub.model_bin_streaming.wait(timeout=60)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()

    assert process.returncode == 130, err
    assert "cancelled" in err
    assert "Traceback" not in err
    assert out == ""
    models_root = home / "models"
    assert not (models_root / "tiny").exists()
    assert [p.name for p in models_root.iterdir() if p.is_dir()] == []


def test_the_base_model_checksum_is_what_list_and_path_rely_on(home, capsys):
    """`models path base` hands out only a verified copy: a corrupted one is replaced first."""
    assert run_cli(["models", "path", "base"]) == 0
    model_bin = Path(capsys.readouterr().out.strip()) / "model.bin"
    stat = model_bin.stat()
    with open(model_bin, "r+b") as f:
        f.write(b"\0\0\0\0")
    os.utime(model_bin, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    assert run_cli(["models", "path", "base"]) == 0
    capsys.readouterr()
    import hashlib

    assert hashlib.sha256(model_bin.read_bytes()).hexdigest() == BASE_MODEL_SHA256
