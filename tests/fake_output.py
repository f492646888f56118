"""A stand-in for sounddevice.OutputStream that the test drives: each pull() is one PortAudio callback."""

from __future__ import annotations

import numpy as np


class FakeStream:
    """Pulls blocks on demand; start/abort/close behave as PortAudio's (finished after abort or the end)."""

    def __init__(self, sample_rate, fill, finished, block_frames: int = 480):
        self.sample_rate, self.fill, self.finished = sample_rate, fill, finished
        self.block_frames = block_frames
        self.active = False
        self.closed = False
        self.starts = 0

    def start(self):
        self.starts += 1
        self.active = True

    def abort(self):
        if self.active:
            self.active = False
            self.finished()

    def close(self):
        self.closed = True

    def pull(self, frames: int | None = None) -> np.ndarray:
        """One callback: the block the output would play."""
        assert self.active, "pulled from a stream that is not running"
        out = np.full(frames or self.block_frames, np.nan, dtype=np.float32)
        if not self.fill(out):
            self.active = False
            self.finished()
        return out

    def pull_seconds(self, seconds: float) -> np.ndarray:
        blocks = []
        while self.active and sum(map(len, blocks)) < seconds * self.sample_rate:
            blocks.append(self.pull())
        return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


class FakeOutput:
    """A stream factory for Playback that keeps the streams it made."""

    def __init__(self) -> None:
        self.streams: list[FakeStream] = []

    def __call__(self, sample_rate, fill, finished) -> FakeStream:
        self.streams.append(FakeStream(sample_rate, fill, finished))
        return self.streams[-1]

    @property
    def stream(self) -> FakeStream:
        assert self.streams, "nothing opened an output stream yet"
        return self.streams[-1]
