"""Playback without a sound card: a fake stream pulls blocks the way PortAudio's callback does, so positions,
seek, loop wrap and the time-stretch are checked sample by sample."""

from __future__ import annotations

import numpy as np
import pytest

from desktop.capture.playback import Playback, PlaybackError, PlaybackState
from tests.fake_output import FakeStream

RATE = 24000


def make(samples: np.ndarray, rate: int = RATE) -> tuple[Playback, list[FakeStream]]:
    streams: list[FakeStream] = []

    def factory(sample_rate, fill, finished):
        streams.append(FakeStream(sample_rate, fill, finished))
        return streams[-1]

    return Playback(samples, rate, stream_factory=factory), streams


def ramp(seconds: float) -> np.ndarray:
    """Every sample different, so where a block came from in the source is readable from its values."""
    return (np.arange(int(seconds * RATE), dtype=np.float32) / (seconds * RATE)).astype(np.float32)


def test_plays_the_samples_from_the_start_and_reports_the_position():
    source = ramp(1.0)
    playback, streams = make(source)
    assert playback.state == PlaybackState.STOPPED and playback.position_s == 0.0
    playback.play()
    assert playback.state == PlaybackState.PLAYING
    block = streams[0].pull(2400)
    np.testing.assert_array_equal(block, source[:2400])
    assert playback.position_s == pytest.approx(0.1)


def test_int16_samples_are_scaled_to_floats():
    playback, streams = make(np.array([0, 16384, -32768, 32767] * 10, dtype=np.int16))
    playback.play()
    np.testing.assert_allclose(streams[0].pull(4), [0.0, 0.5, -1.0, 32767 / 32768])


def test_plays_to_the_end_then_stops_and_plays_again_from_the_start():
    source = ramp(0.05)  # 1200 samples
    playback, streams = make(source)
    playback.play(0.02)
    out = np.concatenate([streams[0].pull(500), streams[0].pull(500)])
    np.testing.assert_array_equal(out[:720], source[480:])
    np.testing.assert_array_equal(out[720:], 0)  # silence after the end, not stale samples
    assert not streams[0].active
    assert playback.state == PlaybackState.STOPPED
    assert playback.position_s == pytest.approx(0.05)
    playback.play()
    assert streams[0].starts == 2 and len(streams) == 1  # the same stream, restarted
    np.testing.assert_array_equal(streams[0].pull(100), source[:100])


def test_pause_keeps_the_position_and_resume_continues_seamlessly():
    source = ramp(1.0)
    playback, streams = make(source)
    playback.play()
    first = streams[0].pull(1000)
    playback.pause()
    assert playback.state == PlaybackState.PAUSED and not streams[0].active
    assert playback.position_s == pytest.approx(1000 / RATE)
    playback.play()
    second = streams[0].pull(1000)
    np.testing.assert_array_equal(np.concatenate([first, second]), source[:2000])
    assert playback.take_error() is None  # a pause is not a failure


def test_stop_goes_back_to_the_start():
    playback, streams = make(ramp(1.0))
    playback.play(0.5)
    streams[0].pull()
    playback.stop()
    assert playback.state == PlaybackState.STOPPED and playback.position_s == 0.0


def test_seek_while_playing_takes_effect_at_the_next_block():
    source = ramp(2.0)
    playback, streams = make(source)
    playback.play()
    streams[0].pull(480)
    playback.seek(1.5)
    assert playback.position_s == pytest.approx(1.5)
    np.testing.assert_array_equal(streams[0].pull(480), source[36000:36480])
    playback.seek(99)  # clamped to the end
    assert playback.position_s == pytest.approx(2.0)


def test_loop_wraps_to_its_start_exactly():
    source = ramp(1.0)
    playback, streams = make(source)
    playback.set_loop(0.25, 0.3)  # [6000, 7200)
    assert playback.position_s == pytest.approx(0.25)  # jumped into the range
    playback.play()
    out = streams[0].pull(3000)
    expected = np.concatenate([source[6000:7200]] * 3)[:3000]
    np.testing.assert_array_equal(out, expected)
    assert playback.position_s == pytest.approx((6000 + 3000 % 1200) / RATE)
    assert playback.state == PlaybackState.PLAYING
    playback.clear_loop()
    later = streams[0].pull(1200)
    np.testing.assert_array_equal(later, source[6600:7800])  # runs on past the old loop end


def test_a_loop_must_be_a_range():
    playback, _ = make(ramp(1.0))
    with pytest.raises(ValueError):
        playback.set_loop(0.5, 0.5)
    with pytest.raises(ValueError):
        playback.set_speed(3.0)


def tone(frequency_hz: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum)) * RATE / len(samples)


