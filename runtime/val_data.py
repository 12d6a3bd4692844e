"""Validation images with their masks, found in the dataset layouts people already have on disk
(reading the masks themselves: runtime/masks.py).

Layouts, detected from the root folder (`find_val_set`):

- cityscapes: leftImg8bit/<split>/<city>/*_leftImg8bit.png with
  gtFine/<split>/<city>/*_gtFine_labelTrainIds.png, paired by <city>_<seq>_<frame>;
- ade20k: images/<split>/*.jpg with annotations/<split>/*.png, paired by stem (a root holding
  ADEChallengeData2016/ is descended into). Mask value 0 means "other": reduce_zero_label maps
  0 to the ignore index and k to k-1, on by default for this layout only;
- mmseg: img_dir/<split>/ with ann_dir/<split>/ (mmsegmentation's custom dataset), by stem;
- explicit: an images folder and a masks folder (`masks=`), paired by exact file stem
  (a.jpg with a.png); no split.

Masks hold class ids in one channel (read unchanged: 8- or 16-bit). Labels come back as int32.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from runtime.io.files import list_entries, list_files
from runtime.masks import SHOWN, ValDataError, count_text, read_mask, reduce_zero_label
from runtime.sampling import evenly_spaced
from runtime.text import shown

__all__ = ["ValDataError", "ValSample", "ValSet", "find_val_set", "read_image"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CITY_IMAGE, CITY_MASK = "_leftImg8bit.png", "_gtFine_labelTrainIds.png"
CITY_IDS = "_gtFine_labelIds.png"  # the 34-class ids Cityscapes ships; train ids are made from them
MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")
ADE_PARENT = "ADEChallengeData2016"
# Layout -> (image folder, mask folder, default split), checked in this order.
LAYOUTS: dict[str, tuple[str, str, str]] = {
    "cityscapes": ("leftImg8bit", "gtFine", "val"),
    "ade20k": ("images", "annotations", "validation"),
    "mmseg": ("img_dir", "ann_dir", "val"),
}


# How images and masks are paired, per layout, for the "no pairs" message.
PAIRING = {
    "cityscapes": "the same <city>_<seq>_<frame> prefix (*_leftImg8bit.png / *_gtFine_labelTrainIds.png)",
    "ade20k": "the same file stem (images/*.jpg / annotations/*.png)",
    "mmseg": "the same file stem (img_dir/ / ann_dir/)",
    "explicit": "the same file stem in --val-masks",
}


class ValSample(NamedTuple):
    image_path: Path
    mask_path: Path
    frame_bgr: np.ndarray  # (H,W,3) uint8 as decoded
    labels: np.ndarray  # (H,W) int32 class ids, ignore_index where unlabelled


@dataclass(frozen=True)
class ValSet:
    layout: str  # cityscapes | ade20k | mmseg | explicit
    root: Path  # the layout's root (the images folder for explicit)
    split: str | None
    pairs: tuple[tuple[Path, Path], ...]  # (image, mask), sorted
    unpaired_images: tuple[Path, ...]
    unpaired_masks: tuple[Path, ...]
    reduce_zero_label: bool  # the effective value
    ignore_index: int
    description: str  # "cityscapes layout at /data/cs: 500 pairs (split val)"
    warnings: tuple[str, ...]  # unpaired files, one line each

    def __len__(self) -> int:
        return len(self.pairs)

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(frame_bgr (H,W,3) uint8, labels (H,W) int32) of pair i."""
        image_path, mask_path = self.pairs[i]
        frame_bgr = read_image(image_path)
        labels = read_mask(mask_path)
        if labels.shape != frame_bgr.shape[:2]:
            h, w = frame_bgr.shape[:2]
            raise ValDataError(
                f"mask {shown(mask_path)} is {labels.shape[0]}x{labels.shape[1]} but its image "
                f"{shown(image_path.name)} is {h}x{w}; a mask must have its image's size"
            )
        if self.reduce_zero_label:
            labels = reduce_zero_label(labels, self.ignore_index)
        return frame_bgr, labels

    def samples(self, max_images: int | None = None) -> Iterator[ValSample]:
        """Pairs read one at a time; `max_images` picks that many, evenly spaced."""
        for i in self.indices(max_images):
            yield ValSample(*self.pairs[i], *self.read(i))

    def indices(self, max_images: int | None = None) -> list[int]:
        """Pair indices `samples` reads: all, or `max_images` evenly spaced (first and last kept)."""
        if max_images is not None and max_images < 1:
            raise ValDataError(f"max_images must be >= 1, got {max_images}")
        return evenly_spaced(len(self), len(self) if max_images is None else max_images)

    def __iter__(self) -> Iterator[ValSample]:
        return self.samples()


