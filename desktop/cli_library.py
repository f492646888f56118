"""`verbatim library list [--json]` and `verbatim library export ID -f FORMAT -o DIR`: the library from the
command line, read while the window may be running (the library is in WAL mode, so reading never blocks
the app)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from desktop.core.export import FORMATS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from desktop.cli import _formats

    parser = subparsers.add_parser(
        "library",
        help="list and export the transcripts in the library",
        description="List and export the transcripts in the library (default action: list).",
    )
    actions = parser.add_subparsers(dest="library_action", metavar="{list,export}")
    listing = actions.add_parser("list", help="the jobs in the library, oldest first (default)")
    listing.add_argument("--json", action="store_true", help="one JSON list of jobs, with their transcript text")
    export = actions.add_parser("export", help="export one job's transcript, edits included")
    export.add_argument("job_id", type=int, metavar="ID", help="the job's id (see `verbatim library list`)")
    export.add_argument("-f", "--format", dest="formats", default="srt", type=_formats, metavar="FORMAT",
                        help=f"one of {','.join(FORMATS)}, or several separated by commas (default: srt)")
    export.add_argument("-o", "--output-dir", default=".", metavar="DIR", help="where to write (default: here)")
    parser.set_defaults(func=run_library, library_action="list", json=False)


def run_library(args: argparse.Namespace) -> int:
    from desktop.core.paths import library_path
    from desktop.core.store import Store, StoreError

    path = library_path()
    if not path.exists():
        # Nothing transcribed yet: an empty library, without creating one as a side effect.
        if args.library_action == "export":
            print(f"verbatim: error: no job {args.job_id} (the library is empty)", file=sys.stderr)
            return 1
        print("[]" if args.json else "The library is empty.")
        return 0
    try:
        store = Store(path)
    except StoreError as exc:
        print(f"verbatim: error: {exc}", file=sys.stderr)
        return 1
    with store:
        if args.library_action == "export":
            return _export(store, args.job_id, args.formats, Path(args.output_dir))
        return _list(store, as_json=args.json)


def _list(store, as_json: bool) -> int:
    records = store.records()
    if as_json:
        jobs = []
        for r in records:
            text, error = _text_of(store, r.job)
            jobs.append({
                "id": r.job.id,
                "source": r.job.source,
                "state": r.job.state.value,
                "language": r.job.language,
                "duration": r.job.duration_s,
                "error": error,
                "text": text,
            })
        json.dump(jobs, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    if not records:
        print("The library is empty.")
        return 0
    print(f"{'ID':>5}  {'STATE':<9}  {'LANG':<4}  {'DURATION':>8}  SOURCE")
    for r in records:
        job = r.job
        duration = _clock(job.duration_s) if job.duration_s is not None else "-"
        line = f"{job.id:>5}  {job.state.value:<9}  {job.language or '-':<4}  {duration:>8}  {job.source}"
        if job.error:
            line += f"  ({job.error})"
        print(line)
    return 0


def _text_of(store, job) -> tuple[str, str | None]:
    """The job's current text and its error. A transcript that cannot be read (its saved segments break
    the rules) is reported on stderr and listed with an empty text and the reason; the others still list."""
    try:
        return store.load_transcript(job.id).text, job.error
    except ValueError as exc:
        reason = f"the saved transcript is damaged: {exc}"
        print(f"verbatim: job {job.id}: {reason}", file=sys.stderr)
        return "", reason


def _export(store, job_id: int, formats: tuple[str, ...], out_dir: Path) -> int:
    from desktop.core.export import export
    from desktop.core.fileio import OutputError, unique_output_path, write_atomic
    from desktop.core.jobs import JobState

    if not store.has_job(job_id):
        print(f"verbatim: error: no job {job_id} in the library (see `verbatim library list`)", file=sys.stderr)
        return 1
    job = store.job(job_id)
    if job.state in (JobState.QUEUED, JobState.RUNNING):
        print(f"verbatim: error: job {job_id} is {job.state.value}; export it once it is done", file=sys.stderr)
        return 1
    if out_dir.exists() and not out_dir.is_dir():
        print(f"verbatim: error: {out_dir} is not a folder", file=sys.stderr)
        return 2
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"verbatim: error: cannot create the folder {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        transcript = store.load_transcript(job_id)
    except ValueError as exc:
        print(f"verbatim: error: job {job_id}: the saved transcript is damaged: {exc}", file=sys.stderr)
        return 1
    taken: set[Path] = set()
    failed = False
    for fmt in formats:
        path = unique_output_path(out_dir, Path(job.source), fmt, taken)
        try:
            write_atomic(path, export(transcript, fmt))
        except OutputError as exc:
            print(f"verbatim: error: {exc}", file=sys.stderr)
            failed = True
            continue
        print(path)
    return 1 if failed else 0


def _clock(seconds: float) -> str:
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
