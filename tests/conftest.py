"""Shared fixtures: an isolated VERBATIM_HOME for every test, the real bundled model loaded once
per session, and real speech made by espeak-ng."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_AUDIO = REPO.parent / "shared" / "audio"

# -- no network: the whole suite runs with connections off this machine refused -----------------------
_NETGUARD = REPO / "tests" / "netguard"
sys.path.insert(0, str(_NETGUARD))
import verbatim_netguard  # noqa: E402

verbatim_netguard.install()
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(_NETGUARD), os.environ.get("PYTHONPATH")) if p)
_NETLOG = Path(tempfile.mkdtemp(prefix="verbatim-netlog-")) / "attempts.log"
os.environ["VERBATIM_TEST_NETLOG"] = str(_NETLOG)


@pytest.fixture(autouse=True)
def no_network_use() -> Iterator[None]:
    """Fails the test during which any process of the suite tried to reach another machine."""
    _NETLOG.write_text("")
    yield
    attempts = _NETLOG.read_text()
    assert not attempts, f"network use (Verbatim must work offline):\n{attempts}"


@pytest.fixture(scope="session")
def base_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled base model, assembled from its two data packages once per session."""
    home = tmp_path_factory.mktemp("model-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("VERBATIM_HOME", str(home))
    mp.delenv("VERBATIM_BASE_MODEL", raising=False)
    try:
        from desktop.engine.models import ensure_base_model

        return ensure_base_model()
    finally:
        mp.undo()


@pytest.fixture(autouse=True)
def verbatim_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Its own folder, not inside tmp_path: tests that list tmp_path must see only what they wrote.
    home = tmp_path_factory.mktemp("verbatim-home")
    monkeypatch.setenv("VERBATIM_HOME", str(home))
    monkeypatch.delenv("VERBATIM_BASE_MODEL", raising=False)
    return home


@pytest.fixture
def use_session_model(base_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point `base` at the session's assembled copy, so a test's own load does not re-assemble it."""
    monkeypatch.setenv("VERBATIM_BASE_MODEL", str(base_model_dir))
    return base_model_dir


@pytest.fixture(scope="session")
def loaded_model(base_model_dir: Path):
    """The real bundled Whisper base model on the CPU, loaded and warmed once per session."""
    mp = pytest.MonkeyPatch()
    mp.setenv("VERBATIM_BASE_MODEL", str(base_model_dir))
    try:
        from desktop.engine.loading import load_model

        return load_model("base", device="cpu")
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def make_speech(speech_dir: Path) -> Callable[..., Path]:
    """make_speech(text, voice="en", name=None, rate=16000) -> a WAV of espeak-ng speaking `text`."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (the README's set-up installs it)")

    def make(text: str, voice: str = "en", name: str | None = None, rate: int | None = None) -> Path:
        digest = hashlib.sha1(f"{voice}|{rate}|{text}".encode()).hexdigest()[:10]
        path = speech_dir / (name or f"{voice}-{digest}.wav")
        if not path.exists():
            raw = speech_dir / f"raw-{digest}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
            if rate:
                subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", str(path)], check=True)
            else:
                shutil.copy(raw, path)
        return path

    return make


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    if not SHARED_AUDIO.is_dir():
        pytest.skip("../shared/audio is not beside this checkout")
    return SHARED_AUDIO


# -- real small file systems (root only; skipped elsewhere) ---------------------------------------
def _mount_tmpfs(folder: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path):
    """A real 64 KiB file system, unmounted afterwards."""
    folder = tmp_path / "tiny"
    _mount_tmpfs(folder, "size=64k")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def readonly_mount(tmp_path):
    folder = tmp_path / "ro"
    _mount_tmpfs(folder, "size=64k")
    (folder / "old.srt").write_bytes(b"previous run\n")
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", str(folder)], check=True)
