"""Picking a few items spread evenly over many (calibration frames, validation images)."""

from __future__ import annotations


def evenly_spaced(total: int, count: int) -> list[int]:
    """`count` indices spread over range(total), first and last included (all when fewer)."""
    if count >= total:
        return list(range(total))
    if count <= 0:
        return []
    if count == 1:
        return [total // 2]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})
