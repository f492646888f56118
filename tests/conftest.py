"""Shared fixtures: an isolated VERBATIM_HOME for every test, the real bundled model loaded once
per session, and real speech made by espeak-ng."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_AUDIO = REPO.parent / "shared" / "audio"


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