@pytest.mark.parametrize("speed", [0.5, 0.75, 1.5, 2.0])
def test_speed_changes_duration_not_pitch(speed):
    source = tone(220.0, 2.0)
    playback, streams = make(source)
    playback.set_speed(speed)
    playback.play()
    blocks = []
    positions = []
    while streams[0].active:
        blocks.append(streams[0].pull())
        positions.append(playback.position_s)
    out = np.concatenate(blocks)
    heard = out[: np.flatnonzero(np.abs(out) > 1e-4)[-1] + 1]
    # Duration: 2 s of source take 2/speed seconds, give or take one frame (30 ms) at each end.
    assert len(heard) / RATE == pytest.approx(2.0 / speed, abs=0.07)
    # Positions advance `speed` source seconds per second heard.
    assert np.all(np.diff(positions) >= 0)
    seconds_heard = 0.5
    index = int(seconds_heard * RATE / streams[0].block_frames)
    assert positions[index] == pytest.approx((index + 1) * streams[0].block_frames / RATE * speed, abs=0.04)
    assert playback.position_s == pytest.approx(2.0)
    # Pitch: the tone stays at 220 Hz (plain resampling would move it to 220 * speed).
    middle = heard[len(heard) // 4 : 3 * len(heard) // 4]
    assert peak_hz(middle) == pytest.approx(220.0, abs=3.0)
    # No dropouts or doubled amplitude where frames overlap: the envelope stays level.
    envelope = np.abs(middle[: len(middle) // 240 * 240]).reshape(-1, 240).max(axis=1)
    assert envelope.min() > 0.45 and envelope.max() < 0.55


def test_speed_change_while_playing_keeps_the_position():
    playback, streams = make(tone(200.0, 3.0))
    playback.play(1.0)
    streams[0].pull(2400)
    before = playback.position_s
    playback.set_speed(2.0)
    assert playback.position_s == pytest.approx(before)
    streams[0].pull(2400)
    assert playback.position_s == pytest.approx(before + 0.2, abs=0.02)


def test_stretched_loop_wraps_inside_its_range():
    playback, streams = make(tone(200.0, 3.0))
    playback.set_speed(0.5)
    playback.set_loop(1.0, 1.5)
    playback.play()
    seen = []
    for _ in range(70):  # 1.4 s heard: one pass through the half-second loop at half speed, then a second
        streams[0].pull()
        seen.append(playback.position_s)
    assert min(seen) >= 1.0 and max(seen) < 1.5
    assert sum(1 for a, b in zip(seen, seen[1:]) if b < a) == 1  # only backwards at the wrap
    assert playback.state == PlaybackState.PLAYING


def test_a_stream_that_fails_pauses_with_a_reason():
    playback, streams = make(ramp(1.0))
    playback.play()
    streams[0].pull()
    streams[0].active = False
    streams[0].finished()  # PortAudio gave up (device unplugged)
    assert playback.state == PlaybackState.PAUSED
    assert "stopped unexpectedly" in (playback.take_error() or "")
    assert playback.take_error() is None


def test_a_stream_that_cannot_start_is_a_clear_error():
    class Broken(FakeStream):
        def start(self):
            raise RuntimeError("Device unavailable [PaErrorCode -9985]")

    playback = Playback(ramp(1.0), RATE, stream_factory=lambda *a: Broken(*a))
    with pytest.raises(PlaybackError, match="did not start.*Device unavailable"):
        playback.play()
    assert playback.state == PlaybackState.STOPPED


def test_close_stops_and_closes_the_stream():
    playback, streams = make(ramp(1.0))
    playback.play()
    playback.close()
    assert streams[0].closed and not streams[0].active
    with pytest.raises(PlaybackError):
        playback.play()


def test_position_is_what_is_heard_after_the_output_latency():
    source = ramp(2.0)

    def factory(sample_rate, fill, finished):
        stream = FakeStream(sample_rate, fill, finished)
        stream.latency = 0.1  # as sounddevice reports it: 2400 samples queued between us and the speaker
        streams.append(stream)
        return stream

    streams: list[FakeStream] = []
    playback = Playback(source, RATE, stream_factory=factory)
    playback.play(0.5)
    streams[0].pull(1200)
    assert playback.position_s == pytest.approx(0.5)  # handed over, not heard yet
    streams[0].pull(4800)
    assert playback.position_s == pytest.approx(0.5 + 0.15)  # 0.25 s delivered, 0.1 s of it still queued
    playback.pause()  # what was queued is dropped: resume replays it rather than skip it
    assert playback.position_s == pytest.approx(0.65)
    playback.play()
    np.testing.assert_array_equal(streams[0].pull(480), source[15600:16080])
    # Across a loop's wrap the readout follows what is heard, not what was rendered.
    playback.set_loop(0.6, 0.8)
    heard = []
    for _ in range(40):
        streams[0].pull(480)
        heard.append(playback.position_s)
    assert min(heard) >= 0.6 - 1e-9 and max(heard) < 0.8
    # At the end the readout reaches the end once the last samples are heard.
    playback.clear_loop()
    streams[0].pull_seconds(3.0)
    assert playback.state == PlaybackState.STOPPED and playback.position_s == pytest.approx(2.0)


def test_an_output_device_that_does_not_exist_is_a_clear_error():
    from desktop.capture.playback import sounddevice_stream

    with pytest.raises(PlaybackError, match="no audio output device was found"):
        sounddevice_stream(RATE, lambda out: True, lambda: None, device="no such output device")
