"""Player: decodes real files (audio and video) off the GUI thread and reports position and state as
signals. The output is a fake stream the test pulls from; tests/workers/test_player_sink.py plays through
a real one."""

from __future__ import annotations

import shutil
import subprocess
import threading

import numpy as np
import pytest
import soundfile
from PySide6.QtWidgets import QApplication

from desktop.capture.playback import LISTENING_RATE, Playback
from desktop.workers.player import Player, PlayerState
from tests.fake_output import FakeOutput

TIMEOUT_MS = 10_000


@pytest.fixture
def output():
    return FakeOutput()


@pytest.fixture
def player(qtbot, output):
    made = Player(playback_factory=lambda samples, rate: Playback(samples, rate, stream_factory=output),
                  rate_for_output=lambda: LISTENING_RATE)
    yield made
    made.close()


@pytest.fixture(scope="module")
def hello(make_speech):
    return make_speech("Hello from the playback test. One, two, three, four.")


def test_plays_a_file_after_decoding_it_and_reports_positions(qtbot, player, output, hello):
    states: list[str] = []
    player.state_changed.connect(states.append)
    player.set_source(hello)
    assert player.state == PlayerState.STOPPED
    with qtbot.waitSignal(player.duration_changed, timeout=TIMEOUT_MS) as duration:
        player.play(0.5)
    assert states[:3] == ["stopped", "loading", "playing"]
    info = soundfile.info(str(hello))
    assert duration.args[0] == pytest.approx(info.frames / info.samplerate, abs=0.02)
    # 24 kHz for the listener, whatever the file's rate (espeak-ng writes 22.05 kHz).
    assert output.stream.sample_rate == LISTENING_RATE
    assert player.position_s == pytest.approx(0.5)
    block = output.stream.pull(4800)  # 0.2 s
    assert np.abs(block).max() > 0.05  # speech, not silence
    with qtbot.waitSignal(player.position_changed, timeout=1000,
                          check_params_cb=lambda s: s == pytest.approx(0.7)):
        pass
    with qtbot.waitSignal(player.state_changed, timeout=1000, check_params_cb=lambda s: s == "paused"):
        player.toggle()
    assert player.position_s == pytest.approx(0.7)
    with qtbot.waitSignal(player.state_changed, timeout=1000, check_params_cb=lambda s: s == "playing"):
        player.toggle()
    # Played to the end: the player says so and stops polling.
    with qtbot.waitSignal(player.state_changed, timeout=TIMEOUT_MS, check_params_cb=lambda s: s == "stopped"):
        output.stream.pull_seconds(60)
    assert player.position_s == pytest.approx(duration.args[0], abs=0.001)
    assert len(output.streams) == 1


def test_the_decoded_audio_matches_the_file(hello):
    from desktop.engine.audio import decode_for_listening

    ours = decode_for_listening(hello, LISTENING_RATE).astype(np.float32) / 32768
    theirs, rate = soundfile.read(str(hello), dtype="float32")
    assert len(ours) == pytest.approx(len(theirs) * LISTENING_RATE / rate, abs=LISTENING_RATE * 0.01)
    assert np.sqrt(np.mean(ours**2)) == pytest.approx(np.sqrt(np.mean(theirs**2)), rel=0.05)


def test_plays_a_video_files_audio(qtbot, player, output, hello, tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed (packaging/apt-packages.txt)")
    video = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=64x64:r=10",
                    "-i", str(hello), "-shortest", "-c:v", "mpeg4", "-c:a", "aac", str(video)], check=True)
    player.set_source(video)
    with qtbot.waitSignal(player.duration_changed, timeout=TIMEOUT_MS) as duration:
        player.play()
    info = soundfile.info(str(hello))
    assert duration.args[0] == pytest.approx(info.frames / info.samplerate, abs=0.1)
    output.stream.pull(2400)
    block = output.stream.pull(24000)
    assert np.abs(block).max() > 0.05


def test_a_file_that_cannot_be_decoded_is_an_error_not_a_crash(qtbot, player, tmp_path):
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"this is not audio" * 100)
    player.set_source(broken)
    with qtbot.waitSignal(player.error, timeout=TIMEOUT_MS) as error:
        player.play()
    assert "Cannot play broken.mp3" in error.args[0] and "ffmpeg can read" in error.args[0]
    assert player.state == PlayerState.STOPPED


def test_no_output_device_is_an_error(qtbot, hello):
    from desktop.capture.playback import PlaybackError

    def no_device():
        raise PlaybackError("no audio output device was found")

    player = Player(rate_for_output=no_device)
    player.set_source(hello)
    with qtbot.waitSignal(player.error, timeout=TIMEOUT_MS) as error:
        player.play()
    assert "no audio output device" in error.args[0]
    player.close()


def test_nothing_to_play_without_a_source(qtbot, player):
    with qtbot.waitSignal(player.error, timeout=1000) as error:
        player.play()
    assert "select a job" in error.args[0]


def test_leaving_a_source_while_it_decodes_drops_the_result(qtbot, output, hello):
    release = threading.Event()
    calls: list[str] = []

    def slow_decoder(path, rate, cancel):
        calls.append(path.name)
        release.wait(5)
        return np.zeros(rate, dtype=np.int16)

    player = Player(decoder=slow_decoder, rate_for_output=lambda: LISTENING_RATE,
                    playback_factory=lambda samples, rate: Playback(samples, rate, stream_factory=output))
    player.set_source(hello)
    player.play()
    assert player.state == PlayerState.LOADING
    release.set()
    player.set_source(None)  # joins the decode thread; its result must not start playing
    QApplication.processEvents()  # the thread has ended: a result it sent would be delivered now
    assert player.state == PlayerState.EMPTY and not output.streams
    player.close()


def test_loop_and_speed_reach_the_playback(qtbot, player, output, hello):
    player.set_source(hello)
    player.set_speed(1.5)
    with qtbot.waitSignal(player.duration_changed, timeout=TIMEOUT_MS):
        player.play(0.0, loop=(1.0, 1.4))
    assert player.position_s == pytest.approx(1.0)  # jumped into the loop
    positions = []
    for _ in range(100):  # 2 s heard at 1.5x: several passes through 0.4 s
        output.stream.pull()
        positions.append(player.position_s)
    assert min(positions) >= 1.0 and max(positions) < 1.4
    assert sum(1 for a, b in zip(positions, positions[1:]) if b < a) >= 4
    player.set_loop(None)
    output.stream.pull_seconds(1.0)
    assert player.position_s > 1.4


def test_an_announced_duration_serves_until_the_audio_is_decoded(qtbot, player, output, hello):
    with qtbot.waitSignal(player.duration_changed, timeout=1000, check_params_cb=lambda s: s == 9.0):
        player.set_source(hello, duration_s=9.0)
    assert player.duration_s == 9.0
    player.seek(1.5)  # before decoding: where playing will start
    with qtbot.waitSignal(player.duration_changed, timeout=TIMEOUT_MS) as decoded:
        player.play()
    assert decoded.args[0] < 9.0 and player.duration_s == decoded.args[0]
    assert player.position_s == pytest.approx(1.5)
