"""Calibration results cached under a key of everything that determines them.

Key = (model hash, preprocessing, data hash, method, samples, method settings). A cache file is
named by the key's digest and also stores the key itself, which is compared on load: a stale or
foreign file is never reused just because of its name: a cache made for another model,
preprocessing or data set would silently calibrate the wrong ranges.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runtime.atomic import atomic_write_text

CACHE_FORMAT = 1
MAX_CACHE_BYTES = 64 << 20  # a cache entry is one range pair per quantized tensor: kB


@dataclass(frozen=True)
class CacheKey:
    model_sha256: str  # the float ONNX that is calibrated (weights, fused pre/post, shapes)
    preprocess: dict  # runtime.preprocess.Preprocess.to_dict()
    data_sha256: str  # of the sampled calibration frames
    method: str  # minmax | entropy | percentile
    samples: int
    settings: dict = field(default_factory=dict)  # bins, percentile, symmetric, library version

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), sort_keys=True, default=str))


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scaseg" / "calibration"


class CalibrationCache:
    """Tensor ranges {name: (low, high)} stored as JSON, one file per key."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: CacheKey) -> Path:
        return self.root / f"{key.digest()[:32]}.json"

    def load(self, key: CacheKey) -> dict[str, tuple[float, float]] | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            if path.stat().st_size > MAX_CACHE_BYTES:
                return None
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError):
            return None  # unreadable: recompute and overwrite
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            return None
        if data.get("key") != key.to_dict():
            return None
        return _ranges(data.get("ranges"))

    def store(self, key: CacheKey, ranges: dict[str, tuple[float, float]]) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": CACHE_FORMAT,
            "key": key.to_dict(),
            "ranges": {k: [float(lo), float(hi)] for k, (lo, hi) in sorted(ranges.items())},
        }
        return atomic_write_text(self.path(key), json.dumps(payload, indent=1) + "\n")


def _ranges(raw: object) -> dict[str, tuple[float, float]] | None:
    """The cached ranges, or None (recompute) when any entry is not a finite low <= high pair:
    a cache folder may be shared, and a damaged entry must cost a recalibration, not a crash or
    a quantized graph with NaN scales."""
    if not isinstance(raw, dict):
        return None
    ranges = {}
    for name, pair in raw.items():
        if not (isinstance(pair, list) and len(pair) == 2):
            return None
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair):
            return None
        lo, hi = float(pair[0]), float(pair[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            return None
        ranges[name] = (lo, hi)
    return ranges
