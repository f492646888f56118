"""The CPU engine's memory: its encoder in slices of a batch (the same output, a fraction of the peak)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from desktop.engine.host_memory import encode_in_slices, encoder_rows

REPO = Path(__file__).resolve().parents[2]
SHARED_AUDIO = REPO.parent / "shared" / "audio"

# In a fresh process: the engine's encoder on a CPU batch of eight 30 s chunks of real speech. Its peak
# above the process's resident memory before it, and whether its output is the whole batch's at once.
_ENCODE_PEAK = """
import json, resource, sys
import numpy as np
from faster_whisper.transcribe import get_ctranslate2_storage
from desktop.engine.audio import decode
from desktop.engine.decoding import padded_features
from desktop.engine.engine import Engine
from desktop.engine.loading import load_model

model = load_model("base", device="cpu")
engine = Engine(model)
audio = np.tile(decode(sys.argv[1]), 8)
chunks = [model.whisper.feature_extractor(audio[i * 480000 : (i + 1) * 480000])[:, :3000] for i in range(8)]
features = padded_features(chunks)
engine.decoder.encode(features[:1])  # the encoder's first-call allocations, before the measure
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
output = engine.decoder.encode(features)
extra_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
whole = np.asarray(model.whisper.model.encode(get_ctranslate2_storage(features), to_cpu=True))
print(json.dumps({"extra_mb": extra_mb, "same": bool(np.array_equal(output, whole)), "shape": output.shape}))
"""


@pytest.mark.model
def test_a_cpu_batch_of_eight_30s_chunks_encodes_within_a_third_of_a_gigabyte(base_model_dir):
    """Eight 30 s rows at once lifted the process by 0.67 GB (the self-attention's scores of every row);
    in slices the peak is a fraction, and the encoder's output is bit for bit the same."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "VERBATIM_BASE_MODEL": str(base_model_dir)}
    out = subprocess.run(
        [sys.executable, "-c", _ENCODE_PEAK, str(SHARED_AUDIO / "apollo11.mp3")],
        capture_output=True, text=True, check=True, cwd=REPO, env=env,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["shape"] == [8, 1500, 512]
    assert result["same"]
    assert result["extra_mb"] < 350, f"encoding took {result['extra_mb']:.0f} MB above what the process held"


def test_slices_keep_the_rows_in_order_and_each_call_within_its_rows():
    calls: list[int] = []

    def encode(rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        return rows[:, 0, :2] * 2

    features = np.arange(7 * 3 * 4, dtype=np.float32).reshape(7, 3, 4)
    out = encode_in_slices(encode, features, 3)
    assert calls == [3, 3, 1]
    np.testing.assert_array_equal(out, features[:, 0, :2] * 2)
    calls.clear()
    encode_in_slices(encode, features, 8)
    assert calls == [7]


def test_shorter_windows_take_more_rows_at_once():
    """The attention's memory grows with the square of the window: a third of the window, nine times the rows."""
    assert encoder_rows(3000, full_rows=2) == 2
    assert encoder_rows(1000, full_rows=2) == 18
    assert encoder_rows(6000, full_rows=2) == 1  # never none


# In a fresh process: a worker thread allocates 180 MB in blocks with small survivors between them (as a
# batch's work leaves its results), then frees the blocks; resident memory above the start, before and after.
_THREAD_HEAP = """
import json, threading
from desktop.engine.host_memory import release_freed_heap

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

start = rss_mb()
survivors = []

def work():
    blocks = []
    for _ in range(3000):
        blocks.append(b"x" * 60_000)
        survivors.append(b"y" * 600)

thread = threading.Thread(target=work)
thread.start()
thread.join()
freed = rss_mb() - start
released = release_freed_heap()
print(json.dumps({"freed": freed, "released": released, "trimmed": rss_mb() - start}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_memory_a_worker_thread_freed_goes_back_to_the_system():
    """glibc keeps a thread's freed blocks in that thread's arena (90 MB of these 180 MB here); the trim
    hands them back."""
    out = subprocess.run(
        [sys.executable, "-c", _THREAD_HEAP], capture_output=True, text=True, check=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["released"] is True
    assert result["trimmed"] < 30, f"{result['trimmed']:.0f} MB still resident after the trim ({result})"
