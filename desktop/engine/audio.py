"""Audio in: any container ffmpeg (through PyAV) reads, to 16 kHz mono float32."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

SAMPLE_RATE = 16000

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".wma", ".amr"}
)
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv"})
SUPPORTED_EXTENSIONS = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS

# Formats libsndfile reads natively: a 16 kHz mono file of these needs no resampler at all.
_SOUNDFILE_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".aiff", ".aif"})


class AudioError(Exception):
    """The input cannot be turned into audio; the message is one short sentence for the user."""


def is_supported(path: Path) -> bool:
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS


def check_readable(path: Path) -> None:
    """Fail early, with the reason a person understands, for inputs that cannot be opened at all."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioError("file not found") from None
    except PermissionError:
        raise AudioError("permission denied") from None
    except OSError as exc:
        raise AudioError(_os_reason(exc)) from None
    if path.is_dir():
        raise AudioError("is a folder, not a file")
    if st.st_size == 0:
        raise AudioError("the file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioError("permission denied")


def probe_duration_s(path: Path) -> float | None:
    """The duration the container declares, without decoding; None when unknown or unreadable."""
    try:
        import av

        with av.open(str(path), metadata_errors="ignore", options=_open_options(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1_000_000
    except Exception:  # noqa: BLE001 - a probe never raises; decoding reports the real error
        return None
    return None


def decode(path: Path) -> np.ndarray:
    """The whole input as 16 kHz mono float32 samples in [-1, 1]."""
    path = Path(path)
    check_readable(path)
    if path.suffix.lower() in _SOUNDFILE_EXTENSIONS:
        samples = _read_native_16k_mono(path)
        if samples is not None:
            return samples
    return _decode_with_av(path)


def decode_blocks(path: Path, block_samples: int = 60 * SAMPLE_RATE) -> Iterator[np.ndarray]:
    """The input as consecutive 16 kHz mono float32 blocks of about `block_samples`, decoded as they are
    taken, so a file of any length needs only a block's memory. Raises AudioError like decode()."""
    path = Path(path)
    check_readable(path)
    if path.suffix.lower() in _SOUNDFILE_EXTENSIONS and _is_native_16k_mono(path):
        import soundfile

        with soundfile.SoundFile(str(path)) as sound:
            while True:
                block = sound.read(block_samples, dtype="float32", always_2d=False)
                if not len(block):
                    return
                yield np.ascontiguousarray(block, dtype=np.float32)
    pending: list[np.ndarray] = []
    pending_samples = 0
    for piece in _av_pieces(path):
        pending.append(piece)
        pending_samples += len(piece)
        if pending_samples >= block_samples:
            yield np.ascontiguousarray(np.concatenate(pending), dtype=np.float32)
            pending, pending_samples = [], 0
    if pending:
        yield np.ascontiguousarray(np.concatenate(pending), dtype=np.float32)


def _is_native_16k_mono(path: Path) -> bool:
    try:
        import soundfile

        info = soundfile.info(str(path))
    except Exception:  # noqa: BLE001 - no libsndfile, or a file it cannot read: PyAV decides
        return False
    return info.samplerate == SAMPLE_RATE and info.channels == 1


def _read_native_16k_mono(path: Path) -> np.ndarray | None:
    """Read directly when the file already is 16 kHz mono (no resampling, no mixing)."""
    if not _is_native_16k_mono(path):
        return None
    try:
        import soundfile

        samples, _ = soundfile.read(str(path), dtype="float32", always_2d=False)
    except Exception:  # noqa: BLE001 - no libsndfile, or a file it cannot read: PyAV decides, and words the error
        return None
    return np.ascontiguousarray(samples, dtype=np.float32)


def _decode_with_av(path: Path) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate(list(_av_pieces(path))), dtype=np.float32)


def decode_for_listening(path: Path, sample_rate: int, cancel: threading.Event | None = None) -> np.ndarray:
    """The first audio track (video files included) as mono int16 at sample_rate, for playback in the
    editor: half the memory of float32, and a rate chosen for the ear rather than for Whisper. AudioError
    as decode() words it; an empty array when cancelled."""
    path = Path(path)
    check_readable(path)
    pieces = list(_av_pieces(path, sample_rate, "s16", cancel))
    if cancel is not None and cancel.is_set():
        return np.zeros(0, dtype=np.int16)
    return np.ascontiguousarray(np.concatenate(pieces), dtype=np.int16)


def _av_pieces(
    path: Path | IO[bytes],
    sample_rate: int = SAMPLE_RATE,
    sample_format: str = "flt",
    cancel: threading.Event | None = None,
) -> Iterator[np.ndarray]:
    """Resampled mono frames as PyAV decodes them (from a file, or a file object); at least one, or
    AudioError. Stops early when cancelled."""
    import av

    try:
        container = av.open(
            path if hasattr(path, "read") else str(path),
            mode="r",
            metadata_errors="ignore",
            options={} if hasattr(path, "read") else _open_options(path),  # type: ignore[arg-type]
        )
    except av.error.FileNotFoundError:
        raise AudioError("file not found") from None
    except av.error.PermissionError:
        raise AudioError("permission denied") from None
    except (av.error.InvalidDataError, av.error.EOFError, av.error.DemuxerNotFoundError):
        raise AudioError("not an audio or video file ffmpeg can read (unknown or damaged format)") from None
    except av.error.FFmpegError as exc:
        raise AudioError(f"cannot open the file ({exc.strerror or exc})") from None
    errors = 0
    produced = 0
    with container:
        if not container.streams.audio:
            raise AudioError("has no audio track")
        stream = container.streams.audio[0]
        # Whole-second output frames: the same samples as the decoder's own frame sizes, in a
        # thirtieth of the Python calls (a quarter less CPU to decode a queue of MP3s).
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=sample_rate, frame_size=sample_rate)
        failure: av.error.FFmpegError | None = None
        try:
            for packet in container.demux(stream):
                if cancel is not None and cancel.is_set():
                    return
                try:
                    frames = packet.decode()
                except (av.error.InvalidDataError, av.error.EOFError, av.error.DecoderNotFoundError):
                    # A damaged packet costs its few milliseconds, not the whole file
                    # (same policy as faster_whisper.audio._ignore_invalid_frames).
                    errors += 1
                    continue
                for frame in frames:
                    for out in resampler.resample(frame):
                        produced += 1
                        yield out.to_ndarray().reshape(-1)
        except av.error.FFmpegError as exc:
            failure = exc
        # The end of the input, or an error that ends reading it: either way the resampler still holds up to
        # a second of what was decoded before, and that is kept.
        try:
            for out in resampler.resample(None):
                produced += 1
                yield out.to_ndarray().reshape(-1)
        except av.error.FFmpegError as exc:
            failure = failure or exc
        if failure is not None and not produced:
            raise AudioError(f"cannot decode the audio ({failure.strerror or failure})") from None
    if not produced:
        if errors:
            raise AudioError("the audio is damaged: no frame could be decoded")
        raise AudioError("contains no audio samples")


# An ID3v2 tag at least this large is skipped rather than read (_open_options).
LARGE_TAG_BYTES = 1 << 20


def _open_options(path: Path) -> dict[str, str]:
    """av.open's options for a file: skip a large ID3v2 tag at its start. ffmpeg parses the whole tag when
    it opens the file, and a PRIV frame's bytes become a metadata string four times their size ("\\xNN"
    each): a 100 MB tag cost 0.9 GB and half a minute for a 4 s clip. Nothing here uses the tag; a small
    one (the usual title and cover) is left to ffmpeg, as before."""
    skip = id3v2_tags_bytes(path)
    return {"skip_initial_bytes": str(skip)} if skip >= LARGE_TAG_BYTES else {}


def id3v2_tags_bytes(path: Path) -> int:
    """The size of the ID3v2 tags (one or more, one after another) at the start of a file; 0 for none."""
    total = 0
    try:
        with open(path, "rb") as file:
            while True:
                file.seek(total)
                header = file.read(10)
                # "ID3", a version byte and a revision byte (never 0xFF), flags, and a 28-bit "syncsafe" size.
                if len(header) < 10 or header[:3] != b"ID3" or 0xFF in header[3:5] or any(b & 0x80 for b in header[6:]):
                    return total
                size = (header[6] << 21) | (header[7] << 14) | (header[8] << 7) | header[9]
                total += 10 + size + (10 if header[5] & 0x10 else 0)  # flag 0x10: a 10-byte footer follows
    except OSError:  # ffmpeg opens it next, and words the error
        return total


def _os_reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOENT:
        return "file not found"
    return exc.strerror or str(exc)
