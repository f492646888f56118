"""Sizing GPU batches: the decoder's shape from model.bin, memory per chunk, and the engine's limits."""

from __future__ import annotations

import ctypes.util
import math
import os
import threading
from dataclasses import replace

import pytest

from desktop.engine import decoding, gpu_memory
from desktop.engine import engine as engine_module
from desktop.engine.engine import AUTO_GPU_BATCH_CHUNKS, AUTO_GPU_BATCH_S, Engine
from desktop.engine.events import EngineJob, JobFinished, SegmentsDecoded, TranscribeOptions
from desktop.engine.gpu_memory import DecoderShape, bytes_per_chunk, chunks_that_fit, decoder_shape
from desktop.engine.scheduler import BatchLimits


def test_the_bundled_models_decoder_shape_is_read_from_its_variable_table(base_model_dir):
    assert decoder_shape(base_model_dir) == DecoderShape(layers=6, width=512, vocabulary=51865)


def test_a_file_that_is_not_a_model_has_no_shape(tmp_path):
    assert decoder_shape(tmp_path) is None  # no model.bin
    (tmp_path / "model.bin").write_bytes(b"\x06\x00\x00\x00" + b"garbage" * 3)
    assert decoder_shape(tmp_path) is None


def test_memory_per_chunk_grows_with_beams_layers_and_width():
    base = DecoderShape(layers=6, width=512, vocabulary=51865)
    large = DecoderShape(layers=32, width=1280, vocabulary=51866)
    per_chunk = bytes_per_chunk(base, beam_size=5)
    # Cross-attention keys and values dominate: 5 beams x 6 layers x 2 x 1500 frames x 512 x 2 bytes.
    assert 5 * 6 * 2 * 1500 * 512 * 2 < per_chunk < 2 * 5 * 6 * 2 * 1500 * 512 * 2
    assert bytes_per_chunk(base, beam_size=1) < per_chunk / 3
    assert bytes_per_chunk(large, beam_size=5) > 10 * per_chunk
    assert bytes_per_chunk(base, 5, value_bytes=4) > 1.9 * per_chunk - 4 * 1500 * 512 * 10


def test_chunks_that_fit():
    assert chunks_that_fit(None, 1000) is None
    assert chunks_that_fit(10_000, 1000, share=0.5) == 5
    assert chunks_that_fit(10, 1000) == 1  # never less than one: out-of-memory halving is the last word


def test_free_memory_needs_a_cuda_driver():
    free = gpu_memory.free_bytes(0)
    if ctypes.util.find_library("cuda") is None:
        assert free is None
    else:  # a machine with a driver (the device machine); a driver without a GPU says nothing
        assert free is None or free > 0


def gpu_engine(loaded_model, **changes):
    """The CPU model dressed as a CUDA one: batch_limits only reads the description."""
    model = replace(loaded_model, device="cuda", compute_type="float16", **changes)
    return Engine(model, prepare_in_processes=False, parallel_batches=1)


def test_gpu_batches_are_sized_by_seconds_and_capped_by_free_memory(loaded_model, monkeypatch):
    options = TranscribeOptions()
    monkeypatch.setattr(gpu_memory, "free_bytes", lambda index: None)
    assert gpu_engine(loaded_model).batch_limits(options) == BatchLimits(AUTO_GPU_BATCH_CHUNKS, AUTO_GPU_BATCH_S)
    # A user's batch size is a count of chunks.
    assert gpu_engine(loaded_model).batch_limits(replace(options, batch_size=8)) == BatchLimits(8, math.inf)

    # Sized by the type CTranslate2 resolved, not the one asked for: this CPU model computes int8 with
    # float32 activations, four bytes a value, though its description says float16.
    assert loaded_model.whisper.model.compute_type == "int8_float32"
    per_chunk = bytes_per_chunk(decoder_shape(loaded_model.path), options.beam_size, value_bytes=4)
    monkeypatch.setattr(gpu_memory, "free_bytes", lambda index: {0: 100 * per_chunk, 1: 30 * per_chunk}[index])
    small = gpu_engine(loaded_model, device_indices=(0, 1)).batch_limits(options)
    assert small == BatchLimits(int(30 * gpu_memory.USABLE_SHARE), AUTO_GPU_BATCH_S)  # the smaller card decides
    assert gpu_engine(loaded_model).batch_limits(replace(options, batch_size=64)).chunks == 40
    # On the CPU: a count, and no memory question asked.
    monkeypatch.setattr(gpu_memory, "free_bytes", lambda index: pytest.fail("asked the CPU for GPU memory"))
    assert Engine(loaded_model).batch_limits(options) == BatchLimits(8, math.inf)


