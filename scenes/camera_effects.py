"""Camera effects applied to each frame: lighting, colour temperature, vignette and sensor noise."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from scenes.spec import Look


def make_vignette(height: int, width: int, strength: float) -> np.ndarray:
    """(H,W,3) uint8 gain, 255 in the centre, 255 * (1 - strength) in the corners."""
    dx2 = (np.arange(width, dtype=np.float32) / width - 0.5) ** 2
    dy2 = (np.arange(height, dtype=np.float32) / height - 0.5) ** 2
    gain = (255.0 * (1.0 - strength * 2.0 * (dy2[:, None] + dx2[None, :]))).astype(np.uint8)
    out = cv2.merge([gain] * 3)
    out.flags.writeable = False
    return out


def apply_camera(frame_bgr: np.ndarray, look: Look, vignette: np.ndarray) -> np.ndarray:
    """Global lighting (gain, contrast, colour temperature) as a LUT, then the vignette."""
    x = np.arange(256, dtype=np.float32) / 255.0
    curve = ((x - 0.5) * look.contrast + 0.5) * look.gain
    lut = np.stack([curve * k for k in look.tint_bgr], axis=-1) * 255.0
    lut = np.clip(lut, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    lit = cv2.LUT(frame_bgr, lut)
    return cv2.multiply(lit, vignette, scale=1.0 / 255.0)


@functools.lru_cache(maxsize=4)
def _noise_field(height: int, width: int) -> np.ndarray:
    """(H+64, W+64, 3) uint8 Gaussian noise around 128 with sigma 16, shared by all seeds."""
    rng = np.random.default_rng(20_240_601)
    noise = rng.normal(128.0, 16.0, (height + 64, width + 64, 3)).astype(np.float32)
    out = np.clip(noise, 0, 255).astype(np.uint8)
    out.flags.writeable = False
    return out


def add_sensor_noise(frame_bgr: np.ndarray, sigma: float, seed: int, t: float) -> np.ndarray:
    # A random crop of one shared noise field per frame: Gaussian, seeded, and ~10x cheaper
    # than drawing fresh normals for every pixel.
    h, w = frame_bgr.shape[:2]
    dy, dx = np.random.default_rng((seed, round(t * 1e6) % 2**63)).integers(0, 64, 2)
    noise = _noise_field(h, w)[dy : dy + h, dx : dx + w]
    k = sigma / 16.0
    return cv2.addWeighted(frame_bgr, 1.0, noise, k, -128.0 * k)
