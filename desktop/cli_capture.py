"""`verbatim record` and `verbatim devices`: record the microphone to FLAC, list audio inputs.

(desktop/cli.py picks this module up by name, as it does cli_models and cli_library.)
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from desktop.cli import _formats

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
                        help="with --transcribe: comma-separated srt,vtt,txt,docx,json (default: srt)")
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
    try:
        device = resolve_input(args.input)
        folder = Path(args.output_dir).expanduser() if args.output_dir else None
        path = new_recording_path(folder)
        recorder = Recorder(path, device=device, max_duration_s=args.seconds)
        # Ctrl+C ends the recording, not the program: the file is closed properly and kept.
        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
        try:
            recorder.start()
            if not args.quiet:
                until = f"{args.seconds:g} s of audio" if args.seconds else "Ctrl+C"
                print(f"verbatim: recording from {device.name} until {until}…", file=sys.stderr, flush=True)
            while not stop.is_set() and not recorder.wait_ended(0.1):
                pass
            result = recorder.stop()
        finally:
            signal.signal(signal.SIGINT, previous)
    except CaptureError as exc:
        print(f"verbatim: error: {exc}", file=sys.stderr)
        return 1
    print(result.path, flush=True)
    if result.error:
        print(f"verbatim: the recording stopped: {result.error}; the {result.duration_s:.1f} s recorded "
              f"before that are kept in {result.path}", file=sys.stderr)
    elif not args.quiet:
        print(f"verbatim: recorded {result.duration_s:.1f} s", file=sys.stderr)
    if result.duration_s <= 0:
        return 1
    status = 1 if result.error else 0
    if args.transcribe:
        from desktop.cli import main as cli_main

        argv = ["transcribe", str(result.path), "-o", str(result.path.parent), "-f", ",".join(args.formats),
                "--model", args.model, "--language", args.language] + (["-q"] if args.quiet else [])
        status = max(status, cli_main(argv))
    return status
