"""Recording in the window over the real capture path (PortAudio → PulseAudio null sink, see
tests/pulserig.py) and the real model: the meter moves while speech plays, the live draft appears in the
editor during the recording, and after stop the full pass replaces it in the same document."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile
from PySide6.QtCore import Qt

from desktop.capture.devices import CaptureError
from desktop.core.jobs import JobState
from desktop.ui.recorder_bar import METER_FLOOR_DBFS
from desktop.ui.transcript_model import TEXT
from tests.pulserig import pulse_sink  # noqa: F401  (fixture)
from tests.ui.test_main_window import JOB_TIMEOUT_MS, apps  # noqa: F401  (fixture)


def texts(window) -> str:
    return " ".join(s.text for s in window.transcript_model.rows()).lower()


@pytest.mark.audio
@pytest.mark.model
def test_record_with_a_live_draft_then_the_full_pass(qtbot, apps, loaded_model, pulse_sink, make_speech):  # noqa: F811
    app = apps(loaded_model)
    window, bar = app.window, app.window.recorder_bar
    window.draft_interval_ms = 1000  # the app drafts every 2.5 s; quicker keeps the test short
    speech = make_speech("Remember to buy seven green apples tomorrow.")

    levels: list[float] = []
    bar.meter.set_level = _spy(bar.meter.set_level, lambda level: levels.append(level.peak_dbfs))
    job_id = window.start_recording()
    assert job_id is not None
    assert bar.state == "recording" and not bar.record_button.isEnabled()
    assert window.current_job_id() == job_id
    assert "Recording · live draft" in window.job_details.text()
    player = pulse_sink.play(speech)

    # The draft: grey, italic, not editable, with the spoken words, while still recording.
    qtbot.waitUntil(lambda: "apples" in texts(window), timeout=60_000)
    assert window.recording is not None and window.transcript_model.draft
    index = window.transcript_model.index(0, TEXT)
    assert window.transcript_model.data(index, Qt.ItemDataRole.FontRole).italic()
    assert not window.transcript_model.flags(index) & Qt.ItemFlag.ItemIsEditable
    assert app.store.segments(job_id) == []  # a draft is never stored
    player.wait(20)
    assert max(levels) > -30.0  # the meter moved with the speech
    assert bar.elapsed_label.text() != "0:00"

    window.stop_recording()
    assert bar.state == "idle" and bar.meter.rms_dbfs == METER_FLOOR_DBFS
    path = Path(app.store.job(job_id).source)
    assert soundfile.info(path).duration > 2.0

    # The full pass replaces the draft in the same document.
    qtbot.waitUntil(lambda: app.store.job(job_id).state == JobState.DONE, timeout=JOB_TIMEOUT_MS)
    assert not window.transcript_model.draft
    assert window.current_job_id() == job_id
    stored = " ".join(s.text for s in app.store.segments(job_id)).lower()
    assert "apples" in stored and "apples" in texts(window)
    assert window.transcript_model.flags(window.transcript_model.index(0, TEXT)) & Qt.ItemFlag.ItemIsEditable
    app.close()


def test_an_input_that_cannot_open_leaves_no_job(apps, loaded_model):  # noqa: F811
    app = apps(loaded_model, start=False)

    def broken(path: Path, device: int | None):
        raise CaptureError("no audio input device found")

    app.window.make_recorder = broken
    assert app.window.start_recording() is None
    assert app.window.queue_model.rowCount() == 0
    assert "no audio input device found" in app.window.notice.text()
    assert app.window.recorder_bar.record_button.isEnabled()
    app.close()


def _spy(method, observe):
    def wrapper(*args):
        observe(*args)
        return method(*args)

    return wrapper
