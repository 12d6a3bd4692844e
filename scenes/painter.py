"""The painter: fills projected polygons on the image and the label map with the same cv2 call,
so every label pixel matches the image."""

from __future__ import annotations

import cv2
import numpy as np

from scenes.geometry import Z_NEAR_M, Projector, clip_near
from scenes.spec import Colour, bgr

_SHIFT = 4  # sub-pixel bits for cv2 drawing: slow motion moves smoothly, not in 1 px steps


class Painter:
    """Fills 3-D polygons on the image and, when given a class id, on the label map too."""

    def __init__(self, image_bgr: np.ndarray, labels: np.ndarray, project: Projector) -> None:
        self.image_bgr, self.labels, self.project = image_bgr, labels, project

    def _fixed(self, uv: np.ndarray) -> np.ndarray:
        fixed = np.round(uv * (1 << _SHIFT))
        if np.abs(fixed).max() > 2**28:  # cv2 takes int32 points; this is far outside any image
            fixed = np.clip(fixed, -(2**28), 2**28)
        return fixed.astype(np.int32)

    def fill(self, poly_xyz, colour_bgr: Colour, class_id: int | None = None) -> None:
        poly = clip_near(np.asarray(poly_xyz, np.float64))
        if len(poly) >= 3:
            self._draw([self._fixed(self.project(poly))], colour_bgr, class_id)

    def fill_many(self, polys_xyz: np.ndarray, colour_bgr: Colour, class_id=None) -> None:
        """(N,K,3) polygons that do not overlap each other (fillPoly uses even-odd filling)."""
        polys = np.asarray(polys_xyz, np.float64)
        if polys.size == 0:
            return
        polys = polys[polys[..., 2].min(axis=1) >= Z_NEAR_M]  # skip, don't clip: all tiny
        if len(polys):
            self._draw(list(self._fixed(self.project(polys))), colour_bgr, class_id)

    def _draw(self, polys: list[np.ndarray], colour_bgr: Colour, class_id: int | None) -> None:
        cv2.fillPoly(self.image_bgr, polys, colour_bgr, cv2.LINE_8, _SHIFT)
        if class_id is not None:
            cv2.fillPoly(self.labels, polys, int(class_id), cv2.LINE_8, _SHIFT)

    def darken(self, poly_xyz, factor: float) -> None:
        """Multiply the image under a polygon by factor (shadows); labels are unchanged."""
        poly = clip_near(np.asarray(poly_xyz, np.float64))
        if len(poly) < 3:
            return
        pts = self._fixed(self.project(poly))
        x0, y0 = np.maximum(pts.min(axis=0) >> _SHIFT, 0)
        x1, y1 = np.minimum((pts.max(axis=0) >> _SHIFT) + 2, self.labels.shape[::-1])
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, _SHIFT, (-int(x0) << _SHIFT, -int(y0) << _SHIFT))
        roi = self.image_bgr[y0:y1, x0:x1]
        roi[mask > 0] = (roi[mask > 0] * factor).astype(np.uint8)


def shade_colour(colour_bgr: Colour, factor: float) -> Colour:
    return bgr(np.asarray(colour_bgr, float) * factor)