def test_two_workers_on_a_card_share_its_memory(loaded_model, monkeypatch):
    per_chunk = bytes_per_chunk(decoder_shape(loaded_model.path), 5, value_bytes=4)  # int8_float32, as above
    monkeypatch.setattr(gpu_memory, "free_bytes", lambda index: 100 * per_chunk)
    one = gpu_engine(loaded_model).batch_limits(TranscribeOptions()).chunks
    two = gpu_engine(loaded_model, workers_per_gpu=2).batch_limits(TranscribeOptions()).chunks
    assert one == 40 and two == 20


def test_batches_are_sized_by_the_memory_free_when_the_model_loaded(loaded_model, monkeypatch):
    """The caching allocator's idle blocks count as used: an engine made after a run must not read the
    card again and size its batches smaller."""
    per_chunk = bytes_per_chunk(decoder_shape(loaded_model.path), 5, value_bytes=4)  # int8_float32, as above
    monkeypatch.setattr(gpu_memory, "free_bytes", lambda index: pytest.fail("read the card again"))
    assert gpu_engine(loaded_model, gpu_free_bytes=(100 * per_chunk,)).batch_limits(TranscribeOptions()).chunks == 40
    monkeypatch.setattr(gpu_memory, "free_bytes", lambda index: 30 * per_chunk)
    assert gpu_engine(loaded_model, gpu_free_bytes=(100 * per_chunk, None)).batch_limits(TranscribeOptions()).chunks \
        == AUTO_GPU_BATCH_CHUNKS  # one card unknown: no memory cap, as when the driver will not say


def test_the_gpu_schedule_gives_the_cpu_schedules_events(loaded_model, make_speech, monkeypatch):
    """The GPU path's scheduling (opening shares, seconds, several batches in flight), run on the CPU model:
    every job gets the same events and text as the CPU schedule gives it, in order."""
    monkeypatch.setattr(gpu_memory, "free_bytes", lambda index: None)
    files = [make_speech(text, lang) for text, lang in [
        ("The quick brown fox jumps over the lazy dog.", "en"),
        ("Guten Tag. Das ist ein Test der Spracherkennung auf Deutsch.", "de"),
        ("Buenos días. Hoy vamos a la playa con nuestros amigos.", "es"),
        ("Please send me the report before the meeting on Thursday morning.", "en"),
    ]]
    jobs = [EngineJob(i, f) for i, f in enumerate(files)]
    # Batches of two chunks and three decoders: the first two batches take a one-chunk share each.
    options = TranscribeOptions(temperatures=(0.0,), batch_size=2)
    on_cpu = list(Engine(loaded_model).run(jobs, options, threading.Event()))
    scheduled = replace(loaded_model, device="cuda", compute_type="float16")
    engine = Engine(scheduled, prepare_in_processes=False, parallel_batches=3, prepare_workers=2)
    engine.encoder_margin_frames = decoding.ENCODER_MARGIN_FRAMES  # the CPU's windows: only the schedule differs
    on_gpu_schedule = list(engine.run(jobs, options, threading.Event()))
    assert engine.stats.batches >= 3  # the opening shares split four files over three batches or more
    for job_id in range(len(files)):
        ours = [e for e in on_gpu_schedule if e.job_id == job_id]
        theirs = [e for e in on_cpu if e.job_id == job_id]
        assert [type(e).__name__ for e in ours] == [type(e).__name__ for e in theirs]
        text = lambda events: " ".join(  # noqa: E731
            s.text for e in events if isinstance(e, SegmentsDecoded) for s in e.segments)
        assert text(ours) == text(theirs)


