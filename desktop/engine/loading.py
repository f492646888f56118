"""Loading the speech model once per process: pick the device, the compute type, and warm it up."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from desktop.core.settings import COMPUTE_TYPES, DEVICES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    path: Path
    device: str  # "cpu" | "cuda"
    compute_type: str
    # Why the device differs from the one asked for (e.g. "CUDA unavailable: ... — using the CPU").
    device_note: str | None
    whisper: Any  # faster_whisper.WhisperModel
    device_indices: tuple[int, ...] = (0,)  # the GPUs of `whisper`, in this process
    workers_per_gpu: int = 1
    # Further GPUs, each served by an engine process of its own with its own replica (engine/multi_gpu.py).
    shard_gpus: tuple[int, ...] = ()
    # Free memory on each of device_indices just after the weights loaded (None: unknown, or not read):
    # the engine sizes batches by it. Read here, once, because later the caching allocator's idle
    # blocks count as used and every engine made after the first run would size its batches smaller.
    gpu_free_bytes: tuple[int | None, ...] | None = None

    @property
    def description(self) -> str:
        gpus = (*self.device_indices, *self.shard_gpus)
        where = self.device if self.device == "cpu" else f"cuda:{','.join(map(str, gpus))}"
        return f"{self.name} on {where} ({self.compute_type})"


def cuda_device_count() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # noqa: BLE001 - any failure here just means "no usable CUDA"
        return 0


def pick_compute_type(device: str, requested: str) -> str:
    if requested != "auto":
        return requested
    if device == "cpu":
        return "int8"
    import ctranslate2

    supported = ctranslate2.get_supported_compute_types("cuda")
    for candidate in ("int8_float16", "float16", "float32"):
        if candidate in supported:
            return candidate
    return "float32"


def load_model(
    name_or_path: str = "base",
    device: str = "auto",
    compute_type: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    on_status: Callable[[str], None] | None = None,
    device_indices: tuple[int, ...] | None = None,
    cpu_threads: int = 0,
    # CTranslate2 workers (model replicas) per GPU; None: auto_workers_per_gpu.
    workers_per_gpu: int | None = None,
    # With several GPUs: this process drives the first and each other one gets an engine process
    # (False: one process drives them all, as before; benchmarks compare the two).
    gpu_processes: bool = True,
) -> LoadedModel:
    """Resolve (assemble or download) the model, load it on the best device and warm it up."""
    from desktop.engine import models
    from desktop.engine.gpu_memory import free_bytes

    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}")
    if compute_type not in COMPUTE_TYPES:
        raise ValueError(f"compute type must be one of {', '.join(COMPUTE_TYPES)}")

    status = on_status or (lambda _stage: None)
    if name_or_path not in (models.BASE_MODEL,) and not Path(name_or_path).expanduser().is_dir():
        status("downloading")
    path = models.resolve_model(name_or_path, progress=progress, cancel=cancel)
    name = name_or_path if not Path(name_or_path).expanduser().is_dir() else Path(name_or_path).name

    status("loading")
    note: str | None = None
    whisper = None
    chosen = "cpu"
    shard_gpus: tuple[int, ...] = ()
    gpu_free_bytes: tuple[int | None, ...] | None = None
    if device in ("auto", "cuda"):
        count = cuda_device_count()
        indices = device_indices or tuple(range(count))
        if count == 0:
            note = "no CUDA GPU visible to CTranslate2; using the CPU"
        else:
            try:
                chosen_type = pick_compute_type("cuda", compute_type)
                # Read once for both choices: before CTranslate2 holds a card's context, each read makes
                # and drops one.
                frees = [free_bytes(index) for index in indices]
                if workers_per_gpu is None:
                    workers_per_gpu = auto_workers_per_gpu(path, frees)
                here = indices[:1] if gpu_processes else indices
                configure_cuda_allocator(frees, workers_per_gpu)
                whisper = _construct(path, "cuda", chosen_type, list(here), cpu_threads, workers_per_gpu)
                gpu_free_bytes = tuple(free_bytes(index) for index in here)
                _warm(whisper)
                chosen = "cuda"
                compute_type = chosen_type
                device_indices = here
                shard_gpus = tuple(indices[len(here) :])
            except Exception as exc:  # noqa: BLE001 - CUDA fails in many ways (cuBLAS missing, OOM, driver)
                note = f"CUDA failed ({_first_line(exc)}); using the CPU"
                whisper = None
    if whisper is None:
        chosen = "cpu"
        compute_type = pick_compute_type("cpu", compute_type if compute_type in ("int8", "float32") else "auto")
        device_indices = (0,)
        try:
            whisper = _construct(path, "cpu", compute_type, [0], cpu_threads, 1)
        except Exception as exc:  # noqa: BLE001
            raise models.ModelError(f"cannot load the model at {path}: {_first_line(exc)}") from exc
        status("warming")
        _warm(whisper)
    else:
        status("warming")
    if note:
        # Asked for CUDA and not getting it is worth a warning; `auto` falling back is expected.
        log.log(logging.WARNING if device == "cuda" else logging.INFO, "%s", note)
    status("ready")
    return LoadedModel(
        name=name,
        path=path,
        device=chosen,
        compute_type=compute_type,
        device_note=note,
        whisper=whisper,
        device_indices=tuple(device_indices or (0,)),
        workers_per_gpu=(workers_per_gpu or 1) if chosen == "cuda" else 1,
        shard_gpus=shard_gpus,
        gpu_free_bytes=gpu_free_bytes if chosen == "cuda" else None,
    )


# A model this small leaves room on a roomy card for more workers, each with its own batches in flight.
SMALL_MODEL_BYTES = 1 << 30
ROOMY_GPU_BYTES = 16 << 30


def auto_workers_per_gpu(model_path: Path, frees: list[int | None]) -> int:
    """Workers (model replicas) per GPU. Several batches decode side by side on one card: a batch of a
    small model is bound by kernel launches and the CPU-side steps between them, not by the card, so
    more workers fill it better: on an H200 with base, 69 real files took 1.2-1.4 s with two workers,
    0.9-1.1 s with four, and no less with six or eight (benchmarks/results/2026-11-29-gpu-tuning.md). Each
    worker holds a copy of the
    weights and takes a share of the memory batches may use, so large models and small cards keep two.
    `frees`: each GPU's free memory (None where it will not say)."""
    from desktop.engine.gpu_memory import smallest_known

    try:
        size = (Path(model_path) / "model.bin").stat().st_size
    except OSError:
        return 2
    free = smallest_known(frees)
    if size <= SMALL_MODEL_BYTES and free is not None and free >= ROOMY_GPU_BYTES:
        return 4
    return 2


