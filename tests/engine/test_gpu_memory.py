"""Sizing GPU batches: the decoder's shape from model.bin, memory per chunk, and the engine's limits."""

from __future__ import annotations

import ctypes.util
import math
from concurrent.futures import Future
from dataclasses import replace

import numpy as np
import pytest

from desktop.engine import engine as engine_module
from desktop.engine import gpu_memory
from desktop.engine.engine import (
    AUTO_GPU_BATCH_CHUNKS,
    AUTO_GPU_BATCH_S,
    BatchLimits,
    Engine,
    _JobState,
    _Prepared,
)
from desktop.engine.events import EngineJob, TranscribeOptions
from desktop.engine.gpu_memory import DecoderShape, bytes_per_chunk, chunks_that_fit, decoder_shape
from desktop.engine.prepare import Chunk


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
    monkeypatch.setattr(engine_module, "free_bytes", lambda index: None)
    assert gpu_engine(loaded_model).batch_limits(options) == BatchLimits(AUTO_GPU_BATCH_CHUNKS, AUTO_GPU_BATCH_S)
    # A user's batch size is a count of chunks.
    assert gpu_engine(loaded_model).batch_limits(replace(options, batch_size=8)) == BatchLimits(8, math.inf)

    per_chunk = bytes_per_chunk(decoder_shape(loaded_model.path), options.beam_size)
    monkeypatch.setattr(engine_module, "free_bytes", lambda index: {0: 100 * per_chunk, 1: 30 * per_chunk}[index])
    small = gpu_engine(loaded_model, device_indices=(0, 1)).batch_limits(options)
    assert small == BatchLimits(int(30 * gpu_memory.USABLE_SHARE), AUTO_GPU_BATCH_S)  # the smaller card decides
    assert gpu_engine(loaded_model).batch_limits(replace(options, batch_size=64)).chunks == 40
    # On the CPU: a count, and no memory question asked.
    monkeypatch.setattr(engine_module, "free_bytes", lambda index: pytest.fail("asked the CPU for GPU memory"))
    assert Engine(loaded_model).batch_limits(options) == BatchLimits(4, math.inf)


def prepared_state(job_id: int, durations: list[float]) -> _JobState:
    chunks = [Chunk(index=i, features=np.zeros((80, 10), np.float32), offset_s=0.0, duration_s=d, end_s=0.0)
              for i, d in enumerate(durations)]
    future: Future = Future()
    prepared = _Prepared(duration_s=sum(durations), chunks=chunks, timeline=None, start_at_s=0.0)
    future.set_result(prepared)
    return _JobState(EngineJob(job_id, None), future, prepared=prepared)


def test_a_batch_takes_chunks_in_queue_order_until_seconds_or_count_run_out(loaded_model):
    engine = Engine(loaded_model)
    states = [prepared_state(0, [5.0, 5.0]), prepared_state(1, [4.0, 30.0]), prepared_state(2, [3.0])]
    batch = engine._next_batch(states, BatchLimits(chunks=10, seconds=14.0), [])
    # 5 + 5 + 4 = 14 s: the batch is full by seconds with three chunks, in queue order.
    assert [(i.state.job.job_id, i.chunk.index) for i in batch] == [(0, 0), (0, 1), (1, 0)]
    batch = engine._next_batch(states, BatchLimits(chunks=1, seconds=math.inf), [])
    assert [(i.state.job.job_id, i.chunk.index) for i in batch] == [(1, 1)]
    assert engine._ready_fills(states, BatchLimits(chunks=2, seconds=math.inf)) is False  # one chunk left
    assert engine._ready_fills(states, BatchLimits(chunks=9, seconds=3.0)) is True
    assert engine._next_batch(states, None, []) == []  # settling only
