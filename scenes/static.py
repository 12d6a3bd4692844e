"""Static layer: sky, ground, street, buildings, trees (cached per seed and size)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from scenes.camera_effects import make_vignette
from scenes.geometry import Projector, box_faces, disc_z, grid, quad_y, quad_z
from scenes.layout import scene_spec
from scenes.painter import Painter, shade_colour
from scenes.spec import (
    BUILDING,
    ROAD,
    SIDEWALK,
    SKY,
    VEGETATION,
    Building,
    Camera,
    Look,
    SceneSpec,
    Street,
    Tree,
)
from scenes.texture import add_texture

_FAR_M = 2000.0  # "infinite" depth for ground polygons


def _draw_sky(image_bgr: np.ndarray, labels: np.ndarray, look: Look, camera: Camera) -> None:
    rows = np.arange(image_bgr.shape[0], dtype=np.float32)[:, None]
    frac = np.clip(rows / max(camera.horizon * image_bgr.shape[0], 1.0), 0.0, 1.0) ** 0.8
    top, horizon = np.array(look.sky_top_bgr, np.float32), np.array(look.sky_horizon_bgr)
    column = ((1 - frac) * top + frac * horizon).astype(np.uint8)[:, None, :]  # (H,1,3)
    image_bgr[:] = cv2.resize(column, image_bgr.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    labels[:] = SKY


def _draw_street(p: Painter, street: Street) -> None:
    left, right = street.edge_m(-1), street.edge_m(1)
    p.fill(quad_y(0, -5000, 5000, 0.0, _FAR_M), street.ground_bgr, street.ground_class)
    p.fill(quad_y(0, left, right, 0.0, _FAR_M), street.road_bgr, ROAD)
    for side in (-1, 1):
        inner, outer = street.edge_m(side), street.outer_m(side)
        if inner == outer:
            continue
        p.fill(quad_y(0, inner, outer, 0.0, _FAR_M), street.sidewalk_bgr, SIDEWALK)
        curb = shade_colour(street.sidewalk_bgr, 1.2)
        p.fill(quad_y(0, inner, inner + side * 0.2, 0.0, _FAR_M), curb)
        _draw_tiles(p, street, inner + side * 0.2, outer)
    _draw_markings(p, street)


def _draw_tiles(p: Painter, street: Street, x_a: float, x_b: float) -> None:
    """Joint lines between paving tiles (image only); they fade out into the distance."""
    lo, hi = min(x_a, x_b), max(x_a, x_b)
    joint = shade_colour(street.sidewalk_bgr, 0.8)
    zs = np.arange(1.0, 40.0, street.tile_m)
    across = [quad_y(0, lo, hi, z, z + 0.04 * z**0.5) for z in zs]
    xs = np.arange(lo + street.tile_m, hi, street.tile_m)
    along = [quad_y(0, x, x + 0.03, 1.0, 40.0) for x in xs]
    p.fill_many(np.array(across + along).reshape(-1, 4, 3), joint)


def _draw_markings(p: Painter, street: Street) -> None:
    """Dashed lane lines and solid edge lines, painted on the road (still labelled road)."""
    dashes = []
    z0, z1 = grid(0.5, 160.0, 9.0, 0.35)
    for lane in range(1, street.lane_count):
        x = street.edge_m(-1) + lane * street.lane_width_m
        dashes += [quad_y(0, x - 0.07, x + 0.07, a, b) for a, b in zip(z0, z1, strict=True)]
    for side in (-1, 1):
        x = street.edge_m(side) - side * 0.3
        dashes.append(quad_y(0, x - 0.06, x + 0.06, 0.5, _FAR_M))
    p.fill_many(np.array(dashes), street.marking_bgr)


def _face_windows(b: Building, face: str) -> np.ndarray:
    """(N,4,3) window panes on one face of a building."""
    y0, y1 = grid(1.0, b.height_m - 0.5, b.floor_m, 0.5)
    if face == "near":
        a0, a1 = grid(b.x0_m, b.x1_m, b.bay_m, 0.55)
    else:
        a0, a1 = grid(b.z0_m, b.z1_m, b.bay_m, 0.55)
    A0, Y0 = np.meshgrid(a0, y0)
    A1, Y1 = np.meshgrid(a1, y1)
    a0, a1, y0, y1 = A0.ravel(), A1.ravel(), Y0.ravel(), Y1.ravel()
    if face == "near":
        z = np.full_like(a0, b.z0_m - 0.02)
        corners = [(a0, y0, z), (a1, y0, z), (a1, y1, z), (a0, y1, z)]
    else:
        x = np.full_like(a0, (b.x0_m - 0.02) if face == "left" else (b.x1_m + 0.02))
        corners = [(x, y0, a0), (x, y0, a1), (x, y1, a1), (x, y1, a0)]
    return np.stack([np.stack(c, axis=-1) for c in corners], axis=1)


def _pane_kind(count: int) -> np.ndarray:
    """A fixed irregular pattern of 0/1/2 so windows don't all look alike."""
    idx = np.arange(count)
    return (idx * 7919 + (idx // 3) * 104729) % 13 % 3


def _draw_building(p: Painter, b: Building, spec: SceneSpec) -> None:
    for face, quad in box_faces(b, spec.camera.height_m):
        lit = (face == "left") == (spec.look.sun_side < 0)
        factor = {"near": 0.85, "top": 1.05}.get(face, 1.0 if lit else 0.72)
        p.fill(quad, shade_colour(b.colour_bgr, factor), BUILDING)
        if face == "top":
            continue
        panes = _face_windows(b, face)
        for k in range(3):  # three pane brightnesses: dark, reflecting, lit
            colour = shade_colour(b.window_bgr, (0.8, 1.25, 1.6)[k] * factor)
            p.fill_many(panes[_pane_kind(len(panes)) == k], colour)


def _draw_tree(p: Painter, tree: Tree) -> None:
    trunk = max(0.12 * tree.trunk_m, p.project.min_size_m(tree.z_m, 2.0))
    p.fill(
        quad_z(tree.z_m, tree.x_m - trunk, tree.x_m + trunk, 0.0, tree.trunk_m + 0.3),
        (40, 55, 70),
        VEGETATION,
    )
    r = tree.canopy_m
    top = tree.trunk_m + 0.7 * r
    lobes = [
        (0.0, 0.0, 1.0, 0.95),
        (-0.55, -0.2, 0.7, 1.0),
        (0.55, -0.15, 0.72, 1.1),
        (0.1, 0.45, 0.7, 0.85),
    ]
    for dx, dy, scale, shade in lobes:
        disc = disc_z(tree.x_m + dx * r, top + dy * r, tree.z_m, r * scale, r * scale * 0.9)
        p.fill(disc, shade_colour(tree.colour_bgr, shade), VEGETATION)


@dataclass(frozen=True)
class StaticLayer:
    image_bgr: np.ndarray  # (H, W + 2*margin, 3): wider than the frame so the camera can pan
    labels: np.ndarray
    margin_px: int
    vignette: np.ndarray  # (H,W,3) uint8 gain, 255 = unchanged


@functools.lru_cache(maxsize=4)
def static_layer(seed: int, height: int, width: int) -> StaticLayer:
    spec = scene_spec(seed)
    margin = math.ceil(spec.camera.pan_amplitude * width) + 1
    image = np.empty((height, width + 2 * margin, 3), np.uint8)
    labels = np.empty((height, width + 2 * margin), np.uint8)
    _draw_sky(image, labels, spec.look, spec.camera)
    vanish_x = margin + spec.camera.center_x * width
    p = Painter(image, labels, Projector(spec.camera, height, width, vanish_x))
    _draw_street(p, spec.street)
    items = [(b.z0_m, _draw_building, b) for b in spec.buildings]
    items += [(t.z_m, _draw_tree, t) for t in spec.trees]
    for _, draw, item in sorted(items, key=lambda it: -it[0]):
        if draw is _draw_building:
            draw(p, item, spec)
        else:
            draw(p, item)
    add_texture(image, labels, spec)
    for array in (image, labels):
        array.flags.writeable = False
    return StaticLayer(image, labels, margin, make_vignette(height, width, spec.look.vignette))