# CTranslate2's CUDA allocator. Its default, cudaMallocAsync, hands freed memory back to the driver each
# time a worker waits on its stream, so every batch allocates its memory anew; its other one, cub's
# caching allocator, caches blocks of at most 16 MiB and 200 MB in all, while one batch of base holds
# 0.7 GB blocks (a decoder layer's cross-attention keys for 96 chunks, five beams). With blocks up to
# 4^15 B (1 GiB) cached, up to 8 GiB a worker, the same queues ran faster on an H200
# (benchmarks/results/2026-11-30-allocator-warmup-cpu-stage.md). Only where every card is as roomy as those
# H200s: bins that grow fourfold round a block (weights included) up to as much as four times its size, and a
# worker that runs out of memory frees only its own cache.
ALLOCATOR_ENV = "CT2_CUDA_ALLOCATOR"
ALLOCATOR_CONFIG_ENV = "CT2_CUDA_CACHING_ALLOCATOR_CONFIG"  # bin growth, smallest bin, largest bin, bytes a worker
# The allocator this process chose ("cub_caching" or "default"). CTranslate2 picks its allocator once per
# process, at the first allocation on a card; engine processes for the other GPUs inherit the environment
# and so keep the same one. A CT2 variable without this mark is the user's, and is left alone.
ALLOCATOR_CHOSEN_ENV = "VERBATIM_CT2_ALLOCATOR"
ALLOCATOR_CACHE_MIN_FREE_BYTES = 64 << 30
ALLOCATOR_CACHE_MAX_BYTES = 8 << 30
_allocator_lock = threading.Lock()


