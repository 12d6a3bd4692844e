"""Texture of the static layer: per-class luminance noise and clouds (image only)."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from scenes.spec import BUILDING, ROAD, SIDEWALK, SKY, VEGETATION, SceneSpec

_TEXTURE_AMPS = {  # class: (fine, mid, coarse) noise amplitude in 0..255 units
    ROAD: (5.0, 2.5, 5.0),
    SIDEWALK: (6.0, 3.0, 5.0),
    BUILDING: (4.0, 4.0, 8.0),
    VEGETATION: (10.0, 20.0, 10.0),
    SKY: (1.0, 0.0, 0.0),
}


@functools.lru_cache(maxsize=4)
def _texture_fields(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Fine (pixel) and mid (~5 px) float32 noise, (H+64, W+64), shared by all seeds.

    Each seed crops its own window: ~10x cheaper than drawing fresh normals per scene.
    """
    rng = np.random.default_rng(20_240_602)
    h, w = height + 64, width + 64
    fine = rng.standard_normal((h, w), dtype=np.float32)
    mid = rng.standard_normal((h // 5 + 2, w // 5 + 2), dtype=np.float32)
    return fine, cv2.resize(mid, (w, h), interpolation=cv2.INTER_LINEAR)


def add_texture(image_bgr: np.ndarray, labels: np.ndarray, spec: SceneSpec) -> None:
    """Per-region luminance noise (asphalt grain, leaves, weathering) and clouds in the sky."""
    rng = np.random.default_rng((spec.seed, 1))
    h, w = labels.shape
    dy, dx = rng.integers(0, 64, 2)
    # Round the key up so seeds whose canvases differ by a few pixels share one field.
    fields = _texture_fields(h, (w // 64 + 1) * 64)
    fine, mid = (f[dy : dy + h, dx : dx + w] for f in fields)
    coarse = rng.standard_normal((h // 24 + 2, w // 24 + 2), dtype=np.float32)
    coarse = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    luts = np.zeros((3, 256), np.float32)
    for class_id, amps in _TEXTURE_AMPS.items():
        luts[:, class_id] = amps
    delta = luts[0][labels] * fine + luts[1][labels] * mid + luts[2][labels] * coarse
    delta = delta.astype(np.int16)
    image_bgr[:] = cv2.add(image_bgr, cv2.merge([delta] * 3), dtype=cv2.CV_8U)
    _add_clouds(image_bgr, labels, coarse, mid, spec)


def _add_clouds(image_bgr, labels, coarse, mid, spec: SceneSpec) -> None:
    """Blend sky pixels toward white where the coarse noise is high (only rows above the horizon)."""
    if spec.look.cloud_amount < 0.05:
        return
    rows = int(spec.camera.horizon * labels.shape[0]) + 1
    cloud = coarse[:rows] * 0.6 + mid[:rows] * 0.15 + (spec.look.cloud_amount - 0.6)
    cloud = np.clip(cloud, 0.0, 1.0) * (labels[:rows] == SKY)
    sky = image_bgr[:rows].astype(np.float32)
    sky += cloud[..., None] * (np.float32(235.0) - sky)
    image_bgr[:rows] = sky.astype(np.uint8)
