"""Validation masks: class ids read from single-channel or palette PNGs, ADE20K's zero label,
and the values that fall outside a model's classes (counted per file, reported once).

Masks hold class ids in one channel (read unchanged: 8- or 16-bit); labels come back as int32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.errors import UserInputError
from runtime.io.image_file import decode, load_encoded
from runtime.text import shown

CITY_MASK = "_gtFine_labelTrainIds.png"
SHOWN = 3  # file names quoted in a warning before "(+N more)"
MAX_CHUNKS_BEFORE_PLTE = 4096  # real PNGs have a handful (IHDR, gAMA, sRGB, iCCP, tEXt...)


class ValDataError(UserInputError):
    """Validation data that is missing, in no known layout, unpaired or unreadable."""


def count_text(items, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def read_mask(path: Path) -> np.ndarray:
    """A single-channel class-id image (or a palette PNG, e.g. VOC's) -> (H,W) int32.

    Its size and pixel count are checked before decoding (runtime/io/image_file.py)."""
    encoded = load_encoded(path, "mask", ValDataError)
    mask = decode(encoded, "mask", ValDataError)
    palette = _png_palette(encoded.data, path) if encoded.header.format == "PNG" else None
    if palette is not None:
        return _palette_indices(mask, palette, path)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise ValDataError(
            f"mask {shown(path)} has {mask.shape[2]} colour channels; use single-channel masks of "
            f"class ids (e.g. Cityscapes *{CITY_MASK}, not *_color.png)"
        )
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValDataError(
            f"mask {shown(path)} holds {mask.dtype} values; masks must hold integer class ids"
        )
    return mask.astype(np.int32)


def _png_palette(data: bytes, path: Path) -> np.ndarray | None:
    """(N,3) uint8 RGB palette of an indexed-colour PNG's bytes; None for any other PNG."""
    # Signature (8), IHDR length and type (8), width, height (8), bit depth (1), colour type (1).
    if len(data) < 26 or data[25] != 3:
        return None
    pos = 8
    for _ in range(MAX_CHUNKS_BEFORE_PLTE):
        if pos + 8 > len(data):
            break
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        if kind == b"PLTE":
            raw = np.frombuffer(data[pos + 8 : pos + 8 + min(size, 3 * 256)], np.uint8)
            return raw[: len(raw) // 3 * 3].reshape(-1, 3)
        if kind == b"IDAT":
            break
        pos += 12 + size
    raise ValDataError(f"mask {shown(path)} is an indexed-colour PNG without a palette; re-save it")


def _palette_indices(mask: np.ndarray, palette_rgb: np.ndarray, path: Path) -> np.ndarray:
    # OpenCV expands palette PNGs to colours (no flag keeps the indices, which are the class ids),
    # so map every colour back to its palette index; that is exact when the colours are distinct.
    bgr = mask[:, :, :3].astype(np.int32) if mask.ndim == 3 else np.stack([mask] * 3, -1)
    keys = (bgr[..., 2] << 16) | (bgr[..., 1] << 8) | bgr[..., 0]  # (H,W) packed RGB
    pal = palette_rgb.astype(np.int32)
    pal_keys = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    used, inverse = np.unique(keys, return_inverse=True)
    index_of = {}
    for i, key in enumerate(pal_keys.tolist()):
        index_of.setdefault(key, []).append(i)
    ids = []
    for key in used.tolist():
        found = index_of.get(key, [])
        if len(found) != 1:
            what = "not in its palette" if not found else f"shared by palette entries {found}"
            raise ValDataError(
                f"mask {shown(path)}: colour #{key:06x} is {what}, so its class id cannot be recovered; "
                "save the mask as a single-channel PNG of class ids"
            )
        ids.append(found[0])
    return np.asarray(ids, np.int32)[inverse.reshape(keys.shape)]


def reduce_zero_label(labels: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """ADE20K-style masks: 0 ("other") -> ignore_index, k -> k-1; ignore_index stays."""
    out = labels.astype(np.int32) - 1
    out[(labels == 0) | (labels == ignore_index)] = ignore_index
    return out


def check_labels(labels: np.ndarray, num_classes: int, ignore_index: int | None = 255) -> dict:
    """{value: pixel count} of values outside 0..num_classes-1 that are not the ignore index."""
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        bad &= labels != ignore_index
    if not bad.any():
        return {}
    values, counts = np.unique(labels[bad], return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


class OutOfRangeTally:
    """Collects, per mask file, the values outside the classes; one summary line at the end."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.by_file: dict[str, dict[int, int]] = {}

    def add(self, name: str, labels: np.ndarray) -> dict[int, int]:
        """Record `labels`' out-of-range values under `name`; returns them ({value: pixels})."""
        found = check_labels(labels, self.num_classes, self.ignore_index)
        if found:
            self.by_file[name] = found
        return found

    def clean(self, labels: np.ndarray, name: str) -> np.ndarray:
        """Record, then return labels with out-of-range values set to the ignore index."""
        if not self.add(name, labels):
            return labels
        out = labels.copy()
        out[(labels < 0) | (labels >= self.num_classes)] = self.ignore_index
        return out

    @property
    def total_pixels(self) -> int:
        """Pixels counted as out of range so far, over every file."""
        return sum(n for vals in self.by_file.values() for n in vals.values())

    @property
    def max_value(self) -> int | None:
        return max((v for vals in self.by_file.values() for v in vals), default=None)

    def summary(self) -> list[str]:
        """[] when every mask was in range, else one line naming the files and values."""
        if not self.by_file:
            return []
        files = [
            f"{name} ({', '.join(f'value {v}: {n} px' for v, n in sorted(vals.items()))})"
            for name, vals in list(self.by_file.items())[:SHOWN]
        ]
        more = len(self.by_file) - SHOWN
        return [
            f"{count_text(self.by_file, 'mask')} {'holds' if len(self.by_file) == 1 else 'hold'} values outside 0..{self.num_classes - 1} that are "
            f"not the ignore index {self.ignore_index} (counted as ignored): "
            f"{', '.join(files)}{f' (+{more} more)' if more > 0 else ''}"
        ]
