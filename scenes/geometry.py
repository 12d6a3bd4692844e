"""Pinhole projection, clipping at the near plane, and the 3-D polygons scenes are built from
(walls, ground quads, discs, pane grids, the visible faces of a box)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenes.spec import Building, Camera

Z_NEAR_M = 0.25  # polygons are clipped to this depth so nothing behind the camera is projected


@dataclass(frozen=True)
class Projector:
    camera: Camera
    height: int
    width: int
    vanish_x_px: float  # column of the vanishing point in the array being drawn

    def __call__(self, xyz: np.ndarray) -> np.ndarray:
        """(...,3) metres with z >= Z_NEAR_M -> (...,2) pixel coordinates (u, v)."""
        cam = self.camera
        inv_z = 1.0 / xyz[..., 2]
        uv = np.empty((*xyz.shape[:-1], 2))
        uv[..., 0] = self.vanish_x_px + (cam.focal * self.width) * xyz[..., 0] * inv_z
        uv[..., 1] = cam.horizon * self.height
        uv[..., 1] += (cam.focal * self.height) * (cam.height_m - xyz[..., 1]) * inv_z
        return uv

    def min_size_m(self, z_m: float, pixels_at_512: float, axis: int = 0) -> float:
        """Metres that give at least this many pixels (scaled from 512 px, at least 1 px)."""
        size = self.width if axis == 0 else self.height
        pixels = max(1.0, pixels_at_512 * size / 512.0)
        return pixels * z_m / (self.camera.focal * size)


def clip_near(poly: np.ndarray) -> np.ndarray:
    """Clip a (N,3) polygon to z >= Z_NEAR_M (Sutherland-Hodgman against one plane)."""
    if poly[:, 2].min() >= Z_NEAR_M:
        return poly
    out = []
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        a_in, b_in = a[2] >= Z_NEAR_M, b[2] >= Z_NEAR_M
        if a_in:
            out.append(a)
        if a_in != b_in:
            out.append(a + (b - a) * (Z_NEAR_M - a[2]) / (b[2] - a[2]))
    return np.array(out).reshape(-1, 3)


def quad_x(x, y0, y1, z0, z1) -> np.ndarray:  # a wall in the plane x = const
    return np.array([[x, y0, z0], [x, y0, z1], [x, y1, z1], [x, y1, z0]], float)


def quad_z(z, x0, x1, y0, y1) -> np.ndarray:  # a wall facing the camera
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], float)


def quad_y(y, x0, x1, z0, z1) -> np.ndarray:  # flat on the ground (or a roof)
    return np.array([[x0, y, z0], [x1, y, z0], [x1, y, z1], [x0, y, z1]], float)


def disc_z(x, y, z, rx, ry, n: int = 16) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([x + rx * np.cos(a), y + ry * np.sin(a), np.full(n, z)], axis=-1)


def disc_x(x, y, z, r, n: int = 12) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.full(n, x), y + r * np.sin(a), z + r * np.cos(a)], axis=-1)


def grid(lo: float, hi: float, step: float, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of evenly spaced panes (windows, dashes) that fit inside [lo, hi]."""
    starts = np.arange(lo + step * (1 - fill) / 2, hi - step * fill + 1e-9, step)
    return starts, starts + step * fill


def box_faces(b: Building, cam_height_m: float) -> list[tuple[str, np.ndarray]]:
    """The faces of a box seen from the camera at x=0: near face, inner side, maybe the roof."""
    faces = [("near", quad_z(b.z0_m, b.x0_m, b.x1_m, 0.0, b.height_m))]
    if b.x0_m > 0:
        faces.append(("left", quad_x(b.x0_m, 0.0, b.height_m, b.z0_m, b.z1_m)))
    elif b.x1_m < 0:
        faces.append(("right", quad_x(b.x1_m, 0.0, b.height_m, b.z0_m, b.z1_m)))
    if cam_height_m > b.height_m:
        faces.append(("top", quad_y(b.height_m, b.x0_m, b.x1_m, b.z0_m, b.z1_m)))
    return faces
