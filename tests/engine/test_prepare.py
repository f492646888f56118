"""The CPU stage: long files are decoded, searched for speech and featurized window by window."""

from __future__ import annotations

import difflib
import re
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from desktop.engine import prepare
from desktop.engine.audio import SAMPLE_RATE, decode, decode_blocks
from desktop.engine.engine import Engine
from desktop.engine.events import EngineJob, SegmentsDecoded, TranscribeOptions

pytestmark = pytest.mark.model

TEXT = " ".join(
    f"Paragraph {n}. The {animal} walked slowly across the {place} before the sun went down."
    for n, (animal, place) in enumerate(
        [("fox", "field"), ("horse", "bridge"), ("rabbit", "garden"), ("goat", "hill"), ("cat", "roof"),
         ("dog", "beach")], start=1)
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def spoken_share(segments) -> float:
    """The share of TEXT's words that the segments read, in order (longest common subsequence)."""
    spoken = words(TEXT)
    matcher = difflib.SequenceMatcher(a=spoken, b=words(" ".join(s.text for s in segments)), autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(spoken)


@pytest.fixture(scope="module")
def long_clip(make_speech):
    return make_speech(TEXT, name="windows.wav", rate=16000)


@pytest.mark.parametrize("suffix", [".wav", ".mp3"])
def test_blocks_join_to_the_whole_decode(long_clip, tmp_path, suffix):
    path = long_clip
    if suffix != ".wav":
        path = tmp_path / f"clip{suffix}"
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(long_clip), str(path)], check=True)
    blocks = list(decode_blocks(path, block_samples=5 * SAMPLE_RATE))
    assert len(blocks) > 2 and all(len(b) >= 5 * SAMPLE_RATE for b in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate(blocks), decode(path))


def test_windows_cover_the_file_once_and_keep_one_timeline(long_clip, loaded_model, monkeypatch):
    extractor = loaded_model.whisper.feature_extractor
    with ThreadPoolExecutor(2) as pool:
        whole = prepare.prepare_audio(long_clip, decode(long_clip), 0.0, True, extractor, pool)
        monkeypatch.setattr(prepare, "STREAM_WINDOW_S", 12)
        windowed = prepare.prepare_audio(long_clip, None, 0.0, True, extractor, pool)
        resumed = prepare.prepare_audio(long_clip, None, 20.0, True, extractor, pool)
        # A range (a re-run): decoding stops at its end, streamed or in memory, in the file's own time.
        ranges = [prepare.prepare_audio(long_clip, audio, 8.0, True, extractor, pool, end_at_s=21.5)
                  for audio in (None, decode(long_clip))]
    assert windowed.duration_s == pytest.approx(whole.duration_s, abs=1e-6)
    assert len(windowed.chunks) > len(whole.chunks)  # no chunk spans a window cut
    # Speech spans are in order, never overlap, and the chunks tile the speech-only timeline.
    spans = [(s["start"], s["end"]) for s in windowed.speech]
    assert all(a_end <= b_start for (_a, a_end), (b_start, _b) in zip(spans, spans[1:]))
    speech_s = sum(end - start for start, end in spans) / SAMPLE_RATE
    offsets = [c.offset_s for c in windowed.chunks]
    assert offsets[0] == 0.0 and offsets == sorted(offsets)
    assert offsets[-1] + windowed.chunks[-1].duration_s == pytest.approx(speech_s, abs=1e-3)
    assert [c.index for c in windowed.chunks] == list(range(len(windowed.chunks)))
    ends = [c.end_s for c in windowed.chunks]
    assert ends == sorted(ends) and ends[-1] <= windowed.duration_s
    # A resume point inside the file: spans count from it, and chunks end after it.
    assert resumed.start_at_s == 20.0 and resumed.duration_s == pytest.approx(whole.duration_s, abs=1e-6)
    assert resumed.chunks and all(c.end_s > 20.0 for c in resumed.chunks)
    for ranged in ranges:
        assert ranged.start_at_s == 8.0 and ranged.duration_s == pytest.approx(21.5, abs=1e-3)
        assert ranged.chunks and all(8.0 < c.end_s <= 21.5 for c in ranged.chunks)
        spoken_s = sum(s["end"] - s["start"] for s in ranged.speech) / SAMPLE_RATE
        assert 0 < spoken_s <= 13.5