def test_workers_per_gpu_grow_for_a_small_model_on_roomy_cards(base_model_dir, tmp_path):
    from desktop.engine import loading

    gib = 1 << 30
    assert loading.auto_workers_per_gpu(base_model_dir, [80 * gib, 40 * gib]) == 4  # base (145 MB), both cards roomy
    assert loading.auto_workers_per_gpu(base_model_dir, [80 * gib, 6 * gib]) == 2  # the smaller card decides
    assert loading.auto_workers_per_gpu(base_model_dir, [None]) == 2  # unknown memory: the safe choice
    large = tmp_path / "large"
    large.mkdir()
    with open(large / "model.bin", "wb") as f:
        f.truncate(3 * gib)  # sparse: a large-v3-sized file without the disk space
    assert loading.auto_workers_per_gpu(large, [80 * gib]) == 2


def test_the_caching_allocator_is_chosen_only_on_roomy_cards_and_stays_within_the_batches_share():
    from desktop.engine import loading

    gib = 1 << 30
    roomy = loading.cuda_allocator_settings([139 * gib, 139 * gib], 4)
    assert roomy[loading.ALLOCATOR_ENV] == "cub_caching"
    growth, smallest, largest, cached = map(int, roomy[loading.ALLOCATOR_CONFIG_ENV].split(","))
    assert (growth, smallest, largest) == (4, 3, 15)
    assert cached == loading.ALLOCATOR_CACHE_MAX_BYTES  # 40% of 139 GiB over 4 workers is more than the cap
    tight = loading.cuda_allocator_settings([70 * gib], 4)
    cached = int(tight[loading.ALLOCATOR_CONFIG_ENV].split(",")[3])
    assert cached * 4 <= 70 * gib * gpu_memory.USABLE_SHARE  # four workers' caches within the batches' share
    assert loading.cuda_allocator_settings([139 * gib, 24 * gib], 2) == {}  # the smaller card decides
    assert loading.cuda_allocator_settings([None], 2) == {}  # unknown memory: CTranslate2's default
    assert loading.cuda_allocator_settings([], 2) == {}


@pytest.fixture
def allocator_environment(monkeypatch):
    """No allocator variables at the start; monkeypatch restores whatever the test sets."""
    from desktop.engine import loading

    for name in (loading.ALLOCATOR_ENV, loading.ALLOCATOR_CONFIG_ENV, loading.ALLOCATOR_CHOSEN_ENV):
        monkeypatch.setenv(name, "")  # registered first, so the teardown restores the variable as it was
        monkeypatch.delenv(name)
    return loading


def test_the_first_load_chooses_the_allocator_and_later_ones_keep_it(allocator_environment):
    loading = allocator_environment
    gib = 1 << 30
    loading.configure_cuda_allocator([139 * gib], 4)
    assert os.environ[loading.ALLOCATOR_ENV] == "cub_caching"
    assert os.environ[loading.ALLOCATOR_CHOSEN_ENV] == "cub_caching"
    assert os.environ[loading.ALLOCATOR_CONFIG_ENV] == f"4,3,15,{loading.ALLOCATOR_CACHE_MAX_BYTES}"
    # Another model (or an engine process, which inherits the environment): the same allocator, caches
    # sized for its workers and its card, even a card that would not have chosen it.
    loading.configure_cuda_allocator([20 * gib], 2)
    assert os.environ[loading.ALLOCATOR_ENV] == "cub_caching"
    assert os.environ[loading.ALLOCATOR_CONFIG_ENV] == f"4,3,15,{int(20 * gib * gpu_memory.USABLE_SHARE) // 2}"


def test_a_small_card_first_keeps_the_default_for_the_process(allocator_environment):
    loading = allocator_environment
    loading.configure_cuda_allocator([8 << 30], 2)
    assert os.environ[loading.ALLOCATOR_CHOSEN_ENV] == "default"
    loading.configure_cuda_allocator([139 << 30], 4)  # too late: CTranslate2 has chosen its default
    assert loading.ALLOCATOR_ENV not in os.environ and loading.ALLOCATOR_CONFIG_ENV not in os.environ


def test_the_users_allocator_choice_is_kept(allocator_environment, monkeypatch):
    loading = allocator_environment
    monkeypatch.setenv(loading.ALLOCATOR_ENV, "cuda_malloc_async")
    loading.configure_cuda_allocator([139 << 30], 4)
    assert os.environ[loading.ALLOCATOR_ENV] == "cuda_malloc_async"
    assert loading.ALLOCATOR_CONFIG_ENV not in os.environ and loading.ALLOCATOR_CHOSEN_ENV not in os.environ


