"""The label set of the generated street scenes (and of the bundled demo model trained on them).

The colours are the Cityscapes colours of the same classes. Palette entries are RGB.
"""

from __future__ import annotations

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
