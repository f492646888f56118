"""Command line: `verbatim [FILE ...]` opens the window; `verbatim transcribe|models|library ...`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from desktop import __version__
from desktop.core.export import FORMATS
from desktop.core.privacy import disable_telemetry
from desktop.core.segment import Segment
from desktop.core.settings import COMPUTE_TYPES, DEVICES, TASKS

if TYPE_CHECKING:
    from desktop.core.transcript import Transcript

SUBCOMMANDS = ("transcribe", "models", "library", "record", "devices")


def main(argv: list[str] | None = None) -> int:
    disable_telemetry()  # before any command imports a library that would report usage
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        parser = build_parser()
        args = parser.parse_args(argv)
        try:
            return int(args.func(args) or 0)
        except BrokenPipeError:
            # `verbatim library list | head`: the reader left; say nothing more.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    gui = argparse.ArgumentParser(prog="verbatim", description="Private desktop transcription.")
    gui.add_argument("files", nargs="*", metavar="FILE", help="audio or video files to queue")
    gui.add_argument("--version", action="version", version=f"verbatim {__version__}")
    gui.epilog = f"subcommands: {', '.join(SUBCOMMANDS)} (verbatim SUBCOMMAND --help)"
    args = gui.parse_args(argv)
    return main_gui(args.files)


def main_gui(files: list[str] | None = None) -> int:
    from desktop import app

    return app.main(list(files if files is not None else sys.argv[1:]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verbatim", description="Private desktop transcription.")
    parser.add_argument("--version", action="version", version=f"verbatim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcribe", help="transcribe files and write transcripts")
    t.add_argument("files", nargs="+", metavar="FILE")
    t.add_argument("-o", "--output-dir", default=".", metavar="DIR", help="where to write (default: here)")
    t.add_argument("-f", "--formats", default="srt", type=_formats, metavar="FORMATS",
                   help=f"comma-separated: {','.join(FORMATS)} (default: srt)")
    t.add_argument("--model", default="base", metavar="NAME|DIR", help="model name or folder (default: base)")
    t.add_argument("--device", default="auto", choices=DEVICES)
    t.add_argument("--compute-type", default="auto", choices=COMPUTE_TYPES)
    t.add_argument("--language", default="auto", metavar="auto|CODE", help="language code, or auto to detect per file")
    t.add_argument("--task", default="transcribe", choices=TASKS)
    t.add_argument("--batch-size", type=_positive_int, default=None, metavar="N")
    t.add_argument("--beam-size", type=_positive_int, default=5, metavar="N")
    t.add_argument("--word-timestamps", action="store_true", help="time every word (JSON gets `words`)")
    t.add_argument("--initial-prompt", default=None, metavar="TEXT", help="text that sets style and vocabulary")
    t.add_argument("--hotwords", default=None, metavar="WORDS", help="words the model should favour")
    t.add_argument("--no-vad", action="store_true", help="decode fixed 30 s windows instead of speech chunks")
    t.add_argument("--txt-timestamps", action="store_true", help="put timestamps in TXT output")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    t.set_defaults(func=run_transcribe)

    for module_name in ("desktop.cli_models", "desktop.cli_library", "desktop.cli_capture"):
        try:
            module = __import__(module_name, fromlist=["add_parser"])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.add_parser(sub)
    return parser


def _formats(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip().lower().lstrip(".") for part in text.split(",") if part.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"unknown format {', '.join(unknown) or text!r}; use {','.join(FORMATS)}")
    return chosen


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# -- transcribe ------------------------------------------------------------------------------------
@dataclass
class _Input:
    job_id: int
    path: Path
    outputs: dict[str, Path]
    duration_s: float = 0.0
    done_s: float = 0.0
    language: str = ""
    language_probability: float = 0.0
    segments: list[Segment] = field(default_factory=list)
    error: str | None = None
    finished: bool = False


def run_transcribe(args: argparse.Namespace, on_transcript: Callable[[Path, Transcript], None] | None = None) -> int:
    from desktop.core.export import ExportOptions, export
    from desktop.core.fileio import OutputError, unique_output_path, write_atomic
    from desktop.core.segment import TranscriptInfo
    from desktop.core.transcript import Transcript
    from desktop.engine.events import (
        EngineJob,
        JobCancelled,
        JobFailed,
        JobFinished,
        JobProgress,
        JobStarted,
        SegmentsDecoded,
        TranscribeOptions,
    )

    logging.basicConfig(level=logging.WARNING, format="verbatim: %(message)s")
    out_dir = Path(args.output_dir).expanduser()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"verbatim: error: cannot create output folder {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        options = TranscribeOptions(
            language=None if args.language.lower() == "auto" else args.language.lower(),
            task=args.task,
            beam_size=args.beam_size,
            word_timestamps=args.word_timestamps,
            initial_prompt=args.initial_prompt,
            hotwords=args.hotwords,
            vad=not args.no_vad,
            batch_size=args.batch_size,
        )
    except ValueError as exc:
        print(f"verbatim: error: {exc}", file=sys.stderr)
        return 2

    # Output names are reserved in input order, so two inputs called x.wav get x.srt and x-2.srt
    # whichever finishes first.
    taken: set[Path] = set()
    inputs: list[_Input] = []
    for job_id, name in enumerate(args.files):
        path = Path(name)
        outputs = {fmt: unique_output_path(out_dir, path, fmt, taken) for fmt in args.formats}
        inputs.append(_Input(job_id, path, outputs))

    progress = _Progress(sys.stderr, enabled=not args.quiet, total=len(inputs))
    model = _load_model(args, progress)
    if model is None:
        return 1
    from desktop.engine.multi_gpu import open_engine

    language_supported = set(model.whisper.supported_languages)
    if options.language and options.language not in language_supported:
        print(f"verbatim: error: unknown language code {options.language!r}", file=sys.stderr)
        return 2

    cancel = threading.Event()
    previous_handler = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    engine = open_engine(model)
    by_id = {item.job_id: item for item in inputs}
    export_options = ExportOptions(txt_timestamps=args.txt_timestamps)
    started_at = time.monotonic()
    try:
        for event in engine.run((EngineJob(i.job_id, i.path) for i in inputs), options, cancel):
            item = by_id[event.job_id]
            match event:
                case JobStarted():
                    item.duration_s = event.duration_s
                    item.language, item.language_probability = event.language, event.language_probability
                case SegmentsDecoded():
                    item.segments.extend(event.segments)
                case JobProgress():
                    item.duration_s, item.done_s = event.total_s, event.done_s
                case JobFailed():
                    item.error, item.finished = event.reason, True
                case JobCancelled():
                    item.error, item.finished = "cancelled", True
                case JobFinished():
                    item.finished = True
                    if event.notices:
                        progress.clear()
                    for notice in event.notices:
                        print(f"{one_line(str(item.path))}: note: {one_line(notice)}", file=sys.stderr)
                    info = TranscriptInfo(
                        source=str(item.path),
                        language=item.language,
                        language_probability=item.language_probability,
                        duration_s=item.duration_s,
                        model=model.name,
                    )
                    transcript = Transcript(info, item.segments)
                    for fmt, target in item.outputs.items():
                        try:
                            write_atomic(target, export(transcript, fmt, export_options))
                        except OutputError as exc:
                            item.error = str(exc)
                            break
                        except Exception as exc:  # noqa: BLE001 - an exporter bug fails one input only
                            item.error = f"cannot export {fmt}: {exc}"
                            break
                    if on_transcript is not None:  # after the files: they come first
                        on_transcript(item.path, transcript)
            if item.error and item.finished:
                progress.clear()
                print(f"{one_line(str(item.path))}: {one_line(item.error)}", file=sys.stderr)
            progress.show(inputs, started_at)
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        progress.clear()
    failed = [i for i in inputs if i.error]
    if not args.quiet:
        done = len(inputs) - len(failed)
        audio_s = sum(i.duration_s for i in inputs if not i.error)
        wall_s = max(time.monotonic() - started_at, 1e-6)
        print(
            f"verbatim: {done} of {len(inputs)} transcribed ({audio_s:.0f} s of audio in {wall_s:.1f} s, "
            f"{audio_s / wall_s:.1f}x real time) into {out_dir}",
            file=sys.stderr,
        )
    if cancel.is_set():
        return 130
    return 1 if failed else 0


def one_line(text: str) -> str:
    """`text` with its line breaks and other control characters escaped (a newline as \\n), so that a
    `FILE: reason` line on stderr stays one line whatever the file is called."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)


