"""The engine's scheduler alone, with its stages replaced by waits: does it keep more decoders busy?

    python benchmarks/scheduler.py [--files 828] [--prepare-s 0.06] [--workers 16] [--batch-s 0.3]
        [--item-s 0.02] [--decoders 5,9] [--batch-chunks 96] [--batch-seconds 960] [--repo PATH]

Preparing a file becomes a wait of --prepare-s on one of --workers threads (the CPU stage's processes);
a batch becomes a wait of --batch-s plus --item-s an item on a decoder thread (as a GPU worker's call, it
holds no GIL); each file is one 9 s chunk. What remains is the scheduler's own Python: choosing batches,
emitting events, reading ahead. No model is loaded. With twice the decoders, a scheduler that is not the
limit finishes in about half the time. --repo runs another checkout's scheduler (say, an older commit in a
git worktree; it must have desktop/engine/scheduler.py) under the same waits. The defaults are about what
the GPU traces in benchmarks/results/ show (batches of at most 96 chunks or 960 s of speech).
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=828)
    parser.add_argument("--prepare-s", type=float, default=0.06, help="one file's CPU stage")
    parser.add_argument("--workers", type=int, default=16, help="files prepared at once")
    parser.add_argument("--batch-s", type=float, default=0.3, help="one batch on a GPU worker, beyond its items")
    parser.add_argument("--item-s", type=float, default=0.02, help="each item of a batch, on a GPU worker")
    parser.add_argument("--decoders", default="5,9", help="batches in flight (4 workers a GPU, plus one)")
    parser.add_argument("--batch-chunks", type=int, default=96, help="most chunks in a batch")
    parser.add_argument("--batch-seconds", type=float, default=960.0, help="most seconds of speech in a batch")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo.resolve()))

    import numpy as np

    from desktop.core.segment import Segment
    from desktop.engine.events import EngineJob, JobFinished
    from desktop.engine.prepare import Chunk
    from desktop.engine.scheduler import BatchLimits, Limits, Prepared, Scheduler
    from desktop.engine.stats import RunStats

    features = np.zeros((80, 900), np.float32)

    def prepare(job):
        time.sleep(args.prepare_s)
        return Prepared(9.0, [Chunk(0, features, 0.0, 9.0, 9.0)], None, 0.0)

    batches: list[int] = []

    def compute(batch):
        batches.append(len(batch))
        time.sleep(args.batch_s + args.item_s * len(batch))
        return ["" for _ in batch]

    def segments(item, result) -> list[Segment]:
        return []

    seconds = args.batch_seconds if args.batch_seconds > 0 else math.inf
    print(f"{args.files} files, {args.prepare_s * 1000:.0f} ms to prepare on {args.workers} workers, "
          f"{args.batch_s * 1000:.0f} ms a batch and {args.item_s * 1000:.0f} ms an item; scheduler from {args.repo}")
    print("| batches in flight | wall s | files/s | batches | files a batch | half the files sent by (s) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for decoders in (int(d) for d in args.decoders.split(",")):
        stats = RunStats(tracing=True)
        limits = Limits(BatchLimits(args.batch_chunks, seconds), batches_in_flight=decoders,
                        prepare_workers=args.workers)
        scheduler = Scheduler(prepare, compute, segments, limits, stats=stats)
        jobs = [EngineJob(i, Path(f"file-{i}.wav")) for i in range(args.files)]
        batches.clear()
        start = time.perf_counter()
        finished = sum(isinstance(e, JobFinished) for e in scheduler.run(jobs, threading.Event()))
        wall = time.perf_counter() - start
        assert finished == args.files, finished
        sent, half = 0, 0.0
        for t, what, details in stats.trace:
            if what == "dispatch":
                sent += details["items"]
                if sent >= args.files // 2:
                    half = t
                    break
        print(f"| {decoders} | {wall:.1f} | {args.files / wall:.0f} | {len(batches)} | "
              f"{sum(batches) / max(1, len(batches)):.1f} | {half:.1f} |")


if __name__ == "__main__":
    main()
