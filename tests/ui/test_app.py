"""The application as people start it: `verbatim one.wav deux.wav` in its own process, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def library_states(home: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "desktop", "library", "list", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
    )
    return [job["state"] for job in json.loads(result.stdout)]


def test_files_on_the_command_line_are_transcribed_and_sigterm_quits(qtbot, use_session_model, verbatim_home,
                                                                     make_speech):
    one = make_speech("This is the first file on the command line.", name="first.wav")
    two = make_speech("Et voici le deuxième fichier, en français cette fois.", voice="fr", name="second.wav")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    app = subprocess.Popen(
        [sys.executable, "-m", "desktop", str(one), str(two)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        qtbot.waitUntil(lambda: app.poll() is not None or library_states(verbatim_home) == ["done", "done"],
                        timeout=120_000)
        assert app.poll() is None, app.communicate()
        begin = time.monotonic()
        app.send_signal(signal.SIGTERM)
        _out, err = app.communicate(timeout=10)
        assert time.monotonic() - begin < 10
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    assert app.returncode == 0, err
    assert "QThread: Destroyed" not in err
    assert library_states(verbatim_home) == ["done", "done"]
