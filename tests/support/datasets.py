"""Tiny validation datasets in the real on-disk layouts, made in a temp folder.

Images are generated street scenes (scenes) with their exact labels, written as masks in
each dataset's id space: Cityscapes train ids, ADE20K ids + 1 (0 = other), the demo ids for the
mmseg and plain layouts. Options inject the faults users hit: an image without a mask, a mask
value outside the classes, a colour mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from scenes import render_scene

HEIGHT, WIDTH = 64, 128
# Demo class id (road, sidewalk, building, vegetation, sky, car, person, pole) -> dataset id.
CITYSCAPES_IDS = np.array([0, 1, 2, 8, 10, 13, 11, 5], np.uint8)
ADE20K_IDS = np.array([6, 11, 1, 4, 2, 20, 12, 93], np.uint8) + 1  # mask value = class + 1
DEMO_IDS = np.arange(8, dtype=np.uint8)


@dataclass
class Dataset:
    root: Path  # what to pass as the validation data root (the images folder for "plain")
    masks: Path | None = None  # the masks folder, for the plain layout only
    pairs: list[tuple[Path, Path]] = field(default_factory=list)  # sorted like find_val_set's
    truth: dict[str, np.ndarray] = field(default_factory=dict)  # image name -> mask as written
    unpaired: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Faults:
    unpaired_image: bool = False  # one extra image without a mask
    unpaired_mask: bool = False  # one extra mask without an image
    out_of_range: int | None = None  # written into 10 pixels of the first mask
    colour_mask: bool = False  # the first mask saved as 3 channels
    wrong_size: bool = False  # the first mask half the image's width


def _write_pair(image: Path, mask: Path, seed: int, ids: np.ndarray, faults: Faults, first: bool):
    frame_bgr, labels = render_scene(seed, HEIGHT, WIDTH)
    truth = ids[labels]
    image.parent.mkdir(parents=True, exist_ok=True)
    mask.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(image), frame_bgr)
    written = truth
    if first and faults.out_of_range is not None:
        written = truth.astype(np.uint16 if faults.out_of_range > 255 else np.uint8)
        written[0, :10] = faults.out_of_range
    if first and faults.wrong_size:
        written = cv2.resize(written, (WIDTH // 2, HEIGHT), interpolation=cv2.INTER_NEAREST)
    if first and faults.colour_mask:
        written = cv2.cvtColor(written.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    assert cv2.imwrite(str(mask), written)
    return written


def _fill(ds: Dataset, items, ids: np.ndarray, faults: Faults, lone_image, lone_mask) -> Dataset:
    """items: [(image path, mask path)] in sorted order; lone_*: paths for the injected extras."""
    for n, (image, mask) in enumerate(items):
        ds.truth[image.name] = _write_pair(image, mask, 1_000_000 + n, ids, faults, n == 0)
        ds.pairs.append((image, mask))
    if faults.unpaired_image:
        lone_image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(lone_image), render_scene(999, HEIGHT, WIDTH)[0])
        ds.unpaired.append(lone_image)
    if faults.unpaired_mask:
        lone_mask.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(lone_mask), np.zeros((HEIGHT, WIDTH), np.uint8))
        ds.unpaired.append(lone_mask)
    return ds


def make_cityscapes(
    root: Path, cities=(("frankfurt", 2), ("lindau", 1)), split: str = "val", faults=Faults()
) -> Dataset:
    """leftImg8bit/<split>/<city>/<city>_000000_0000NN_leftImg8bit.png + gtFine train ids.

    Also writes the *_gtFine_color.png and *_gtFine_labelIds.png files a real download has.
    """
    items = []
    for city, count in cities:
        for n in range(count):
            prefix = f"{city}_000000_{19 * n:06d}"
            items.append(
                (
                    root / "leftImg8bit" / split / city / f"{prefix}_leftImg8bit.png",
                    root / "gtFine" / split / city / f"{prefix}_gtFine_labelTrainIds.png",
                )
            )
    items.sort()
    ds = _fill(
        Dataset(root),
        items,
        CITYSCAPES_IDS,
        faults,
        root
        / "leftImg8bit"
        / split
        / cities[0][0]
        / f"{cities[0][0]}_000099_000019_leftImg8bit.png",
        root / "gtFine" / split / cities[0][0] / "zz_000000_000000_gtFine_labelTrainIds.png",
    )
    for _, mask in items:  # distractors a real gtFine folder holds next to each train-id mask
        stem = mask.name.removesuffix("_labelTrainIds.png")
        cv2.imwrite(str(mask.with_name(f"{stem}_color.png")), np.zeros((4, 4, 3), np.uint8))
        cv2.imwrite(str(mask.with_name(f"{stem}_labelIds.png")), np.zeros((4, 4), np.uint8))
    return ds


def make_ade20k(
    root: Path, count: int = 3, split: str = "validation", parent: bool = True, faults=Faults()
) -> Dataset:
    """[ADEChallengeData2016/]images/<split>/ADE_val_000000NN.jpg + annotations/<split>/*.png."""
    base = root / "ADEChallengeData2016" if parent else root
    items = [
        (
            base / "images" / split / f"ADE_val_{n + 1:08d}.jpg",
            base / "annotations" / split / f"ADE_val_{n + 1:08d}.png",
        )
        for n in range(count)
    ]
    lone = (
        base / "images" / split / "ADE_val_00009999.jpg",
        base / "annotations" / split / "x.png",
    )
    ds = _fill(Dataset(root), items, ADE20K_IDS, faults, *lone)
    for _, mask in items[1:]:  # an "other" (0) patch: ignored once reduce_zero_label maps it
        written = cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)
        written[-4:, -4:] = 0
        cv2.imwrite(str(mask), written)
        ds.truth[mask.with_suffix(".jpg").name] = written
    return ds


def make_mmseg(root: Path, count: int = 3, split: str = "val", faults=Faults()) -> Dataset:
    """img_dir/<split>/NN.jpg + ann_dir/<split>/NN.png (mmsegmentation's custom dataset)."""
    items = [
        (root / "img_dir" / split / f"{n:02d}.jpg", root / "ann_dir" / split / f"{n:02d}.png")
        for n in range(count)
    ]
    lone = (root / "img_dir" / split / "99.jpg", root / "ann_dir" / split / "98.png")
    return _fill(Dataset(root), items, DEMO_IDS, faults, *lone)


def make_plain(root: Path, count: int = 3, faults=Faults()) -> Dataset:
    """images/frame_NN.jpg + masks/frame_NN.png (any two folders, paired by stem)."""
    items = [
        (root / "images" / f"frame_{n:02d}.jpg", root / "masks" / f"frame_{n:02d}.png")
        for n in range(count)
    ]
    lone = (root / "images" / "frame_99.jpg", root / "masks" / "frame_98.png")
    ds = _fill(Dataset(root / "images", root / "masks"), items, DEMO_IDS, faults, *lone)
    return ds
