"""Turning label maps into pictures: palette colours and a blend over the frame."""

from __future__ import annotations

import cv2
import numpy as np

from runtime.classes import palette_bgr
from runtime.errors import UserInputError


def palette_for(palette_rgb, num_classes: int) -> np.ndarray:
    """(K',3) uint8 BGR table covering at least num_classes ids."""
    return palette_bgr(palette_rgb, num_classes)


def colorize(labels: np.ndarray, table_bgr: np.ndarray) -> np.ndarray:
    """(H,W) class ids -> (H,W,3) uint8 BGR; ids past the table (e.g. 255 = ignore) get its last colour."""
    table_bgr = np.asarray(table_bgr, np.uint8)
    if labels.dtype != np.uint8 or len(table_bgr) > 256:
        return np.take(table_bgr, labels, axis=0, mode="clip")
    # uint8 ids: OpenCV's table lookup is about twice as fast as numpy's take.
    lut = np.empty((256, 1, 3), np.uint8)
    lut[: len(table_bgr), 0] = table_bgr
    lut[len(table_bgr) :, 0] = table_bgr[-1]
    return cv2.LUT(cv2.merge((labels, labels, labels)), lut)


def blend(
    frame_bgr: np.ndarray, labels: np.ndarray, table_bgr: np.ndarray, alpha: float
) -> np.ndarray:
    """Frame with the colourised labels laid over it; alpha is the label colour's weight (0..1)."""
    if not 0.0 <= alpha <= 1.0:
        raise UserInputError(f"alpha must be in [0, 1], got {alpha}")
    if labels.shape[:2] != frame_bgr.shape[:2]:
        raise ValueError(
            f"labels {labels.shape[:2]} and frame {frame_bgr.shape[:2]} differ in size"
        )
    color_bgr = colorize(labels, table_bgr)
    return cv2.addWeighted(color_bgr, alpha, frame_bgr, 1.0 - alpha, 0.0)


def class_areas(labels: np.ndarray, class_names: tuple[str, ...]) -> dict[str, float]:
    """Fraction of the frame each present class covers, largest first."""
    counts = np.bincount(labels.ravel(), minlength=len(class_names))
    total = float(labels.size)
    areas = {}
    for idx in np.flatnonzero(counts):
        name = class_names[idx] if idx < len(class_names) else f"class_{idx}"
        areas[name] = round(float(counts[idx]) / total, 5)
    return dict(sorted(areas.items(), key=lambda kv: -kv[1]))
