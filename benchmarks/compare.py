"""Verbatim's engine against plain faster-whisper, in one process, on the same files and model.

    python benchmarks/compare.py CORPUS_DIR [--device auto|cpu|cuda] [--compute-type auto|float16|...]
        [--pipelines plain,batched8,batched16,verbatim] [--batch-size N] [--beam-size 5]
        [--engine-from DIR --pipelines ...,verbatim-old]

CORPUS_DIR holds manifest.json (see corpus.py). Prints a Markdown table: audio seconds per wall second,
ratios against plain and against the per-file batched pipeline, mean GPU utilisation (CUDA), and word
error rate over the files that have a reference. Timings run end to end, from file paths to segments.
Where every file has a language and a reference (corpus.py realspeech), it also prints the error rate
pooled over all files and one per language (WER, or CER for zh/ja; benchmarks/scoring.py).

"verbatim-old" (or "verbatim-old@8/nf", the settings as for "verbatim") runs the engine of another checkout,
DIR/desktop, in a process of its own (two `desktop` packages cannot share one), on the same files;
"verbatim-new" runs this checkout's engine the same way, so both start from the same random state:
    mkdir /tmp/engine-old && git archive COMMIT desktop | tar -x -C /tmp/engine-old
    python benchmarks/compare.py CORPUS --pipelines verbatim-new,verbatim-old --engine-from /tmp/engine-old
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections import Counter
from pathlib import Path

# A child run for "verbatim-old" imports `desktop` from the folder this names, ahead of this checkout's.
ENGINE_FROM_ENV = "VERBATIM_COMPARE_ENGINE_FROM"
OTHER_ENGINE = "verbatim-old"
# This checkout's engine in a child process like verbatim-old's: each starts CTranslate2's random generators
# afresh from --seed, so the temperature fallback samples alike in both, which "verbatim" after other
# pipelines in this process does not (its decoding threads' generators continue their sequence).
CHILD_ENGINE = "verbatim-new"
sys.path[:0] = [p for p in (os.environ.get(ENGINE_FROM_ENV), str(Path(__file__).resolve().parent.parent)) if p]
sys.path.append(str(Path(__file__).resolve().parent))  # scoring.py, also where compare.py is imported

from scoring import CHARACTER_LANGUAGES, Scores, score, unit  # noqa: E402

from desktop.engine.events import EngineJob, JobFailed, JobFinished, SegmentsDecoded, TranscribeOptions  # noqa: E402
from desktop.engine.loading import load_model  # noqa: E402

try:
    from desktop.engine import multi_gpu as multi_gpu_module  # noqa: E402
    from desktop.engine.multi_gpu import open_engine  # noqa: E402
except ImportError:  # an engine from before the split (--engine-from): its Engine drives every GPU itself
    from desktop.engine import shards as multi_gpu_module  # type: ignore[no-redef]  # noqa: E402
    from desktop.engine.engine import Engine as open_engine  # type: ignore[no-redef]  # noqa: E402

# espeak-ng voices Whisper base understands; the others (pt, nl, ru, sv, much of it and fr) come out
# as gibberish in every pipeline, so their WER measures hallucination handling, not accuracy.
CLEAR_LANGUAGES = ("en", "de", "es")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch if ch.isalnum() or ch.isspace() or ch == "'" else " " for ch in text)
    return re.sub(r"\s+", " ", text).strip()


def wer(references: list[str], hypotheses: list[str]) -> float | None:
    import jiwer

    pairs = [(normalize(r), normalize(h)) for r, h in zip(references, hypotheses) if normalize(r)]
    if not pairs:
        return None
    return jiwer.wer([r for r, _ in pairs], [h or "<empty>" for _, h in pairs])


class GpuSampler:
    """Mean utilisation.gpu from nvidia-smi every 200 ms while running (CUDA only), over the GPUs that
    CUDA_VISIBLE_DEVICES leaves visible (by index), not over every GPU of the machine."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and shutil.which("nvidia-smi") is not None
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").replace(" ", "")
        self._visible = [f"--id={visible}"] if visible and all(p.isdigit() for p in visible.split(",")) else []
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self):
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            out = subprocess.run(["nvidia-smi", *self._visible, "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True).stdout.split()
            if out:
                self.samples.append(sum(float(x) for x in out) / len(out))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    @property
    def mean(self) -> str:
        return f"{sum(self.samples) / len(self.samples):.0f}%" if self.samples else "-"


def run_plain(whisper, paths, beam_size):
    texts = []
    for path in paths:
        segments, _ = whisper.transcribe(str(path), beam_size=beam_size)
        texts.append(" ".join(s.text for s in segments))
    return texts


def run_batched(whisper, paths, beam_size, batch_size):
    from faster_whisper import BatchedInferencePipeline

    pipeline = BatchedInferencePipeline(whisper)
    texts = []
    for path in paths:
        segments, _ = pipeline.transcribe(str(path), beam_size=beam_size, batch_size=batch_size)
        texts.append(" ".join(s.text for s in segments))
    return texts


def run_verbatim(loaded, paths, beam_size, batch_size, parallel_batches=None, prepare_workers=None,
                 no_fallback=False):
    texts = {i: [] for i in range(len(paths))}
    options = TranscribeOptions(beam_size=beam_size, batch_size=batch_size,
                                temperatures=(0.0,) if no_fallback else TranscribeOptions().temperatures)
    engine = open_engine(loaded, parallel_batches=parallel_batches, prepare_workers=prepare_workers)
    engine.tracing = TRACE
    return engine, lambda: _run_engine(engine, paths, options, texts)


def _run_engine(engine, paths, options, texts):
    started = time.perf_counter()
    finished_at: dict[int, float] = {}
    for event in engine.run([EngineJob(i, p) for i, p in enumerate(paths)], options, threading.Event()):
        if isinstance(event, JobFinished):
            finished_at[event.job_id] = time.perf_counter() - started
        if isinstance(event, SegmentsDecoded):
            texts[event.job_id].extend(s.text for s in event.segments)
        elif isinstance(event, JobFailed):
            print(f"  {paths[event.job_id].name}: {event.reason}", file=sys.stderr)
    limits = engine.batch_limits(options)
    if TRACE:
        print_trace(engine.stats.trace)
    print(f"  verbatim phases: {engine.stats.summary()}; batches of at most {limits.chunks} chunks, {limits.seconds} s")
    # (an engine from before the split named them after shards)
    summaries = getattr(engine, "process_summaries", None) or getattr(engine, "shard_summaries", [])
    taken = getattr(engine, "process_of_job", None) or getattr(engine, "shard_of_job", {})
    for summary in summaries:
        print(f"  shard {summary}")
    if summaries:
        takers = Counter(taken.values())
        print(f"  files per engine process: {', '.join(f'{k} {v}' for k, v in sorted(takers.items()))}")
        last: dict[str, float] = {}
        for job, shard in taken.items():
            last[shard] = max(last.get(shard, 0.0), finished_at.get(job, 0.0))
        print(f"  last file finished per engine process: {', '.join(f'{k} {v:.2f} s' for k, v in sorted(last.items()))}")
    return [" ".join(texts[i]) for i in range(len(paths))]


TRACE = False


def run_other_engine(args, name: str) -> tuple[float, str, list[str]]:
    """`name` ("verbatim-old[@settings]" or "verbatim-new[@settings]") run by compare.py in a child process
    whose `desktop` is args.engine_from's (old) or this checkout's (new), with this run's options:
    (wall seconds, GPU utilisation, text per file)."""
    old = name.startswith(OTHER_ENGINE)
    if old and args.engine_from is None:
        raise SystemExit(f"{name} needs --engine-from DIR (a folder holding another checkout's desktop/)")
    if old and not (args.engine_from / "desktop" / "engine" / "engine.py").is_file():
        raise SystemExit(f"{args.engine_from} holds no desktop/engine/engine.py")
    options = [("--device", args.device), ("--compute-type", args.compute_type), ("--beam-size", args.beam_size),
               ("--model", args.model), ("--seed", args.seed), ("--cpu-threads", args.cpu_threads),
               ("--batch-size", args.batch_size), ("--workers-per-gpu", args.workers_per_gpu),
               ("--prepare-workers", args.prepare_workers), ("--parallel-batches", args.parallel_batches)]
    flags = [("--no-fallback", args.no_fallback), ("--one-process", args.one_process), ("--trace", args.trace)]
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        pipeline = "verbatim" + name[len(OTHER_ENGINE if old else CHILD_ENGINE):]  # its settings, if any
        command = [sys.executable, str(Path(__file__).resolve()), str(args.corpus),
                   "--pipelines", pipeline, "--result-json", str(result),
                   *[str(part) for flag, value in options if value is not None for part in (flag, value)],
                   *[flag for flag, on in flags if on]]
        env = {k: v for k, v in os.environ.items() if k != ENGINE_FROM_ENV}
        if old:
            env[ENGINE_FROM_ENV] = str(args.engine_from.resolve())
        sys.stdout.flush()
        subprocess.run(command, env=env, check=True)
        data = json.loads(result.read_text(encoding="utf-8"))
    return data["wall_s"], data["gpu_util"], data["texts"]


def scored_by_language(manifest: list[dict]) -> bool:
    """Whether every file has a language and a reference: then the corpus is scored by scoring.py's rule."""
    return bool(manifest) and all(e.get("language") and e.get("reference") for e in manifest)


def percent(rate: float | None) -> str:
    return f"{rate * 100:.1f}%" if rate is not None else "-"


def language_table(rows: list[tuple[str, Scores]]) -> list[str]:
    """Markdown lines: a row a pipeline, the pooled rate then one column a language (most files first)."""
    if not rows:
        return []
    first = rows[0][1].by_language
    languages = sorted(first, key=lambda lang: -first[lang].files)  # stable: ties keep the corpus's order
    lines = ["| pipeline | pooled | " + " | ".join(f"{lang} {unit(lang)}" for lang in languages) + " |",
             "|---|---:|" + "---:|" * len(languages)]
    for name, scores in rows:
        cells = [percent(scores.pooled.rate)] + [percent(scores.by_language[lang].rate) for lang in languages]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sizes = ", ".join(f"{lang} {first[lang].files} files / {first[lang].reference_tokens} "
                      f"{'characters' if unit(lang) == 'CER' else 'words'}" for lang in languages)
    lines.append("")
    lines.append(f"Reference tokens: {rows[0][1].pooled.reference_tokens} in all; {sizes}. Pooled = sum of edit "
                 "distances / sum of reference tokens over every file.")
    return lines


def _seconds(path: Path) -> float:
    from desktop.engine.audio import decode

    return len(decode(path)) / 16000


def audio_seconds(paths: list[Path]) -> float:
    """The corpus's length, decoded as the pipelines decode it (on every core: 828 files take a while)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor() as pool:
        return sum(pool.map(_seconds, paths, chunksize=8))


def print_trace(trace) -> None:
    """The engine's timeline: when files were ready, and each batch's steps, on its thread."""
    ready = [t for t, what, _ in trace if what == "prepared"]
    if ready:
        marks = ", ".join(f"{q}%: {ready[min(len(ready) - 1, len(ready) * q // 100)]:.2f}" for q in (10, 50, 90, 100))
        print(f"  files prepared by (s): first {ready[0]:.2f}, {marks}")
    for t, what, details in trace:
        if what != "prepared":
            text = " ".join(f"{k}={v}" for k, v in details.items() if k != "thread")
            print(f"  {t:6.2f} [{details.get('thread', '')}] {what} {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compute-type", default="auto")
    parser.add_argument("--pipelines", default="plain,batched8,batched16,verbatim")
    parser.add_argument("--batch-size", type=int, default=None, help="Verbatim's batch size (default: engine's)")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--model", default="base")
    parser.add_argument("--workers-per-gpu", type=int, default=None,
                        help="CTranslate2 workers on each GPU (default: the app's choice)")
    parser.add_argument("--prepare-workers", type=int, default=None, help="Verbatim's CPU-stage threads")
    parser.add_argument("--cpu-threads", type=int, default=0,
                        help="CTranslate2's threads on the CPU, for every pipeline (default: the app's choice)")
    parser.add_argument("--parallel-batches", type=int, default=None, help="Verbatim's batches in flight")
    parser.add_argument("--no-fallback", action="store_true", help="Verbatim without temperature fallback")
    parser.add_argument("--seed", type=int, default=1234, help="random seed for sampled fallback")
    parser.add_argument("--show", action="store_true", help="print each file's hypothesis")
    parser.add_argument("--texts", type=Path, default=None,
                        help="write every pipeline's hypotheses to this JSON file ({pipeline: [text per file]})")
    parser.add_argument("--one-process", action="store_true",
                        help="drive every GPU from this process (default: an engine process per extra GPU)")
    parser.add_argument("--trace", action="store_true", help="print Verbatim's timeline of files and batches")
    parser.add_argument("--engine-from", type=Path, default=None,
                        help=f"a folder holding another checkout's desktop/, for the pipeline {OTHER_ENGINE} "
                        "(run in a process of its own)")
    parser.add_argument("--result-json", type=Path, default=None, help=argparse.SUPPRESS)  # a child run's answer
    args = parser.parse_args()
    global TRACE
    TRACE = args.trace

    manifest = json.loads((args.corpus / "manifest.json").read_text(encoding="utf-8"))
    paths = [args.corpus / entry["path"] for entry in manifest]
    audio_s = audio_seconds(paths)
    loaded = load_model(args.model, device=args.device, compute_type=args.compute_type,
                        workers_per_gpu=args.workers_per_gpu, cpu_threads=args.cpu_threads,
                        gpu_processes=not args.one_process)
    print(f"model {loaded.description}, {loaded.workers_per_gpu} workers per GPU; {len(paths)} files, {audio_s:.0f} s of audio; beam {args.beam_size}")
    if os.environ.get(ENGINE_FROM_ENV):
        import desktop

        print(f"  engine from {Path(desktop.__file__).parent}")
    if loaded.device == "cuda":  # which CUDA allocator CTranslate2 was told to use (loading.configure_cuda_allocator)
        from desktop.engine.loading import ALLOCATOR_CONFIG_ENV, ALLOCATOR_ENV

        allocator = os.environ.get(ALLOCATOR_ENV, "CTranslate2's default")
        config = os.environ.get(ALLOCATOR_CONFIG_ENV)
        print(f"CUDA allocator: {allocator}" + (f" ({config})" if config else ""))
    from faster_whisper.vad import get_vad_model

    get_vad_model()  # Silero, which the batched pipeline and Verbatim load on first use, loaded for both

    rows, outputs = [], {}
    by_language = scored_by_language(manifest)
    language_rows: list[tuple[str, Scores]] = []

    def record(name: str, wall_s: float, util: str, texts: list[str]) -> None:
        refs = [(e["reference"], t, e.get("language")) for e, t in zip(manifest, texts) if e.get("reference")]
        # A zh/ja sentence has no spaces: to jiwer it is one word. The error rate column counts its characters.
        words = [(r, t, lang) for r, t, lang in refs if lang not in CHARACTER_LANGUAGES]
        error = wer([r for r, _, _ in words], [t for _, t, _ in words]) if words else None
        clean = [(r, t) for r, t, lang in refs if lang in CLEAR_LANGUAGES]
        clean_error = wer([r for r, _ in clean], [t for _, t in clean]) if clean else None
        outputs[name] = texts
        scores = score((e["language"], e["reference"], t) for e, t in zip(manifest, texts)) if by_language else None
        if scores is not None:
            language_rows.append((name, scores))
        rows.append((name, wall_s, audio_s / wall_s, util, error, clean_error, scores))
        if args.show:
            for entry, text in zip(manifest, texts):
                print(f"  [{name}] {entry['path']}: {text[:160]}")
        print(f"  {name}: {wall_s:.1f} s", file=sys.stderr)

    import ctranslate2

    default_jobs_ahead = multi_gpu_module.MAX_JOBS_AHEAD
    from desktop.engine.prepare import WORKER_NICENESS as default_niceness

    for name in args.pipelines.split(","):
        # Temperature fallback samples: the same seed for every pipeline makes runs comparable.
        ctranslate2.set_random_seed(args.seed)
        if name.startswith((OTHER_ENGINE, CHILD_ENGINE)):
            record(name, *run_other_engine(args, name))
            continue
        if name.startswith("verbatim"):
            # As in the app, whose engine (and its CPU-stage processes) starts with the model, before any
            # file is queued: that start-up is outside the timing, like the model's load for every pipeline.
            # "verbatim@32" runs at batch 32; "verbatim@32/pw14/pb4" also with 14 CPU-stage processes and
            # 4 batches in flight, "/nf" without temperature fallback, "/fa" or "/ft" with the fallback
            # temperatures sampled at once or in turn, "/ni0" with CPU-stage processes at niceness 0,
            # "/fw" with 30 s encoder windows, "/em256" with windows of a chunk's frames plus 256, "/ja8"
            # with shards holding up to 8 jobs more than the least busy (settings side by side in one run).
            spec = name.partition("@")[2].split("/")
            settings = {part[:2]: int(part[2:] or 1) for part in spec[1:]
                        if part[:2] in ("pw", "pb", "nf", "fa", "ft", "ni", "fw", "em", "ja")}
            from desktop.engine import prepare

            prepare.WORKER_NICENESS = settings.get("ni", default_niceness)
            multi_gpu_module.MAX_JOBS_AHEAD = settings.get("ja", default_jobs_ahead)
            batch_size = int(spec[0] or 0) or args.batch_size
            engine, run = run_verbatim(loaded, paths, args.beam_size, batch_size,
                                       settings.get("pb", args.parallel_batches),
                                       settings.get("pw", args.prepare_workers),
                                       args.no_fallback or bool(settings.get("nf")))
            if "fa" in settings or "ft" in settings:  # fallback temperatures at once / in turn
                engine.fallback_at_once = "fa" in settings
            if "fw" in settings:  # every chunk over a full 30 s encoder window
                engine.encoder_margin_frames = None
            elif "em" in settings:  # chunks over their own frames plus this margin
                engine.encoder_margin_frames = settings["em"]
            engine.wait_ready()
        with GpuSampler(loaded.device == "cuda") as gpu:
            start = time.perf_counter()
            if name == "plain":
                texts = run_plain(loaded.whisper, paths, args.beam_size)
            elif name.startswith("batched"):
                texts = run_batched(loaded.whisper, paths, args.beam_size, int(name[len("batched"):] or 8))
            elif name.startswith("verbatim"):
                texts = run()
            else:
                raise SystemExit(f"unknown pipeline {name}")
            wall_s = time.perf_counter() - start
        record(name, wall_s, gpu.mean, texts)

    if args.result_json:  # a child run for run_other_engine: one pipeline, no table
        name, wall_s, _, util, *_ = rows[-1]
        args.result_json.write_text(json.dumps({"wall_s": wall_s, "gpu_util": util, "texts": outputs[name]},
                                               ensure_ascii=False), encoding="utf-8")
        return

    if args.texts:
        # Runs of one pipeline name (verbatim,verbatim) keep the last; the table keeps every run.
        args.texts.write_text(json.dumps({"files": [e["path"] for e in manifest], "texts": outputs},
                                         ensure_ascii=False, indent=1), encoding="utf-8")
    speed = {name: x for name, _, x, *_ in rows}
    plain = speed.get("plain")
    batched = max((x for n, x in speed.items() if n.startswith("batched")), default=None)
    # Files without a reference (real recordings) are scored against plain faster-whisper's text: how far
    # each pipeline strays from the baseline users know, not an accuracy figure.
    unscored = [i for i, e in enumerate(manifest) if not e.get("reference") and "plain" in outputs
                and normalize(outputs["plain"][i])]
    print()
    rate_header, rate_rule = ("error rate | ", "---:|") if by_language else ("", "")
    print(f"| pipeline | wall s | x real time | vs plain | vs best batched | GPU util | {rate_header}WER | WER en/de/es "
          "| WER vs plain's text |")
    print(f"|---|---:|---:|---:|---:|---:|{rate_rule}---:|---:|---:|")
    for name, wall_s, x, util, error, clean_error, scores in rows:
        drift = wer([outputs["plain"][i] for i in unscored], [outputs[name][i] for i in unscored]) if unscored \
            else None
        drift_text = f"{drift * 100:.1f}%" if drift is not None else "-"
        vs_plain = f"{x / plain:.2f}x" if plain else "-"
        vs_batched = f"{x / batched:.2f}x" if batched else "-"
        err = f"{error * 100:.1f}%" if error is not None else "-"
        clean_err = f"{clean_error * 100:.1f}%" if clean_error is not None else "-"
        rate = f"{percent(scores.pooled.rate)} | " if scores is not None else ""
        print(f"| {name} | {wall_s:.1f} | {x:.1f} | {vs_plain} | {vs_batched} | {util} | {rate}{err} | {clean_err} "
              f"| {drift_text} |")
    if language_rows:
        print()
        print("\n".join(language_table(language_rows)))


if __name__ == "__main__":
    main()
