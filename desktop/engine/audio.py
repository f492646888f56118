"""Audio in: any container ffmpeg (through PyAV) reads, to 16 kHz mono float32."""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

SAMPLE_RATE = 16000

log = logging.getLogger(__name__)

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
    if stat.S_ISDIR(st.st_mode):
        raise AudioError("is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        # A pipe would block until something writes to it, and a device never ends: neither is a recording.
        raise AudioError("not a regular file (a pipe, socket or device)")
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


def decode(path: Path, notices: list[str] | None = None) -> np.ndarray:
    """The whole input as 16 kHz mono float32 samples in [-1, 1]. What a person should know about the
    input (a stretch that could not be read, a second audio track) is appended to `notices`."""
    blocks = list(decode_blocks(path, notices=notices))
    return np.ascontiguousarray(blocks[0] if len(blocks) == 1 else np.concatenate(blocks), dtype=np.float32)


def decode_blocks(
    path: Path, block_samples: int = 60 * SAMPLE_RATE, notices: list[str] | None = None
) -> Iterator[np.ndarray]:
    """The input as consecutive 16 kHz mono float32 blocks of about `block_samples`, decoded as they are
    taken, so a file of any length needs only a block's memory. Raises AudioError like decode(); at least
    one block. Notices (as decode()) are appended once the last block is taken.

    Damaged or unfinished input gives what can be decoded, in its own time: silence stands in for what
    could not be read, so every later word keeps its time."""
    path = Path(path)
    check_readable(path)
    read = 0
    if path.suffix.lower() in _SOUNDFILE_EXTENSIONS and _is_native_16k_mono(path):
        import soundfile

        try:
            with soundfile.SoundFile(str(path)) as sound:
                while True:
                    block = sound.read(block_samples, dtype="float32", always_2d=False)
                    if not len(block):
                        break
                    read += len(block)
                    yield np.ascontiguousarray(block, dtype=np.float32)
        except RuntimeError as exc:  # soundfile.LibsndfileError
            # A recording cut off by a crash (its header never finished: "Internal psf_fseek() failed") or
            # a damaged frame ("flac decoder lost sync"): PyAV reads on past both, from where this stopped.
            log.info("libsndfile stopped reading %s after %d samples (%s); PyAV goes on", path, read, exc)
        else:
            if read:
                return
    pending: list[np.ndarray] = []
    pending_samples = 0
    skip = read
    for piece in _av_pieces(path, notices=notices):
        if skip:
            dropped = min(skip, len(piece))
            piece, skip = piece[dropped:], skip - dropped
            if not len(piece):
                continue
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
    notices: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Resampled mono frames as PyAV decodes them (from a file, or a file object), in the file's time
    (see _Timeline); at least one, or AudioError. Stops early when cancelled. Notices are appended at
    the end."""
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
    produced = 0
    with container:
        if not container.streams.audio:
            raise AudioError("has no audio track")
        stream = _chosen_audio_stream(container.streams.audio, notices)
        timeline = _Timeline(container, stream)

        def new_resampler() -> Any:
            # Whole-second output frames: the same samples as the decoder's own frame sizes, in a
            # thirtieth of the Python calls (a quarter less CPU to decode a queue of MP3s).
            return av.AudioResampler(format=sample_format, layout="mono", rate=sample_rate, frame_size=sample_rate)

        resampler = new_resampler()
        failure: av.error.FFmpegError | None = None
        try:
            for packet in container.demux(stream):
                if cancel is not None and cancel.is_set():
                    return
                try:
                    frames = packet.decode()
                except (av.error.InvalidDataError, av.error.EOFError, av.error.DecoderNotFoundError):
                    # A damaged packet costs its own stretch, not the whole file (the same policy as
                    # faster_whisper.audio._ignore_invalid_frames); the timeline pads it with silence.
                    timeline.damaged()
                    continue
                for frame in frames:
                    silence = timeline.place(frame, packet)
                    for piece in (*silence, frame) if silence else (frame,):
                        try:
                            outs = resampler.resample(piece)
                        except ValueError:
                            # The stream changed its rate or channels (a broadcast between programmes, or
                            # damage that parses as a frame): a resampler serves one shape, so the old one
                            # hands over what it holds and a new one goes on.
                            outs = resampler.resample(None)
                            resampler = new_resampler()
                            outs += resampler.resample(piece)
                        for out in outs:
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
        if notices is not None and produced:
            notices.extend(timeline.notices())
    if not produced:
        if timeline.errors:
            raise AudioError("the audio is damaged: no frame could be decoded")
        raise AudioError("contains no audio samples")


def _chosen_audio_stream(streams: Any, notices: list[str] | None) -> Any:
    """The audio track marked default, else the first; a notice when there are more."""
    import av

    default = next((s for s in streams if s.disposition & av.stream.Disposition.default), None)
    chosen = default if default is not None and len(streams) > 1 else streams[0]
    if len(streams) > 1 and notices is not None:
        which = "the first" if chosen is streams[0] else f"track {list(streams).index(chosen) + 1} (the default)"
        notices.append(f"the file has {len(streams)} audio tracks; {which} was transcribed")
    return chosen


_NO_FRAMES: tuple[Any, ...] = ()
# Gaps in a stream's timestamps shorter than this are codec rounding, not missing audio.
GAP_TOLERANCE_S = 0.05
# Without a declared duration, a longer jump is a damaged timestamp, not missing audio: no silence for it.
MAX_GAP_S = 600.0
# Damaged stretches closer than this are reported as one.
_MERGE_STRETCHES_S = 1.0
_MAX_STRETCHES_REPORTED = 5
# Demuxers of raw streams count their timestamps (one frame's length per packet) instead of reading them:
# damage their parser skips leaves no gap in them, and the bytes skipped measure what was lost.
_COUNTED_TIMESTAMP_FORMATS = frozenset({"mp3", "mp2", "aac", "ac3", "eac3", "dts", "amr"})


class _Timeline:
    """Where each decoded frame belongs in the file's time. Time 0 is where the container starts (a
    video's first frame, when the audio starts later) and silence stands in for what could not be
    decoded, so every word keeps its time in the file and in its video."""

    def __init__(self, container: Any, stream: Any) -> None:
        names = set(container.format.name.split(","))
        # FLAC's frame headers number samples from 0: a first frame later than that is a lost start.
        self.flac = "flac" in names
        self.counted = bool(names & _COUNTED_TIMESTAMP_FORMATS)
        self.flac_block = _flac_block_size(stream) if self.flac else None
        self.origin_s: float | None = 0.0 if self.flac else _seconds(container.start_time, 1e-6)
        declared_s = _seconds(container.duration, 1e-6)
        self.end_s: float | None = None if declared_s is None else (self.origin_s or 0.0) + declared_s
        self.time_base = stream.time_base
        self.position_s: float | None = None  # the end of what was placed so far, in the stream's time
        self.lag_s = 0.0  # how far counted timestamps are behind, after damage their parser skipped
        self.errors = 0
        self._errors_since = 0  # damaged packets since the last frame
        self._good_end_pos: int | None = None  # the byte after the last packet that decoded
        self._good_bytes = 0
        self._good_s = 0.0
        self._last_packet: Any = None
        self._time_base: Any = None
        self._seconds_per_tick = 0.0
        self.stretches: list[list[float]] = []  # damaged [start_s, end_s] from time 0

    def damaged(self) -> None:
        self.errors += 1
        self._errors_since += 1

    def place(self, frame: Any, packet: Any) -> Sequence[Any]:
        """Silent frames (like `frame`) to put before it: its timestamp is later than the audio so far."""
        first_of_packet = packet is not self._last_packet
        self._last_packet = packet
        length_s = frame.samples / frame.sample_rate
        start_s = self._start_s(frame)
        if self.position_s is None:
            if self.origin_s is None:
                self.origin_s = start_s or 0.0
            self.position_s = self.origin_s
        gap_s = 0.0 if start_s is None else start_s - self.position_s
        if self.flac and first_of_packet and (gap_s > GAP_TOLERANCE_S or gap_s < -GAP_TOLERANCE_S):
            # FFmpeg's FLAC parser can join the frames before a damaged stretch into the packet after it,
            # and stamp them with that packet's time; the frame header's own number tells the truth.
            sample = _flac_first_sample(packet, self.flac_block)
            gap_s = 0.0 if sample is None else sample / frame.sample_rate - self.position_s
        if self.counted:
            gap_s = self._count_bytes(packet, first_of_packet, length_s, gap_s)
        # The common case (the next frame, where the last one ended) costs the lines above and no more.
        if not self._errors_since and -GAP_TOLERANCE_S <= gap_s <= GAP_TOLERANCE_S:
            self.position_s += length_s
            return _NO_FRAMES
        limit_s = self.end_s + 1.0 if self.end_s is not None else self.position_s + MAX_GAP_S
        if gap_s > GAP_TOLERANCE_S and self.position_s + gap_s > limit_s:
            log.info("a timestamp jumps %.1f s past the file's end: no silence for it", gap_s)
            gap_s = 0.0
        if self._errors_since or (self.flac and gap_s > GAP_TOLERANCE_S):
            start = self.position_s - (self.origin_s or 0.0)
            self._report(start, start + max(gap_s, 0.0))
        self._errors_since = 0
        silence: Sequence[Any] = _NO_FRAMES
        if gap_s > GAP_TOLERANCE_S:
            silence = _silent_frames(frame, gap_s)
            self.position_s += gap_s
        self.position_s += length_s
        return silence

    def _start_s(self, frame: Any) -> float | None:
        """The frame's timestamp in seconds (as a float: Fraction arithmetic per frame costs more than the rest)."""
        if frame.pts is None:
            return None
        time_base = frame.time_base or self.time_base
        if time_base is None:
            return None
        if time_base != self._time_base:
            self._time_base, self._seconds_per_tick = time_base, float(time_base)
        return frame.pts * self._seconds_per_tick + self.lag_s

    def _count_bytes(self, packet: Any, first_of_packet: bool, length_s: float, gap_s: float) -> float:
        """For counted timestamps: the gap the bytes skipped since the last good packet measure, when there
        was damage (timestamps from then on are that much behind); the byte rate of good packets otherwise."""
        position = packet.pos if packet.pos is not None and packet.pos >= 0 else None
        if self._errors_since and position is not None and self._good_end_pos is not None and self._good_bytes:
            skipped_s = (position - self._good_end_pos) * self._good_s / self._good_bytes
            if skipped_s > gap_s:
                self.lag_s += skipped_s - max(gap_s, 0.0)
                gap_s = skipped_s
        if first_of_packet and position is not None and packet.size:
            self._good_end_pos = position + packet.size
            self._good_bytes += packet.size
        self._good_s += length_s
        return gap_s

    def _report(self, start_s: float, end_s: float) -> None:
        if self.stretches and start_s - self.stretches[-1][1] < _MERGE_STRETCHES_S:
            self.stretches[-1][1] = max(self.stretches[-1][1], end_s)
        else:
            self.stretches.append([start_s, end_s])

    def notices(self) -> list[str]:
        shown = [_stretch_text(a, b) for a, b in self.stretches[:_MAX_STRETCHES_REPORTED]]
        more = len(self.stretches) - len(shown)
        if more > 0:
            shown.append(f"{more} more damaged stretch{'es' if more > 1 else ''} could not be read")
        if self._errors_since and self.position_s is not None:  # no frame decoded after the damage
            shown.append(f"the audio from {_clock(self.position_s - (self.origin_s or 0.0))} to the end could not "
                         "be read (damaged)")
        return shown


def _flac_block_size(stream: Any) -> int | None:
    """The stream's largest block size from its STREAMINFO (FFmpeg's extradata), None when unknown."""
    info = bytes(stream.codec_context.extradata or b"")
    return int.from_bytes(info[2:4], "big") or None if len(info) >= 34 else None


def _flac_first_sample(packet: Any, block_size: int | None) -> int | None:
    """The number of the first sample in a FLAC frame, from its header (the FLAC format, "FRAME_HEADER"):
    a sample number, or a frame number times the stream's block size. None when the packet does not
    start with a frame header."""
    head = bytes(packet)[:16]
    if len(head) < 5 or head[0] != 0xFF or head[1] & 0xFE != 0xF8:
        return None
    variable = head[1] & 1
    lead = head[4]
    # UTF-8-style coding: the count of leading ones is the number of bytes (one when there is none).
    length = 1 if lead < 0x80 else next((n for n in range(2, 8) if lead >> (7 - n) == (0xFF >> (7 - n)) - 1), 0)
    if not length or len(head) < 4 + length:
        return None
    number = lead & (0x7F >> length if length > 1 else 0x7F)
    for byte in head[5 : 4 + length]:
        if byte >> 6 != 2:
            return None
        number = number << 6 | byte & 0x3F
    if variable:
        return number
    return None if block_size is None else number * block_size


def _stretch_text(start_s: float, end_s: float) -> str:
    first, last = _clock(start_s), _clock(end_s)
    if first == last:
        return f"damaged audio around {first} could not be read"
    return f"{first}-{last} could not be read (damaged audio; silence stands in for it)"


def _clock(seconds: float) -> str:
    whole = int(max(seconds, 0.0))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _seconds(value: int | None, unit: float) -> float | None:
    return None if value is None else value * unit


def _silent_frames(like: Any, seconds: float) -> list[Any]:
    """`seconds` of silence as frames of `like`'s format, layout and rate (a second each at most)."""
    import av

    frames = []
    left = int(round(seconds * like.sample_rate))
    quiet = b"\x80" if like.format.name.startswith("u8") else b"\x00"  # unsigned 8-bit silence is 128
    while left > 0:
        samples = min(left, like.sample_rate)
        frame = av.AudioFrame(format=like.format.name, layout=like.layout, samples=samples)
        frame.sample_rate = like.sample_rate
        for plane in frame.planes:
            plane.update(quiet * plane.buffer_size)
        frames.append(frame)
        left -= samples
    return frames


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
