"""Ordering files the way people number them, and picking a few spread evenly over many
(image sources, calibration frames, validation images)."""

from __future__ import annotations

import re
from pathlib import Path


def natural_key(path: str | Path) -> list:
    """Sort key that puts f2.png before f10.png (digit runs compare as numbers), by full path."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def evenly_spaced(total: int, count: int) -> list[int]:
    """`count` indices spread over range(total), first and last included (all when fewer)."""
    if count >= total:
        return list(range(total))
    if count <= 0:
        return []
    if count == 1:
        return [total // 2]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def evenly_split(total: int, count: int, others: int) -> tuple[list[int], list[int]]:
    """`count` indices evenly over range(total), and up to `others` more evenly over the indices
    left (never among the first); neither list holds more than its count, whatever `total`."""
    picked = evenly_spaced(total, count)
    held, skipped = [], 0
    for j in evenly_spaced(total - len(picked), others):
        # the j-th index not picked is j plus the picked indices at or below it
        while skipped < len(picked) and picked[skipped] <= j + skipped:
            skipped += 1
        held.append(j + skipped)
    return picked, held
