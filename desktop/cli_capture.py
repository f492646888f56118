"""`verbatim record` and `verbatim devices`: record the microphone to FLAC, list audio inputs.

(desktop/cli.py picks this module up by name, as it does cli_models and cli_library.)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from desktop.cli import _formats
    from desktop.core.export import FORMATS

    record = subparsers.add_parser(
        "record",
        help="record the microphone to FLAC",
        description="Record an audio input to FLAC, written as it records, and print the file's path. "
        "Without --seconds it records until Ctrl+C, which stops cleanly and keeps the file.",
    )
    record.add_argument("--seconds", type=_positive_float, default=None, metavar="N",
                        help="stop after N seconds of audio (default: until Ctrl+C)")
    record.add_argument("--input", default=None, metavar="DEVICE",
                        help="input index or part of its name (see `verbatim devices`; default: the system's)")
    record.add_argument("-o", "--output-dir", default=None, metavar="DIR",
                        help="folder for the recording and its transcripts (default: $VERBATIM_HOME/recordings)")
    record.add_argument("--transcribe", action="store_true", help="transcribe the recording when it ends")
    record.add_argument("-f", "--formats", default="srt", type=_formats, metavar="FORMATS",
                        help=f"with --transcribe: comma-separated {','.join(FORMATS)} (default: srt)")
    record.add_argument("--model", default="base", metavar="NAME|DIR", help="with --transcribe (default: base)")
    record.add_argument("--language", default="auto", metavar="auto|CODE", help="with --transcribe")
    record.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    record.set_defaults(func=run_record)

    devices = subparsers.add_parser("devices", help="list audio inputs", description="List audio inputs.")
    devices.set_defaults(func=run_devices)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def run_devices(_args: argparse.Namespace) -> int:
    from desktop.capture.devices import CaptureError, list_inputs

    try:
        inputs = list_inputs()
    except CaptureError as exc:
        print(f"verbatim: error: {exc}", file=sys.stderr)
        return 1
    if not inputs:
        print("verbatim: no audio inputs found", file=sys.stderr)
        return 1
    rows = [("", "INDEX", "NAME", "HOST API", "CHANNELS", "RATE")]
    for d in inputs:
        rows.append(("*" if d.is_default else "", str(d.index), d.name, d.host_api, str(d.channels),
                     f"{d.default_sample_rate:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def run_record(args: argparse.Namespace) -> int:
    from desktop.capture.devices import CaptureError, resolve_input
    from desktop.capture.recorder import Recorder, new_recording_path

    stop = threading.Event()
    entry: _LibraryEntry | None = None
    try:
        device = resolve_input(args.input)
        folder = Path(args.output_dir).expanduser() if args.output_dir else None
        path = new_recording_path(folder)
        recorder = Recorder(path, device=device, max_duration_s=args.seconds)
        # Ctrl+C ends the recording, not the program: the file is closed properly and kept.
        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
        try:
            recorder.start()
            # In the library from its first second, like the window's recordings: if this process dies,
            # the window's next start finds it queued and transcribes what was recorded.
            entry = _LibraryEntry.open(path)
            if not args.quiet:
                until = f"{args.seconds:g} s of audio" if args.seconds else "Ctrl+C"
                print(f"verbatim: recording from {device.name} until {until}…", file=sys.stderr, flush=True)
            while not stop.is_set() and not recorder.wait_ended(0.1):
                pass
            result = recorder.stop()
        finally:
            signal.signal(signal.SIGINT, previous)
    except CaptureError as exc:
        if entry is not None:
            entry.close()
        print(f"verbatim: error: {exc}", file=sys.stderr)
        return 1
    print(result.path, flush=True)
    if result.error:
        print(f"verbatim: the recording stopped: {result.error}; the {result.duration_s:.1f} s recorded "
              f"before that are kept in {result.path}", file=sys.stderr)
    elif not args.quiet:
        print(f"verbatim: recorded {result.duration_s:.1f} s", file=sys.stderr)
    if result.duration_s <= 0:
        if entry is not None:
            entry.remove()
        return 1
    status = 1 if result.error else 0
    try:
        if args.transcribe:
            from desktop.cli import build_parser, run_transcribe

            argv = ["transcribe", str(result.path), "-o", str(result.path.parent), "-f", ",".join(args.formats),
                    "--model", args.model, "--language", args.language] + (["-q"] if args.quiet else [])
            transcribe_args = build_parser().parse_args(argv)
            status = max(status, run_transcribe(transcribe_args, on_transcript=entry.save if entry else None))
    finally:
        if entry is not None:
            entry.close()
    return status


class _LibraryEntry:
    """A recording's job in the library. While this process holds the recording (recording it, then
    transcribing it), the window leaves the job alone; once it lets go, the job is the window's to
    transcribe, unless a transcript was saved here first."""

    def __init__(self, store, job_id: int, hold_fd: int | None) -> None:
        self.store = store
        self.job_id = job_id
        self._hold_fd = hold_fd

    @classmethod
    def open(cls, path: Path) -> _LibraryEntry | None:
        from desktop.core.store import Store, StoreError, hold_source

        hold_fd = hold_source(path)
        try:
            store = Store()
            job = store.add_job(str(path.resolve()))
        except StoreError as exc:
            if hold_fd is not None:
                os.close(hold_fd)
            print(f"verbatim: the recording is not added to the library: {exc}", file=sys.stderr)
            return None
        return cls(store, job.id, hold_fd)

    def save(self, _path: Path, transcript) -> None:
        """Never raises: the transcript's files matter more than its copy in the library."""
        import sqlite3

        from desktop.core.jobs import JobState
        from desktop.core.store import StoreError

        info = transcript.info
        try:
            if not self.store.has_job(self.job_id):
                print("verbatim: the recording was removed from the library meanwhile; its transcript is not "
                      "saved there", file=sys.stderr)
                return
            self.store.mark_started(self.job_id, info.duration_s, info.language, info.language_probability,
                                    info.model)
            self.store.finish_job(self.job_id, transcript.segments, JobState.DONE)
        except (StoreError, sqlite3.Error) as exc:
            print(f"verbatim: the transcript is not saved to the library: {exc}", file=sys.stderr)

    def remove(self) -> None:
        from desktop.core.store import StoreError

        try:
            self.store.remove_job(self.job_id)
        except StoreError:
            pass

    def close(self) -> None:
        if self._hold_fd is not None:
            os.close(self._hold_fd)
            self._hold_fd = None
        self.store.close()
