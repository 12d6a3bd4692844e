"""Seed ranges of the data splits, and the checks on a scene's seed and size."""

from __future__ import annotations

import numpy as np

from runtime.errors import UserInputError

SPLITS: dict[str, range] = {
    "train": range(0, 100_000),
    "val": range(1_000_000, 1_100_000),
    "bench": range(2_000_000, 2_100_000),
    "calib": range(3_000_000, 3_100_000),
}
MIN_SIZE = 32


def check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UserInputError(f"seed must be a non-negative int, got {seed!r}")


def check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or value < MIN_SIZE:
            raise UserInputError(f"{name} must be an int >= {MIN_SIZE}, got {value!r}")


def split_seeds(split: str, count: int, start: int = 0) -> list[int]:
    """`count` seeds of a split, from its `start`-th seed; splits never share a seed."""
    if split not in SPLITS:
        raise UserInputError(f"unknown split {split!r}; choose one of {sorted(SPLITS)}")
    seeds = SPLITS[split]
    if count < 0 or start < 0 or start + count > len(seeds):
        raise UserInputError(
            f"split {split!r} has {len(seeds)} seeds; start={start} count={count} does not fit "
            f"(need 0 <= start and start + count <= {len(seeds)})"
        )
    return list(seeds[start : start + count])