def _load_model(args: argparse.Namespace, progress: _Progress):
    from desktop.engine.loading import load_model
    from desktop.engine.models import ModelError

    def on_download(done: int, total: int) -> None:
        progress.status(f"downloading {args.model}: {done / 1e6:.0f}/{max(total, 1) / 1e6:.0f} MB")

    try:
        model = load_model(
            args.model,
            device=args.device,
            compute_type=args.compute_type,
            progress=on_download,
            on_status=lambda stage: progress.status(f"model {args.model}: {stage}"),
        )
    except ModelError as exc:
        progress.clear()
        print(f"verbatim: error: {exc}", file=sys.stderr)
        for name in args.files:
            print(f"{one_line(name)}: model not available", file=sys.stderr)
        return None
    progress.clear()
    if model.device_note and args.device != "cpu":
        print(f"verbatim: {model.device_note}", file=sys.stderr)
    return model


class _Progress:
    """One self-rewriting line on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, stream: TextIO, enabled: bool, total: int) -> None:
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self.total = total
        self._last = 0.0
        self._width = 0

    def status(self, text: str) -> None:
        self._write(text)

    def show(self, inputs: list[_Input], started_at: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        finished = sum(1 for i in inputs if i.finished)
        total_s = sum(i.duration_s for i in inputs) or 1.0
        done_s = sum(i.duration_s if i.finished else i.done_s for i in inputs)
        fraction = min(1.0, done_s / total_s) if any(i.duration_s for i in inputs) else finished / max(self.total, 1)
        bar = "#" * int(fraction * 30)
        speed = done_s / max(now - started_at, 1e-6)
        self._write(f"[{bar:<30}] {fraction:4.0%}  {finished}/{self.total} files  {speed:.1f}x real time")

    def clear(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def _write(self, text: str) -> None:
        if not self.enabled:
            return
        pad = max(self._width - len(text), 0)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)


if __name__ == "__main__":
    sys.exit(main())
