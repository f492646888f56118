"""How many chunks fit in one GPU batch: the model's decoder shape, read from its model.bin, against the
free memory the CUDA driver reports. No Qt, and no CUDA library beyond the driver's libcuda."""

from __future__ import annotations

import ctypes
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENCODER_FRAMES = 1500  # Whisper's encoder output per 30 s chunk
MAX_TOKENS = 448  # Whisper's decoder context
N_MELS_MAX = 128
# Of the memory free when the first batch is sized, the share batches may take: CTranslate2's
# caching allocator, cuBLAS workspaces and a second batch in flight on the same card need the rest.
USABLE_SHARE = 0.4


@dataclass(frozen=True)
class DecoderShape:
    layers: int
    width: int  # d_model
    vocabulary: int


def decoder_shape(model_dir: Path) -> DecoderShape | None:
    """The decoder's layer count and width from a CTranslate2 Whisper model.bin (its variable table,
    read without loading the weights). None when the file is not one we can read."""
    try:
        with open(Path(model_dir) / "model.bin", "rb") as f:

            def read(fmt: str) -> tuple[int, ...]:
                size = struct.calcsize(fmt)
                data = f.read(size)
                if len(data) != size:
                    raise EOFError
                return struct.unpack(fmt, data)

            def string() -> str:
                (length,) = read("<H")
                return f.read(length)[:-1].decode("utf-8")

            read("<I")  # binary version
            string()  # spec name
            read("<I")  # spec revision
            (count,) = read("<I")
            layers: set[int] = set()
            width = vocabulary = 0
            for _ in range(count):
                name = string()
                (rank,) = read("<B")
                dims: tuple[int, ...] = read(f"<{rank}I") if rank else ()
                read("<B")  # dtype
                (size,) = read("<I")
                f.seek(size, 1)
                if not name.startswith("decoder/"):
                    if layers:
                        break  # variables are sorted: the decoder's come first
                    continue
                part = name.split("/")[1]
                if part.startswith("layer_") and part[6:].isdigit():
                    layers.add(int(part[6:]))
                if name == "decoder/embeddings/weight" and len(dims) == 2:
                    vocabulary, width = dims[0], dims[1]
    except (OSError, EOFError, UnicodeDecodeError, struct.error):
        return None
    if not layers or not width:
        return None
    return DecoderShape(layers=len(layers), width=width, vocabulary=vocabulary)


def bytes_per_chunk(shape: DecoderShape, beam_size: int, value_bytes: int = 2) -> int:
    """GPU memory one 30 s chunk needs while its batch is decoded: the cross-attention keys and values
    of every layer for every beam (the largest part), the self-attention cache up to the token limit,
    the encoder's output and widest activation, the input features and the logits."""
    beams = max(1, beam_size)
    cross = beams * shape.layers * 2 * ENCODER_FRAMES * shape.width * value_bytes
    own = beams * shape.layers * 2 * MAX_TOKENS * shape.width * value_bytes
    encoder = ENCODER_FRAMES * shape.width * 5 * value_bytes  # output + the 4x-wide feed-forward
    features = N_MELS_MAX * 3000 * 4
    logits = beams * max(shape.vocabulary, 51865) * 4
    return cross + own + encoder + features + logits


def free_bytes(device_index: int) -> int | None:
    """Free memory on one CUDA device (the driver's count, device numbering as CUDA_VISIBLE_DEVICES
    gives it), or None when there is no driver or it will not say."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    try:
        if cuda.cuInit(0) != 0:
            return None
        device = ctypes.c_int()
        if cuda.cuDeviceGet(ctypes.byref(device), device_index) != 0:
            return None
        # The primary context is the one CTranslate2's runtime calls use: retaining it creates nothing new.
        context = ctypes.c_void_p()
        if cuda.cuDevicePrimaryCtxRetain(ctypes.byref(context), device) != 0:
            return None
        try:
            if cuda.cuCtxPushCurrent_v2(context) != 0:
                return None
            try:
                free, total = ctypes.c_size_t(), ctypes.c_size_t()
                if cuda.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(total)) != 0:
                    return None
                return int(free.value)
            finally:
                cuda.cuCtxPopCurrent_v2(ctypes.byref(ctypes.c_void_p()))
        finally:
            cuda.cuDevicePrimaryCtxRelease_v2(device)
    except (AttributeError, OSError) as exc:  # an old driver without the _v2 entry points
        log.info("could not ask the CUDA driver for free memory: %s", exc)
        return None


def smallest_known(frees: list[int | None]) -> int | None:
    """The least free memory over some cards; None when there are none or any will not say."""
    if not frees or any(free is None for free in frees):
        return None
    return min(free for free in frees if free is not None)


def chunks_that_fit(free: int | None, per_chunk: int, share: float = USABLE_SHARE) -> int | None:
    """How many chunks a batch may hold in `free` bytes (at least 1); None when free is unknown."""
    if free is None or per_chunk <= 0:
        return None
    return max(1, int(free * share) // per_chunk)