def test_a_slow_batch_does_not_hold_the_decoders_free(loaded_model, make_speech, monkeypatch):
    """Batches are emitted in the order sent, but a finished one frees its decoder at once: while the
    first batch is still decoding (a fallback, say), the third goes to the decoder the second freed."""
    monkeypatch.setattr(gpu_memory, "free_bytes", lambda index: None)
    scheduled = replace(loaded_model, device="cuda", compute_type="float16")
    engine = Engine(scheduled, prepare_in_processes=False, parallel_batches=2, prepare_workers=2)
    real_compute = engine.decoder.compute_batch
    third_started = threading.Event()
    started: list[int] = []
    lock = threading.Lock()

    def compute(batch, options):
        with lock:
            started.append(batch[0].state.job.job_id)
            position = len(started)
        if position == 3:
            third_started.set()
        if position == 1:
            # Held until the third batch starts: before, the finished second batch kept its decoder
            # until the first was emitted, and the third waited for this one.
            assert third_started.wait(20), "the third batch waited for the first"
        return real_compute(batch, options)

    monkeypatch.setattr(engine.decoder, "compute_batch", compute)
    speech = make_speech("The quick brown fox jumps over the lazy dog.", "en")
    jobs = [EngineJob(i, speech) for i in range(4)]
    events = list(engine.run(jobs, TranscribeOptions(batch_size=1, temperatures=(0.0,)), threading.Event()))
    # Emitted in the order the batches were sent (a file prepared first may go first).
    assert [e.job_id for e in events if isinstance(e, JobFinished)] == started
    for job_id in range(4):
        assert any(isinstance(e, SegmentsDecoded) and e.job_id == job_id for e in events)


def test_files_sent_to_a_decoder_do_not_hold_back_the_read_ahead(loaded_model, make_speech, monkeypatch):
    """The read-ahead bounds files waiting to be sent, not files already sent: while the first batch
    decodes, later files are still prepared. Counting sent files, a queue of short files was capped at
    192 files between preparation and emission, whatever the number of GPUs."""
    monkeypatch.setattr(gpu_memory, "free_bytes", lambda index: None)
    scheduled = replace(loaded_model, device="cuda", compute_type="float16")
    engine = Engine(scheduled, prepare_in_processes=False, parallel_batches=2, prepare_workers=2)
    options = TranscribeOptions(batch_size=1, temperatures=(0.0,))
    limits = engine.batch_limits(options)
    read_ahead = max(8, 2 * limits.chunks)  # the engine's limit on files waiting: 8 here
    last = read_ahead + 2
    real_prepare, real_compute = engine._prepare, engine.decoder.compute_batch
    last_prepared = threading.Event()
    first = threading.Lock()

    def prepare(job, options):
        prepared = real_prepare(job, options)
        if job.job_id == last:
            last_prepared.set()
        return prepared

    def compute(batch, options):
        if first.acquire(blocking=False):  # the first batch sent decodes until the last file is prepared
            assert last_prepared.wait(20), "preparation stopped while the first batch decoded"
        return real_compute(batch, options)

    monkeypatch.setattr(engine, "_prepare", prepare)
    monkeypatch.setattr(engine.decoder, "compute_batch", compute)
    speech = make_speech("The quick brown fox jumps over the lazy dog.", "en")
    jobs = [EngineJob(i, speech) for i in range(last + 1)]
    events = list(engine.run(jobs, options, threading.Event()))
    assert sorted(e.job_id for e in events if isinstance(e, JobFinished)) == list(range(last + 1))


def test_cpu_stage_processes_grow_with_the_gpus_and_cores(loaded_model, monkeypatch):
    """A core each, less two for the decoder threads, at most 16 per GPU (two GPUs outran 16 processes)."""
    for cores, devices, expected in [(16, (0,), 14), (32, (0,), 16), (32, (0, 1), 30), (64, (0, 1), 32), (4, (0,), 2)]:
        monkeypatch.setattr(engine_module.os, "cpu_count", lambda cores=cores: cores)
        engine = gpu_engine(loaded_model, device_indices=devices)
        assert engine.prepare_workers == expected, (cores, devices)