def allocator_cache_config(free: int, workers_per_gpu: int) -> str:
    """The caching allocator's settings: the workers' caches together within the share of free memory
    that batches may use, at most ALLOCATOR_CACHE_MAX_BYTES each."""
    from desktop.engine.gpu_memory import USABLE_SHARE

    cached = min(ALLOCATOR_CACHE_MAX_BYTES, int(free * USABLE_SHARE) // max(1, workers_per_gpu))
    return f"4,3,15,{cached}"


def cuda_allocator_settings(frees: list[int | None], workers_per_gpu: int) -> dict[str, str]:
    """The environment that selects the caching allocator, given each card's free memory; empty (keep
    CTranslate2's default) when a card has less than ALLOCATOR_CACHE_MIN_FREE_BYTES or will not say."""
    from desktop.engine.gpu_memory import smallest_known

    free = smallest_known(frees)
    if free is None or free < ALLOCATOR_CACHE_MIN_FREE_BYTES:
        return {}
    return {ALLOCATOR_ENV: "cub_caching", ALLOCATOR_CONFIG_ENV: allocator_cache_config(free, workers_per_gpu)}


def configure_cuda_allocator(frees: list[int | None], workers_per_gpu: int) -> None:
    """Before a model's construction on the GPUs (`frees`: each card's free memory): the first time in a
    process (and its engine processes), choose CTranslate2's allocator from every card's free memory;
    later (another model, or an engine process), keep that choice and size the caching allocator's caches
    for this model's workers, which read the setting when they start."""
    from desktop.engine.gpu_memory import smallest_known

    with _allocator_lock:
        chosen = os.environ.get(ALLOCATOR_CHOSEN_ENV)
        if chosen is None:
            if ALLOCATOR_ENV in os.environ or ALLOCATOR_CONFIG_ENV in os.environ:
                return  # the user's choice
            settings = cuda_allocator_settings(frees, workers_per_gpu)
            os.environ.update(settings)
            os.environ[ALLOCATOR_CHOSEN_ENV] = settings.get(ALLOCATOR_ENV, "default")
            log.info("CUDA allocator: %s", ", ".join(f"{k}={v}" for k, v in settings.items()) or "CTranslate2's default")
        elif chosen == "cub_caching":
            free = smallest_known(frees)
            if free is not None:
                os.environ[ALLOCATOR_CONFIG_ENV] = allocator_cache_config(free, workers_per_gpu)


def _construct(
    path: Path, device: str, compute_type: str, indices: list[int], cpu_threads: int, workers: int
) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(path),
        device=device,
        device_index=indices,
        compute_type=compute_type,
        cpu_threads=cpu_threads,
        # Workers per device (CTranslate2's inter_threads): with several GPUs, one replica on each,
        # and the engine keeps that many batches in flight (see Engine.parallel_batches).
        num_workers=workers,
        local_files_only=True,
    )


def _warm(whisper: Any) -> None:
    """One short pass through encoder and decoder, so the first real job does not pay for
    lazy allocations (and so a broken CUDA set-up fails here, at load, not in a job)."""
    silence = np.zeros(16000, dtype=np.float32)
    features = whisper.feature_extractor(silence)[..., :-1]
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    tokenizer = Tokenizer(whisper.hf_tokenizer, whisper.model.is_multilingual, task="transcribe", language="en")
    encoded = whisper.encode(pad_or_trim(features))
    prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
    whisper.model.generate(encoded, [prompt], max_length=len(prompt) + 4, beam_size=1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