def test_a_windowed_file_reads_like_the_whole(long_clip, loaded_model, monkeypatch):
    def transcribe():
        events = list(Engine(loaded_model).run([EngineJob(0, long_clip)], TranscribeOptions(), threading.Event()))
        return [s for e in events if isinstance(e, SegmentsDecoded) for s in e.segments]

    whole = transcribe()
    monkeypatch.setattr(prepare, "STREAM_WINDOW_S", 12)
    windowed = transcribe()
    # Both passes are scored against what was spoken: base mishears a word or two of espeak either way
    # ("fox" for "horse"), so the windowed pass must read about as much of the text as the whole one did.
    assert spoken_share(windowed) >= 0.85
    assert spoken_share(windowed) >= spoken_share(whole) - 0.06
    assert all(a.end_s <= b.start_s + 0.01 for a, b in zip(windowed, windowed[1:]))
    # The text lands at the same times: the first and the last segment start where they did.
    assert windowed[0].start_s == pytest.approx(whole[0].start_s, abs=1.0)
    assert windowed[-1].start_s == pytest.approx(whole[-1].start_s, abs=3.0)
    assert windowed[-1].end_s == pytest.approx(whole[-1].end_s, abs=1.0)


def test_chunks_carry_their_own_frames_and_batch_padded(make_speech, loaded_model):
    """A short chunk travels from a worker process as its own frames (a sixth of a padded chunk for 5 s);
    batched, it reads exactly as faster-whisper's padded features."""
    from faster_whisper.audio import pad_or_trim

    from desktop.engine.decoding import padded_features

    clip = make_speech("The horizon seems extremely distant.", rate=16000)
    with ThreadPoolExecutor(2) as pool:
        prepared = prepare.prepare_audio(clip, None, 0.0, True, loaded_model.whisper.feature_extractor, pool)
    (chunk,) = prepared.chunks
    frames = chunk.features.shape[1]
    assert chunk.features.shape[0] == 80 and abs(frames - chunk.duration_s * 100) <= 2
    assert frames < prepare.FRAMES_PER_CHUNK / 3
    long = np.ones((80, 3200), np.float32)  # longer than a chunk: trimmed, as pad_or_trim does
    batch = padded_features([chunk.features, long])
    assert batch.shape == (2, 80, prepare.FRAMES_PER_CHUNK)
    np.testing.assert_array_equal(batch[0], pad_or_trim(chunk.features, prepare.FRAMES_PER_CHUNK))
    np.testing.assert_array_equal(batch[1], pad_or_trim(long, prepare.FRAMES_PER_CHUNK))
    short = padded_features([chunk.features], 1000)  # a short window (the CPU's): the frames, then zeros
    assert short.shape == (1, 80, 1000)
    np.testing.assert_array_equal(short[0], pad_or_trim(chunk.features, 1000))


def test_a_worker_process_warms_each_stage_it_runs(loaded_model, monkeypatch):
    """Decoding (through PyAV, from a WAV in memory), VAD and features each run once when a worker
    process starts, so the user's first files do not pay for their first calls."""
    from desktop.engine import audio

    ran: list[str] = []
    real_pieces, real_vad = audio._av_pieces, prepare.speech_timestamps
    extractor = loaded_model.whisper.feature_extractor

    def pieces(source, *args, **kwargs):
        out = list(real_pieces(source, *args, **kwargs))
        ran.append(f"decode {sum(len(p) for p in out)}")
        return iter(out)

    monkeypatch.setattr(audio, "_av_pieces", pieces)
    monkeypatch.setattr(prepare, "speech_timestamps", lambda samples, pool: ran.append("vad") or real_vad(samples, pool))
    with ThreadPoolExecutor(1) as pool:
        monkeypatch.setitem(prepare._process_state, "threads", pool)
        monkeypatch.setitem(prepare._process_state, "extractor",
                            lambda samples: ran.append("features") or extractor(samples))
        prepare._warm_stages()
    assert ran == [f"decode {SAMPLE_RATE}", "vad", "features"]  # one second, resampled to 16 kHz