def find_val_set(
    root: str | Path,
    masks: str | Path | None = None,
    split: str | None = None,
    reduce_zero_label: bool | None = None,
    ignore_index: int = 255,
) -> ValSet:
    """Find image/mask pairs under `root` (see the module docstring for the layouts).

    split None means the layout's validation split (val; validation for ADE20K); with `masks`
    (explicit folders) there is no split and `split` is not used.
    reduce_zero_label None means on for ADE20K, off otherwise.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ValDataError(
            f"validation data {shown(root)} {what}; pass a dataset root or images folder"
        )
    if masks is not None:
        return _explicit(root, Path(masks), bool(reduce_zero_label), ignore_index)
    if (root / ADE_PARENT).is_dir():
        root = root / ADE_PARENT
    for layout, (image_dir, mask_dir, default_split) in LAYOUTS.items():
        if (root / image_dir).is_dir() and (root / mask_dir).is_dir():
            split = split or default_split
            images, labels = _split_dirs(root, image_dir, mask_dir, split)
            reduce = layout == "ade20k" if reduce_zero_label is None else reduce_zero_label
            pair_up = _cityscapes_pairs if layout == "cityscapes" else _stem_pairs
            notes: list[str] = []
            found = pair_up(images, labels, notes)
            return _val_set(layout, root, split, *found, reduce, ignore_index, notes=notes)
    raise ValDataError(_unknown_layout(root))


def _explicit(images: Path, masks: Path, reduce: bool, ignore_index: int) -> ValSet:
    if not masks.is_dir():
        what = "is not a folder" if masks.exists() else "does not exist"
        raise ValDataError(f"masks folder {shown(masks)} {what}; pass the folder of label PNGs")
    notes: list[str] = []
    found = _stem_pairs(images, masks, notes, recursive=False)
    return _val_set("explicit", images, None, *found, reduce, ignore_index, masks, notes)


def _split_dirs(root: Path, image_dir: str, mask_dir: str, split: str) -> tuple[Path, Path]:
    for sub in (image_dir, mask_dir):
        if not (root / sub / split).is_dir():
            entries = list_entries(root / sub, f"validation data {shown(root / sub)}")
            present = [shown(name) for name, is_dir in entries if is_dir]
            raise ValDataError(
                f"{shown(root / sub)} has no split {split!r}; splits there: "
                f"{', '.join(present) or 'none'}; choose one with --val-split"
            )
    return root / image_dir / split, root / mask_dir / split


def _cityscapes_pairs(images: Path, masks: Path, notes: list[str]):
    image_files = _listed(images, lambda name: name.endswith(CITY_IMAGE), notes)
    mask_files = _listed(masks, lambda name: name.endswith((CITY_MASK, CITY_IDS)), notes)
    train_ids = [p for p in mask_files if p.name.endswith(CITY_MASK)]
    if image_files and not train_ids and mask_files:
        raise ValDataError(
            f"{shown(masks)} has *{CITY_IDS} but no *{CITY_MASK}; the 19-class train ids are "
            "made by cityscapesscripts: pip install cityscapesscripts, then "
            f"CITYSCAPES_DATASET={shown(masks.parent.parent)} csCreateTrainIdLabelImgs"
        )
    return _match(_keyed(image_files, images, CITY_IMAGE), _keyed(train_ids, masks, CITY_MASK))


def _stem_pairs(images: Path, masks: Path, notes: list[str], recursive: bool = True):
    def files(folder: Path, suffixes) -> dict[str, Path]:
        keep = lambda name: name.lower().endswith(suffixes)  # noqa: E731
        return _keyed(_listed(folder, keep, notes, recursive), folder, None)

    return _match(files(images, IMAGE_SUFFIXES), files(masks, MASK_SUFFIXES))


def _listed(folder: Path, keep, notes: list[str], recursive: bool = True) -> tuple[Path, ...]:
    """Regular files under `folder` whose names pass `keep`; skipped entries go to `notes`."""
    listing = list_files(folder, f"validation data {shown(folder)}", recursive, keep)
    if listing.skipped:
        notes.append(f"{shown(folder)}: {listing.warning()}")
    return listing.files


def _keyed(paths, base: Path, suffix: str | None) -> dict[str, Path]:
    """relative path without the layout's suffix (or the extension) -> path."""
    keyed = {}
    for path in paths:
        rel = path.relative_to(base).as_posix()
        keyed[rel[: -len(suffix)] if suffix else rel.rsplit(".", 1)[0]] = path
    return keyed


