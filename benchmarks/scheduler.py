"""The engine's scheduler alone, with its stages replaced by waits: does it keep more decoders busy?

    python benchmarks/scheduler.py [--files 828] [--prepare-s 0.06] [--workers 16] [--batch-s 0.3]
        [--item-s 0.02] [--decoders 5,9] [--repo PATH]

Preparing a file becomes a wait of --prepare-s on one of --workers threads (the CPU stage's processes);
a batch becomes a wait of --batch-s plus --item-s an item on a decoder thread (as a GPU worker's call, it holds no GIL); each file
is one 9 s chunk. What remains is the scheduler's own Python: choosing batches, emitting events, reading
ahead. The real model is loaded only for its tokenizer and shapes. With twice the decoders, a scheduler that
is not the limit finishes in about half the time. --repo runs another checkout's engine (say, an older
commit in a git worktree) under the same waits. The defaults are about what the GPU traces in benchmarks/results/ show.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=828)
    parser.add_argument("--prepare-s", type=float, default=0.06, help="one file's CPU stage")
    parser.add_argument("--workers", type=int, default=16, help="files prepared at once")
    parser.add_argument("--batch-s", type=float, default=0.3, help="one batch on a GPU worker, beyond its items")
    parser.add_argument("--item-s", type=float, default=0.02, help="each item of a batch, on a GPU worker")
    parser.add_argument("--decoders", default="5,9", help="batches in flight (4 workers a GPU, plus one)")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo.resolve()))

    import numpy as np
    from faster_whisper.vad import SpeechTimestampsMap

    from desktop.engine import engine as engine_module
    from desktop.engine.engine import Engine, _Decoded, _Prepared
    from desktop.engine.events import EngineJob, JobFinished, TranscribeOptions
    from desktop.engine.loading import load_model
    from desktop.engine.prepare import Chunk

    engine_module.free_bytes = lambda index: None  # batch limits by the defaults, not by this machine
    model = replace(load_model("base", device="cpu"), device="cuda", compute_type="float16")
    features = np.zeros((80, 900), np.float32)
    speech = [{"start": 0, "end": 9 * 16000}]

    def prepare(job, options):
        time.sleep(args.prepare_s)
        return _Prepared(9.0, [Chunk(0, features, 0.0, 9.0, 9.0)], SpeechTimestampsMap(speech, 16000), 0.0)

    batches: list[int] = []

    def compute(batch, options):
        batches.append(len(batch))
        time.sleep(args.batch_s + args.item_s * len(batch))
        return [_Decoded(tokens=[], avg_logprob=-0.1, no_speech_prob=0.0) for _ in batch]

    print(f"{args.files} files, {args.prepare_s * 1000:.0f} ms to prepare on {args.workers} workers, "
          f"{args.batch_s * 1000:.0f} ms a batch and {args.item_s * 1000:.0f} ms an item; engine from {args.repo}")
    print("| batches in flight | wall s | files/s | batches | files a batch | half the files sent by (s) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for decoders in (int(d) for d in args.decoders.split(",")):
        engine = Engine(model, prepare_workers=args.workers, parallel_batches=decoders, prepare_in_processes=False)
        engine._prepare = prepare  # type: ignore[method-assign]
        engine._compute_batch = compute  # type: ignore[method-assign]
        engine.tracing = True
        jobs = [EngineJob(i, Path(f"file-{i}.wav")) for i in range(args.files)]
        batches.clear()
        start = time.perf_counter()
        finished = sum(isinstance(e, JobFinished) for e in engine.run(jobs, TranscribeOptions(), threading.Event()))
        wall = time.perf_counter() - start
        assert finished == args.files, finished
        sent, half = 0, 0.0
        for t, what, details in engine.stats.trace:
            if what == "dispatch":
                sent += details["items"]
                if sent >= args.files // 2:
                    half = t
                    break
        print(f"| {decoders} | {wall:.1f} | {args.files / wall:.0f} | {len(batches)} | "
              f"{sum(batches) / max(1, len(batches)):.1f} | {half:.1f} |")


if __name__ == "__main__":
    main()