def test_worker_processes_are_ready_when_every_process_has_started():
    """The no-op tasks that start a spawn pool's processes are all done by the first one up; the
    ready future waits until every process has run its initializer, and a pool already started is
    ready at once (the app makes an engine per run on the same pool)."""
    pool = prepare.worker_processes({"feature_size": 80}, 3, threads=1)
    try:
        ready = prepare.start_worker_processes(pool, 3)
        assert ready.result(timeout=120) == 3
        assert prepare._started[pool].value == 3
        pids = {pool.submit(prepare.process_ready).result(timeout=60) for _ in range(12)}
        assert len(pool._processes) == 3 and pids <= set(pool._processes)
        assert prepare.start_worker_processes(pool, 3).result(timeout=10) == 3
    finally:
        prepare.discard_worker_processes(pool)


def test_a_pool_whose_processes_cannot_start_is_not_ready():
    """An initializer that fails breaks the pool: the ready future says so rather than waiting."""
    pool = prepare.worker_processes({"no_such_argument": 1}, 2, threads=1)
    try:
        ready = prepare.start_worker_processes(pool, 2)
        assert ready.exception(timeout=120) is not None
    finally:
        prepare.discard_worker_processes(pool)



def _gone(process) -> bool:
    """The process has ended. The pool's own management thread may reap it first, and then is_alive() keeps
    saying True (its waitpid fails with ECHILD), so a pid that no longer exists counts as gone too."""
    import os

    if not process.is_alive():
        return True
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return True
    return False


def _mark_then_sleep(marker: str) -> None:
    """A task that says it has started, then runs far longer than any test (in a pool's process)."""
    import threading
    from pathlib import Path

    Path(marker).touch()
    threading.Event().wait(600)  # the long file's CPU stage: nothing ever sets it


def test_terminating_the_pools_stops_running_tasks_within_the_timeout(tmp_path):
    """An app on its way out cannot wait for a long file's CPU stage (minutes): the processes are stopped
    in the middle of their task, and the pool is forgotten (the next engine makes a new one)."""
    import time
    from concurrent.futures import wait
    from concurrent.futures.process import BrokenProcessPool

    prepare.close_worker_processes()  # pools earlier tests left idle would be counted too
    pool = prepare.worker_processes({"feature_size": 80}, 2, threads=1)
    try:
        assert prepare.start_worker_processes(pool, 2).result(timeout=120) == 2
        processes = list(pool._processes.values())
        markers = [tmp_path / f"started-{i}" for i in range(2)]
        busy = [pool.submit(_mark_then_sleep, str(marker)) for marker in markers]
        deadline = time.monotonic() + 60
        while not all(marker.exists() for marker in markers):  # both processes inside their task
            assert time.monotonic() < deadline and not any(f.done() for f in busy), [f.exception() for f in busy]
            wait(busy, timeout=0.05)
        begin = time.monotonic()
        assert prepare.terminate_worker_processes(timeout_s=1.0) == 2
        assert time.monotonic() - begin < 3
        assert all(_gone(process) for process in processes)
        assert not wait(busy, timeout=10).not_done
        assert all(isinstance(f.exception(), BrokenProcessPool) for f in busy)
        assert prepare.worker_processes({"feature_size": 80}, 2, threads=1) is not pool
    finally:
        prepare.discard_worker_processes(pool)
        prepare.close_worker_processes()