def _match(images: dict[str, Path], masks: dict[str, Path]):
    pairs = tuple((images[k], masks[k]) for k in sorted(images.keys() & masks.keys()))
    lone_images = tuple(images[k] for k in sorted(images.keys() - masks.keys()))
    lone_masks = tuple(masks[k] for k in sorted(masks.keys() - images.keys()))
    return pairs, lone_images, lone_masks


def _val_set(
    layout, root, split, pairs, lone_images, lone_masks, reduce, ignore_index, masks=None, notes=()
) -> ValSet:
    warnings = list(notes)
    if lone_images:
        warnings.append(f"{count_text(lone_images, 'image')} without a mask: {_names(lone_images)}")
    if lone_masks:
        warnings.append(f"{count_text(lone_masks, 'mask')} without an image: {_names(lone_masks)}")
    where = f"{shown(root)} with masks {shown(masks)}" if masks else shown(root)
    if not pairs:
        found = "; ".join(warnings) or "no image or mask files"
        how = PAIRING.get(layout, "the same file stem")
        raise ValDataError(
            f"no image/mask pairs in {layout} layout at {where}: {found}; give each image a "
            f"mask with {how}"
        )
    split_text = f" (split {split})" if split else ""
    reduced = ", reduce_zero_label" if reduce else ""
    desc = f"{layout} layout at {where}: {count_text(pairs, 'pair')}{split_text}{reduced}"
    return ValSet(
        layout, root, split, pairs, lone_images, lone_masks, reduce, ignore_index, desc,
        tuple(warnings),
    )  # fmt: skip


def _names(paths) -> str:
    named = ", ".join(shown(p.name) for p in paths[:SHOWN])
    return named + (f" (+{len(paths) - SHOWN} more)" if len(paths) > SHOWN else "")


def _unknown_layout(root: Path) -> str:
    entries = [
        shown(name) + ("/" if is_dir else "")
        for name, is_dir in list_entries(root, f"validation data {shown(root)}")
    ]
    found = ", ".join(entries[:8]) + (f" (+{len(entries) - 8} more)" if len(entries) > 8 else "")
    looked = "; ".join(f"{name}: {i}/ + {m}/" for name, (i, m, _) in LAYOUTS.items())
    return (
        f"no known dataset layout at {shown(root)} (looked for {looked}; {ADE_PARENT}/); "
        f"found: {found or 'nothing'}; for other layouts pass the images folder and a masks folder"
    )


def read_image(path: Path) -> np.ndarray:
    """Any image file -> (H,W,3) uint8 BGR, its budgets checked before decoding."""
    from runtime.preprocess import read_image as read_bgr8

    return read_bgr8(path, ValDataError)
