"""Loudness of audio blocks for the level meter."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SILENCE_DBFS = -90.0


@dataclass(frozen=True)
class Level:
    """RMS and peak of some audio, as linear amplitudes in [0, 1] (full scale is 1)."""

    rms: float = 0.0
    peak: float = 0.0

    @property
    def rms_dbfs(self) -> float:
        return to_dbfs(self.rms)

    @property
    def peak_dbfs(self) -> float:
        return to_dbfs(self.peak)


def to_dbfs(amplitude: float) -> float:
    return SILENCE_DBFS if amplitude <= 10 ** (SILENCE_DBFS / 20) else max(SILENCE_DBFS, 20 * math.log10(amplitude))


def measure(samples: np.ndarray) -> Level:
    if samples.size == 0:
        return Level()
    data = samples.astype(np.float32, copy=False)
    return Level(rms=float(np.sqrt(np.mean(np.square(data, dtype=np.float64)))), peak=float(np.max(np.abs(data))))
