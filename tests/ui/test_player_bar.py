"""Playback in the window: double-click a time or press Ctrl+Space to play a segment, the playing row is
tinted and followed, Ctrl+L loops it, and the player stops when another job is shown or the window
closes. The audio is a real espeak-ng file decoded by PyAV; the output is a fake stream the test pulls
from (tests/workers/test_player_sink.py plays through a real one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QAbstractItemView

from desktop.capture.playback import LISTENING_RATE, Playback
from desktop.core.jobs import JobState
from desktop.core.segment import Segment
from desktop.core.settings import Settings
from desktop.core.store import Store
from desktop.ui.main_window import MainWindow
from desktop.ui.transcript_model import START, TEXT
from desktop.workers.model_worker import ModelWorker
from desktop.workers.player import PlayerState
from tests.fake_output import FakeOutput

TIMEOUT_MS = 10_000
# Segments over the clip (times as a transcript would have them; a gap between the second and third).
SEGMENTS = (Segment(0.0, 1.0, " Hello from"), Segment(1.0, 2.0, " the playback"), Segment(2.5, 3.5, " window test."))


def add_done_job(store: Store, source: Path, segments=SEGMENTS) -> int:
    job = store.add_job(str(source))
    store.mark_started(job.id, 4.0, "en", 0.99, "base")
    store.append_segments(job.id, segments)
    store.set_state(job.id, JobState.DONE)
    return job.id


@pytest.fixture
def clip(make_speech):
    return make_speech("Hello from the playback window test. It plays the segment you pick.")


@pytest.fixture
def window(qtbot, clip, tmp_path):
    store = Store(owner=True)
    first = add_done_job(store, clip)
    other = tmp_path / "other.wav"
    other.write_bytes(clip.read_bytes())
    add_done_job(store, other)
    worker = ModelWorker(Settings())  # never started: these jobs are done already
    made = MainWindow(store, worker, Settings(), settings_saver=lambda s: None)
    made.show_error = lambda title, message: pytest.fail(f"{title}: {message}")
    output = FakeOutput()
    made.player.playback_factory = lambda samples, rate: Playback(samples, rate, stream_factory=output)
    made.player.rate_for_output = lambda: LISTENING_RATE
    made.output = output
    qtbot.addWidget(made)
    made.show()
    made.activateWindow()
    made.select_job(first)
    yield made
    made.close()
    assert made.player.state == PlayerState.EMPTY  # the window closed: nothing plays on
    store.close()


def double_click(qtbot, view, row: int, column: int) -> None:
    rect = view.visualRect(view.model().index(row, column))
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def pull_until(output: FakeOutput, condition, max_s: float = 5.0) -> None:
    pulled = 0
    while not condition():
        assert pulled < max_s * LISTENING_RATE, "the condition never held while playing"
        output.stream.pull(480)
        pulled += 480
        output.poll()


def test_double_click_on_a_time_plays_that_segment_highlighted_and_followed(qtbot, qtmodeltester, window):
    view, model, player = window.transcript_view, window.transcript_model, window.player
    window.output.poll = player.poll  # one position update per pulled block, not per 50 ms
    with qtbot.waitSignal(player.state_changed, timeout=TIMEOUT_MS, check_params_cb=lambda s: s == "playing"):
        double_click(qtbot, view, 1, START)
    assert view.state() != QAbstractItemView.State.EditingState  # played, did not open the time's editor
    assert player.position_s == pytest.approx(1.0)
    window.output.stream.pull(480)
    player.poll()
    assert model.playing_row == 1
    assert model.data(model.index(1, TEXT), Qt.ItemDataRole.BackgroundRole) is not None
    assert model.data(model.index(0, TEXT), Qt.ItemDataRole.BackgroundRole) is None
    qtmodeltester.check(model)
    # Played on into the gap and the next segment: the tint and the cursor follow.
    pull_until(window.output, lambda: player.position_s >= 2.0)
    assert model.playing_row is None  # 2.0-2.5 s is between segments
    pull_until(window.output, lambda: model.playing_row == 2)
    assert view.currentIndex().row() == 2
    # Follow off: the tint still moves, the cursor stays where the user puts it.
    window.player_bar.follow_action.trigger()
    view.setCurrentIndex(model.index(0, TEXT))
    player.seek(1.2)
    player.poll()
    assert model.playing_row == 1 and view.currentIndex().row() == 0


def test_keyboard_plays_pauses_and_loops_the_selected_segment(qtbot, window):
    view, model, player, bar = window.transcript_view, window.transcript_model, window.player, window.player_bar
    window.output.poll = player.poll
    view.setFocus()
    view.setCurrentIndex(model.index(2, TEXT))
    with qtbot.waitSignal(player.state_changed, timeout=TIMEOUT_MS, check_params_cb=lambda s: s == "playing"):
        qtbot.keyClick(view, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert player.position_s == pytest.approx(2.5)
    assert view.state() != QAbstractItemView.State.EditingState  # the shortcut did not type into the cell
    window.output.stream.pull(4800)
    with qtbot.waitSignal(player.state_changed, timeout=1000, check_params_cb=lambda s: s == "paused"):
        qtbot.keyClick(view, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert player.position_s == pytest.approx(2.7)
    # Resumes where it paused (still inside the selected segment)...
    qtbot.keyClick(view, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert player.state == PlayerState.PLAYING and player.position_s == pytest.approx(2.7)
    # ...and Ctrl+L loops the segment being played.
    qtbot.keyClick(view, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert bar.loop_action.isChecked() and player.loop_s == (2.5, 3.5)
    seen = []
    for _ in range(150):  # 3 s of output over a 1 s loop
        window.output.stream.pull(480)
        seen.append(player.position_s)
    assert min(seen) >= 2.5 and max(seen) < 3.5
    # Ctrl+[ jumps back five seconds (to the start, clamped) and Ctrl+Shift+F turns following off.
    qtbot.keyClick(view, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert player.loop_s is None
    qtbot.keyClick(view, Qt.Key.Key_BracketLeft, Qt.KeyboardModifier.ControlModifier)
    assert player.position_s == pytest.approx(0.0)
    qtbot.keyClick(view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert not bar.follow


def test_the_bar_shows_position_duration_and_speed(qtbot, window):
    player, bar = window.player, window.player_bar
    assert bar.slider.maximum() == 4000  # the job's duration, before anything is decoded
    with qtbot.waitSignal(player.duration_changed, timeout=TIMEOUT_MS) as duration:
        window.play_segment(1)
    assert bar.slider.maximum() == int(duration.args[0] * 1000)
    window.output.stream.pull(2400)
    with qtbot.waitSignal(player.position_changed, timeout=1000):
        pass  # the 20 Hz poll
    assert bar.slider.value() == 1100
    assert bar.time_label.text().startswith("0:01.1 / 0:0")
    bar.speed_box.setCurrentIndex(bar.speed_box.findData(2.0))
    assert player.speed == 2.0
    before = player.position_s
    window.output.stream.pull(2400)  # 0.1 s heard is 0.2 s of source at 2x
    assert player.position_s == pytest.approx(before + 0.2, abs=0.02)
    # Clicking along the groove, right of the handle, seeks five seconds on (here: to the end).
    qtbot.mouseClick(bar.slider, Qt.MouseButton.LeftButton, pos=QPoint(bar.slider.width() - 2, bar.slider.height() // 2))
    assert player.position_s == pytest.approx(player.duration_s, abs=0.001)


def test_showing_another_job_stops_the_player(qtbot, window):
    player, model = window.player, window.transcript_model
    with qtbot.waitSignal(player.state_changed, timeout=TIMEOUT_MS, check_params_cb=lambda s: s == "playing"):
        window.play_segment(0)
    window.output.stream.pull(480)
    player.poll()
    assert model.playing_row == 0
    stream = window.output.stream
    window.select_job(window.queue_model.job(1).id)
    assert player.state == PlayerState.STOPPED and player.source.name == "other.wav"
    assert not stream.active and stream.closed
    assert model.playing_row is None


def test_the_tint_stays_on_the_playing_segment_when_rows_move(qtbot, window):
    player, model = window.player, window.transcript_model
    with qtbot.waitSignal(player.state_changed, timeout=TIMEOUT_MS, check_params_cb=lambda s: s == "playing"):
        window.play_segment(2)
    window.output.stream.pull(480)
    player.pause()
    assert model.playing_row == 2
    model.transcript.delete(0)  # an edit removes the first segment: the one playing is now row 1
    assert model.playing_row == 1 and model.segment(1).text == " window test."
