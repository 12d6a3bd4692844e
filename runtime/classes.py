"""Class names and colours of the demo label set (generated street scenes).

Palette entries are RGB, taken from the Cityscapes palette for the matching classes.
"""

from __future__ import annotations

import numpy as np

DEMO_CLASSES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "vegetation",
    "sky",
    "car",
    "person",
    "pole",
)

DEMO_PALETTE_RGB: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128),  # road
    (244, 35, 232),  # sidewalk
    (70, 70, 70),  # building
    (107, 142, 35),  # vegetation
    (70, 130, 180),  # sky
    (0, 0, 142),  # car
    (220, 20, 60),  # person
    (153, 153, 153),  # pole
)

CLASS_ID = {name: i for i, name in enumerate(DEMO_CLASSES)}


def palette_bgr(palette_rgb=DEMO_PALETTE_RGB, num_classes: int | None = None) -> np.ndarray:
    """(K,3) uint8 BGR lookup table; classes past the palette get deterministic colours."""
    n = max(len(palette_rgb), num_classes or 0)
    table = np.zeros((max(n, 1), 3), np.uint8)
    rng = np.random.default_rng(0)
    for i in range(n):
        if i < len(palette_rgb):
            r, g, b = palette_rgb[i]
        else:
            r, g, b = (int(v) for v in rng.integers(0, 256, 3))
        table[i] = (b, g, r)
    return table
