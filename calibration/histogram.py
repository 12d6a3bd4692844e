"""Streaming |x| histograms of activations and the INT8 range that minimises quantization error.

Each tensor gets a histogram of absolute values with a fixed number of equal bins over [0, top).
When a frame holds a value at or past `top`, the bin width doubles (neighbouring bins are added
together, which is exact) until it fits, so memory is `bins` counters per tensor whatever the
number of frames, and no activation outlives the frame it came from. Large tensors feed the
histogram a strided subset of at most `max_values` elements per frame; the maximum always comes
from every element.

`mse_threshold` picks the symmetric range T (scale T / 127) that minimises the expected squared
error of quantize-dequantize over the histogram: values above T are clipped to T, values below
are rounded to the grid of step T / 127. The rounding error of each bin is evaluated at a few
points across it, so bins both narrower and wider than one step are costed correctly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BINS = 2048
DEFAULT_MAX_VALUES = 1 << 18  # per tensor and frame; the strided subset of larger tensors
LEVELS = 127  # symmetric int8: -127..127 (TensorRT never uses -128)
CANDIDATES = 192  # thresholds tried per tensor
SUBPOINTS = 4  # points per bin the rounding error is evaluated at


@dataclass
class AbsHistogram:
    """Counts of |x| in `len(counts)` bins of width `width` from 0, and the largest |x| seen."""

    counts: np.ndarray  # int64
    width: float
    peak: float = 0.0
    low: float = 0.0  # the most negative value seen (for the record; ranges are symmetric)
    high: float = 0.0

    @classmethod
    def empty(cls, bins: int = DEFAULT_BINS) -> AbsHistogram:
        return cls(np.zeros(bins, np.int64), 0.0)

    @property
    def top(self) -> float:
        return self.width * len(self.counts)

    def add(self, values: np.ndarray, max_values: int = DEFAULT_MAX_VALUES) -> None:
        flat = values.reshape(-1)
        if flat.size == 0:
            return
        low, high = float(flat.min()), float(flat.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            raise FloatingPointError("non-finite activation")
        self.low, self.high = min(self.low, low), max(self.high, high)
        peak = max(-low, high)
        self.peak = max(self.peak, peak)
        if peak == 0.0:
            self.counts[0] += flat.size  # all zeros; count them in the first bin
            return
        self._grow(peak)
        step = max(1, -(-flat.size // max_values))
        sample = np.abs(flat[::step])
        index = (sample * np.float32(1.0 / self.width)).astype(np.int64)
        np.minimum(index, len(self.counts) - 1, out=index)
        self.counts += np.bincount(index, minlength=len(self.counts))

    def _grow(self, peak: float) -> None:
        bins = len(self.counts)
        if self.width == 0.0:
            # first data: bins end a little past the peak, so the first frames rarely regrow
            self.width = peak * 1.0001 / bins  # zeros counted before stay in bin 0
            return
        while peak >= self.top:
            merged = self.counts.reshape(-1, 2).sum(axis=1)
            self.counts = np.concatenate([merged, np.zeros(bins - len(merged), np.int64)])
            self.width *= 2.0


def mse_threshold(hist: AbsHistogram, levels: int = LEVELS) -> float:
    """The symmetric range in (0, peak] with the least expected quantize-dequantize error."""
    if hist.peak == 0.0 or hist.width == 0.0:
        return 0.0
    counts = hist.counts.astype(np.float64)
    used = int(np.nonzero(counts)[0][-1]) + 1  # bins past the last non-empty one cost nothing
    counts = counts[:used]
    # points across each bin, each standing for 1/SUBPOINTS of the bin's count
    offsets = (np.arange(SUBPOINTS) + 0.5) / SUBPOINTS
    points = (np.arange(used)[:, None] + offsets[None, :]) * hist.width  # (used, SUBPOINTS)
    points = np.minimum(points, hist.peak)
    weight = counts[:, None] / SUBPOINTS
    total = counts.sum()
    lowest = hist.peak / 256.0  # a range below 1/256 of the peak clips nearly everything
    candidates = np.unique(np.geomspace(lowest, hist.peak, CANDIDATES))
    best_t, best_err = hist.peak, np.inf
    for t in candidates:
        step = t / levels
        clipped = np.minimum(points, t)
        rounded = np.round(clipped / step) * step
        err = float((weight * np.square(points - rounded)).sum()) / total
        if err < best_err:
            best_t, best_err = float(t), err
    return best_t
