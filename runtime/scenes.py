"""Deterministic generated street scenes with exact label maps (a stand-in for a labelled dataset).

A seed picks a layout (`SceneSpec`, in metres, from `np.random.default_rng(seed)`); `t` (seconds)
moves cars and persons and pans the camera. Geometry is projected with a pinhole camera whose focal
length and principal point are fractions of the image size, so any size shows the same scene.

Image and labels are drawn by the same cv2 call on the same points, in painter's order (far first),
with LINE_8 and no anti-aliasing, so every label pixel matches the image. Texture, shadows, window
panes, lane markings, lighting, vignette and sensor noise change the image only.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.atomic import atomic_path, atomic_write_bytes
from runtime.classes import CLASS_ID

ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, CAR, PERSON, POLE = (
    CLASS_ID[name]
    for name in ("road", "sidewalk", "building", "vegetation", "sky", "car", "person", "pole")
)
SPLITS: dict[str, range] = {
    "train": range(0, 100_000),
    "val": range(1_000_000, 1_100_000),
    "bench": range(2_000_000, 2_100_000),
    "calib": range(3_000_000, 3_100_000),
}
MIN_SIZE = 32
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".avi": "MJPG"}

Colour = tuple[int, int, int]  # BGR

_Z_NEAR_M = 0.25  # polygons are clipped to this depth so nothing behind the camera is projected
_SHIFT = 4  # sub-pixel bits for cv2 drawing: slow motion moves smoothly, not in 1 px steps
_FAR_M = 2000.0  # "infinite" depth for ground polygons


# ---------------------------------------------------------------------------------------------
# Scene description (metres; x right, y up from the ground, z forward from the camera)


@dataclass(frozen=True)
class Camera:
    horizon: float  # image row of the horizon, as a fraction of the height
    focal: float  # pixels per metre at 1 m depth, as a fraction of the width (x) / height (y)
    height_m: float
    center_x: float  # image column of the vanishing point, as a fraction of the width
    pan_amplitude: float  # horizontal pan, as a fraction of the width
    pan_period_s: float
    pan_phase: float

    def pan(self, t: float) -> float:
        """Horizontal camera offset at time t, as a fraction of the width (smooth in t)."""
        return self.pan_amplitude * math.sin(2 * math.pi * t / self.pan_period_s + self.pan_phase)


@dataclass(frozen=True)
class Street:
    lane_width_m: float
    lane_count: int
    ego_lane: int  # lane the camera is above, counted from the left
    sidewalk_m: tuple[float, float]  # (left, right) widths; 0 means no sidewalk on that side
    ground_class: int  # what lies beyond the sidewalks: VEGETATION (grass) or SIDEWALK (paving)
    road_bgr: Colour
    sidewalk_bgr: Colour
    ground_bgr: Colour
    marking_bgr: Colour
    tile_m: float

    def edge_m(self, side: int) -> float:
        """x of the road edge on side -1 (left) or +1 (right)."""
        left = -(self.ego_lane + 0.5) * self.lane_width_m
        return left if side < 0 else left + self.lane_count * self.lane_width_m

    def outer_m(self, side: int) -> float:
        """x of the outer edge of the sidewalk (the road edge where there is none)."""
        return self.edge_m(side) + side * self.sidewalk_m[side > 0]

    def lane_x_m(self, lane: int) -> float:
        return (lane - self.ego_lane) * self.lane_width_m


@dataclass(frozen=True)
class Building:
    """An axis-aligned box; also used for far skyline blocks."""

    x0_m: float
    x1_m: float
    z0_m: float
    z1_m: float
    height_m: float
    colour_bgr: Colour
    window_bgr: Colour
    floor_m: float
    bay_m: float


@dataclass(frozen=True)
class Tree:
    x_m: float
    z_m: float
    trunk_m: float
    canopy_m: float
    colour_bgr: Colour


@dataclass(frozen=True)
class Pole:
    x_m: float
    z_m: float
    height_m: float
    width_m: float
    lamp: bool  # street lamp with an arm over the road, else a sign post
    plate_bgr: Colour
    side: int  # sidewalk side (-1 left, +1 right): the lamp arm points the other way


@dataclass(frozen=True)
class Car:
    x_m: float
    z0_m: float  # depth of the near face at t=0
    speed_mps: float  # along z; 0 = parked or keeping distance (then it wobbles)
    wobble_m: float
    z_min_m: float  # moving cars wrap around in [z_min, z_max), always off-screen at z_min
    z_max_m: float
    length_m: float
    width_m: float
    height_m: float
    colour_bgr: Colour

    def z_at(self, t: float) -> float:
        if self.speed_mps == 0.0:
            return self.z0_m + self.wobble_m * math.sin(0.7 * t + self.z0_m)
        span = self.z_max_m - self.z_min_m
        return self.z_min_m + (self.z0_m - self.z_min_m + self.speed_mps * t) % span


@dataclass(frozen=True)
class Person:
    x_m: float
    z0_m: float
    speed_mps: float
    z_min_m: float
    z_max_m: float
    height_m: float
    shirt_bgr: Colour
    trousers_bgr: Colour
    skin_bgr: Colour

    def z_at(self, t: float) -> float:
        span = self.z_max_m - self.z_min_m
        return self.z_min_m + (self.z0_m - self.z_min_m + self.speed_mps * t) % span


@dataclass(frozen=True)
class Look:
    sky_top_bgr: Colour
    sky_horizon_bgr: Colour
    cloud_amount: float  # 0..1
    gain: float
    contrast: float
    tint_bgr: tuple[float, float, float]  # per-channel gain (colour temperature)
    vignette: float  # 0 = none, 0.4 = corners 40 % darker
    noise_sigma: float  # Gaussian sensor noise, in 0..255 units
    sun_side: int  # which facades (x normal sign) are lit


@dataclass(frozen=True)
class SceneSpec:
    seed: int
    camera: Camera
    street: Street
    buildings: tuple[Building, ...]
    trees: tuple[Tree, ...]
    poles: tuple[Pole, ...]
    cars: tuple[Car, ...]
    persons: tuple[Person, ...]
    look: Look


@dataclass(frozen=True)
class ObjectBox:
    """Pixel bounds (inclusive, clipped to the image) of one moving or thin object at time t."""

    class_id: int
    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    num_frames: int
    fps: float
    width: int
    height: int
    fourcc: str
    labels_dir: Path | None


# ---------------------------------------------------------------------------------------------
# Random layout


def _bgr(values) -> Colour:
    return tuple(min(255, max(0, round(float(v)))) for v in values)


def _grey(rng, lo: float, hi: float, tint: float = 10.0) -> Colour:
    return _bgr(rng.uniform(lo, hi) + rng.uniform(-tint, tint, 3))


def _pick(rng, colours: Sequence[Colour], jitter: float = 12.0) -> Colour:
    base = np.asarray(colours[int(rng.integers(len(colours)))], float)
    return _bgr(base + rng.uniform(-jitter, jitter, 3))


# fmt: off
_CAR_BGR = [(235, 235, 235), (170, 170, 170), (120, 120, 125), (70, 70, 70), (30, 30, 32),
            (40, 40, 170), (140, 70, 30), (90, 40, 20), (60, 110, 60), (150, 180, 200),
            (40, 190, 230)]
_CLOTHES_BGR = [(30, 30, 30), (60, 60, 60), (150, 150, 150), (230, 230, 230), (130, 60, 20),
                (40, 40, 160), (50, 120, 50), (60, 140, 200), (120, 40, 110), (90, 110, 140)]
_SKIN_BGR = [(150, 180, 225), (110, 140, 190), (70, 95, 140), (50, 65, 95)]
_FACADE_BGR = [(150, 150, 150), (110, 110, 115), (185, 185, 180), (150, 175, 200), (70, 90, 150),
               (215, 220, 220), (120, 135, 150), (90, 95, 100)]
# fmt: on
_PLATE_BGR = [(160, 80, 20), (40, 40, 190), (235, 235, 235), (60, 130, 40), (40, 200, 230)]
_SKIES = [  # (top, horizon) BGR: clear, pale, overcast, dusk
    ((205, 145, 85), (235, 215, 195)),
    ((220, 180, 140), (240, 230, 220)),
    ((170, 165, 160), (205, 205, 200)),
    ((150, 110, 100), (150, 190, 235)),
]


def _random_camera(rng) -> Camera:
    return Camera(
        horizon=rng.uniform(0.36, 0.5),
        focal=rng.uniform(0.75, 1.05),
        height_m=rng.uniform(1.3, 2.8),
        center_x=rng.uniform(0.44, 0.56),
        pan_amplitude=rng.uniform(0.008, 0.03),
        pan_period_s=rng.uniform(6.0, 14.0),
        pan_phase=rng.uniform(0, 2 * math.pi),
    )


def _random_street(rng) -> Street:
    lanes = int(rng.integers(2, 5))
    widths = [rng.uniform(2.0, 5.0) if rng.random() < 0.8 else 0.0 for _ in range(2)]
    if max(widths) == 0.0:
        widths[int(rng.integers(2))] = rng.uniform(2.0, 5.0)
    grass = rng.random() < 0.6
    paving = [(150, 150, 150), (120, 125, 125), (150, 165, 185), (110, 120, 160), (175, 175, 170)]
    return Street(
        lane_width_m=rng.uniform(3.0, 3.7),
        lane_count=lanes,
        ego_lane=int(rng.integers(lanes)),
        sidewalk_m=(widths[0], widths[1]),
        ground_class=VEGETATION if grass else SIDEWALK,
        road_bgr=_grey(rng, 70, 125, tint=6),
        sidewalk_bgr=_pick(rng, paving, 15),
        ground_bgr=_pick(rng, [(45, 110, 75), (60, 125, 100), (40, 90, 85)], 15)
        if grass
        else _grey(rng, 100, 160),
        marking_bgr=_grey(rng, 200, 240, tint=4),
        tile_m=rng.uniform(0.8, 2.0),
    )


def _random_building(rng, side: int, x_face: float, z0: float, length: float) -> Building:
    depth = rng.uniform(8.0, 15.0)
    x0, x1 = sorted((x_face, x_face + side * depth))
    return Building(
        x0_m=x0,
        x1_m=x1,
        z0_m=z0,
        z1_m=z0 + length,
        height_m=rng.uniform(5.0, 32.0),
        colour_bgr=_pick(rng, _FACADE_BGR, 18),
        window_bgr=_pick(rng, [(70, 60, 50), (110, 95, 80), (45, 45, 45), (150, 140, 120)], 10),
        floor_m=rng.uniform(2.8, 3.6),
        bay_m=rng.uniform(2.0, 3.5),
    )


def _random_tree(rng, x: float, z: float, far: bool = False) -> Tree:
    scale = rng.uniform(2.0, 3.0) if far else 1.0
    return Tree(
        x_m=x,
        z_m=z,
        trunk_m=rng.uniform(1.5, 3.0) * scale,
        canopy_m=rng.uniform(1.3, 3.0) * scale,
        colour_bgr=_pick(rng, [(40, 105, 60), (50, 120, 90), (35, 80, 55), (60, 130, 110)], 12),
    )


def _random_roadside(rng, street: Street, side: int) -> tuple[list[Building], list[Tree]]:
    """Buildings and tree rows along one side, from near the camera to far down the street."""
    buildings, trees = [], []
    outer = street.outer_m(side)
    z = rng.uniform(1.0, 4.0)
    while z < 110.0:
        kind = rng.random()
        length = rng.uniform(8.0, 30.0)
        if kind < 0.55:
            x_face = outer + side * rng.uniform(0.0, 2.0)
            buildings.append(_random_building(rng, side, x_face, z, length))
        elif kind < 0.85:
            # Trees start a few metres out: a canopy right at the camera would fill the frame.
            first = max(z + rng.uniform(0, 3), 6.0)
            for tz in np.arange(first, z + length, rng.uniform(5.0, 9.0)):
                x = outer + side * rng.uniform(0.3, 1.8)
                trees.append(_random_tree(rng, x, float(tz)))
        z += length + rng.uniform(0.0, 8.0)
    return buildings, trees


def _random_skyline(rng, look_haze: Colour) -> tuple[list[Building], list[Tree]]:
    """Far blocks and tree clumps that fill the horizon; colours are hazed toward the sky."""
    buildings, trees = [], []
    x = -130.0
    while x < 130.0:
        width = rng.uniform(8.0, 30.0)
        z = rng.uniform(80.0, 150.0)
        if rng.random() < 0.75:
            b = _random_building(rng, 1, x, z, 10.0)
            haze = rng.uniform(0.25, 0.55)
            colour = _bgr((1 - haze) * np.array(b.colour_bgr) + haze * np.array(look_haze))
            height = rng.uniform(8.0, 60.0)
            buildings.append(
                Building(x, x + width, z, z + 10.0, height, colour, b.window_bgr, 3.2, 3.0)
            )
        else:
            trees.append(_random_tree(rng, x + width / 2, z, far=True))
        x += width + rng.uniform(-2.0, 4.0)
    return buildings, trees


def _random_poles(rng, street: Street) -> list[Pole]:
    poles = []
    for side in (-1, 1):
        if street.sidewalk_m[side > 0] == 0.0:
            continue
        z = rng.uniform(6.0, 20.0)
        while z < 80.0:
            lamp = bool(rng.random() < 0.5)
            poles.append(
                Pole(
                    x_m=street.edge_m(side) + side * rng.uniform(0.4, 0.8),
                    z_m=z,
                    height_m=rng.uniform(6.0, 9.0) if lamp else rng.uniform(2.5, 3.5),
                    width_m=rng.uniform(0.1, 0.2),
                    lamp=lamp,
                    plate_bgr=_pick(rng, _PLATE_BGR, 10),
                    side=side,
                )
            )
            z += rng.uniform(12.0, 30.0)
    return poles


def _exit_depth_m(camera: Camera, inner_x_m: float) -> float:
    """Depth below which something whose inner edge is at |x| = inner_x_m is off-screen sideways."""
    half_view = max(camera.center_x, 1.0 - camera.center_x) + camera.pan_amplitude + 0.02
    return camera.focal * inner_x_m / half_view


def _random_car(rng, x: float, speed: float, camera: Camera, slot: tuple[float, float]) -> Car:
    """A car in lane x; z0 is drawn in the fraction `slot` of its depth range."""
    length, width = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.95)
    z_min = _exit_depth_m(camera, abs(x) - width / 2) - length - 0.5
    z_max = 150.0
    if speed == 0.0:  # keeps its distance ahead of the camera
        z_min, z_max = 8.0, 25.0
    z0 = z_min + rng.uniform(*slot) * (z_max - z_min)
    wobble = rng.uniform(0.5, 3.0) if speed == 0.0 else 0.0
    return Car(
        x,
        z0,
        speed,
        wobble,
        z_min,
        z_max,
        length,
        width,
        rng.uniform(1.4, 1.6),
        _pick(rng, _CAR_BGR, 10),
    )


def _random_cars(rng, street: Street, camera: Camera) -> list[Car]:
    cars = []
    for lane in range(street.lane_count):
        x = street.lane_x_m(lane)
        if lane == street.ego_lane:
            if rng.random() < 0.6:
                cars.append(_random_car(rng, x, 0.0, camera, (0.0, 1.0)))
            continue
        oncoming = lane < street.ego_lane and rng.random() < 0.8
        speed = rng.uniform(3.0, 11.0) * (-1.0 if oncoming else 1.0)
        count = int(rng.integers(0, 4))
        for k in range(count):  # evenly spread so cars in a lane never overlap
            slot = ((k + 0.1) / count, (k + 0.6) / count)
            cars.append(_random_car(rng, x, speed, camera, slot))
    if not cars:
        cars.append(_random_car(rng, street.lane_x_m(street.ego_lane), 0.0, camera, (0, 1)))
    return cars


def _random_persons(rng, street: Street, camera: Camera) -> list[Person]:
    persons = []
    sides = [s for s in (-1, 1) if street.sidewalk_m[s > 0] > 0.0]
    for side in sides:
        count = int(rng.integers(0, 5)) if persons or side != sides[-1] else int(rng.integers(1, 5))
        for _ in range(count):
            inner, outer = street.edge_m(side), street.outer_m(side)
            x = rng.uniform(min(inner, outer) + 0.5, max(inner, outer) - 0.4)
            z_min = _exit_depth_m(camera, abs(x) - 0.4) - 0.1
            persons.append(
                Person(
                    x,
                    rng.uniform(z_min, 40.0),
                    rng.uniform(0.7, 1.6) * rng.choice([-1, 1]),
                    z_min,
                    70.0,
                    rng.uniform(1.55, 1.9),
                    _pick(rng, _CLOTHES_BGR),
                    _pick(rng, _CLOTHES_BGR),
                    _pick(rng, _SKIN_BGR, 8),
                )
            )
    return persons


def _random_look(rng) -> Look:
    top, horizon = _SKIES[int(rng.integers(len(_SKIES)))]
    warm = rng.uniform(-1.0, 1.0)
    return Look(
        sky_top_bgr=_bgr(np.array(top) + rng.uniform(-10, 10, 3)),
        sky_horizon_bgr=_bgr(np.array(horizon) + rng.uniform(-10, 10, 3)),
        cloud_amount=rng.uniform(0.0, 0.8),
        gain=rng.uniform(0.75, 1.2),
        contrast=rng.uniform(0.8, 1.15),
        tint_bgr=(1.0 - 0.08 * warm, 1.0, 1.0 + 0.08 * warm),
        vignette=rng.uniform(0.0, 0.35),
        noise_sigma=rng.uniform(1.5, 6.0),
        sun_side=int(rng.choice([-1, 1])),
    )


@functools.lru_cache(maxsize=64)
def scene_spec(seed: int) -> SceneSpec:
    """The layout a seed picks (exposed so tests and tools can reason about the geometry)."""
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    camera, street, look = _random_camera(rng), _random_street(rng), _random_look(rng)
    buildings, trees = _random_skyline(rng, look.sky_horizon_bgr)
    for side in (-1, 1):
        side_buildings, side_trees = _random_roadside(rng, street, side)
        buildings += side_buildings
        trees += side_trees
    poles = _random_poles(rng, street)
    cars = _random_cars(rng, street, camera)
    persons = _random_persons(rng, street, camera)
    return SceneSpec(
        seed,
        camera,
        street,
        tuple(buildings),
        tuple(trees),
        tuple(poles),
        tuple(cars),
        tuple(persons),
        look,
    )


# ---------------------------------------------------------------------------------------------
# Projection and drawing


@dataclass(frozen=True)
class _Projector:
    camera: Camera
    height: int
    width: int
    vanish_x_px: float  # column of the vanishing point in the array being drawn

    def __call__(self, xyz: np.ndarray) -> np.ndarray:
        """(...,3) metres with z >= _Z_NEAR_M -> (...,2) pixel coordinates (u, v)."""
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


def _clip_near(poly: np.ndarray) -> np.ndarray:
    """Clip a (N,3) polygon to z >= _Z_NEAR_M (Sutherland-Hodgman against one plane)."""
    if poly[:, 2].min() >= _Z_NEAR_M:
        return poly
    out = []
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        a_in, b_in = a[2] >= _Z_NEAR_M, b[2] >= _Z_NEAR_M
        if a_in:
            out.append(a)
        if a_in != b_in:
            out.append(a + (b - a) * (_Z_NEAR_M - a[2]) / (b[2] - a[2]))
    return np.array(out).reshape(-1, 3)


class _Painter:
    """Fills 3-D polygons on the image and, when given a class id, on the label map too."""

    def __init__(self, image_bgr: np.ndarray, labels: np.ndarray, project: _Projector) -> None:
        self.image_bgr, self.labels, self.project = image_bgr, labels, project

    def _fixed(self, uv: np.ndarray) -> np.ndarray:
        fixed = np.round(uv * (1 << _SHIFT))
        if np.abs(fixed).max() > 2**28:  # cv2 takes int32 points; this is far outside any image
            fixed = np.clip(fixed, -(2**28), 2**28)
        return fixed.astype(np.int32)

    def fill(self, poly_xyz, colour_bgr: Colour, class_id: int | None = None) -> None:
        poly = _clip_near(np.asarray(poly_xyz, np.float64))
        if len(poly) >= 3:
            self._draw([self._fixed(self.project(poly))], colour_bgr, class_id)

    def fill_many(self, polys_xyz: np.ndarray, colour_bgr: Colour, class_id=None) -> None:
        """(N,K,3) polygons that do not overlap each other (fillPoly uses even-odd filling)."""
        polys = np.asarray(polys_xyz, np.float64)
        if polys.size == 0:
            return
        polys = polys[polys[..., 2].min(axis=1) >= _Z_NEAR_M]  # skip, don't clip: all tiny
        if len(polys):
            self._draw(list(self._fixed(self.project(polys))), colour_bgr, class_id)

    def _draw(self, polys: list[np.ndarray], colour_bgr: Colour, class_id: int | None) -> None:
        cv2.fillPoly(self.image_bgr, polys, colour_bgr, cv2.LINE_8, _SHIFT)
        if class_id is not None:
            cv2.fillPoly(self.labels, polys, int(class_id), cv2.LINE_8, _SHIFT)

    def darken(self, poly_xyz, factor: float) -> None:
        """Multiply the image under a polygon by factor (shadows); labels are unchanged."""
        poly = _clip_near(np.asarray(poly_xyz, np.float64))
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


def _shade(colour_bgr: Colour, factor: float) -> Colour:
    return _bgr(np.asarray(colour_bgr, float) * factor)


def _quad_x(x, y0, y1, z0, z1) -> np.ndarray:  # a wall in the plane x = const
    return np.array([[x, y0, z0], [x, y0, z1], [x, y1, z1], [x, y1, z0]], float)


def _quad_z(z, x0, x1, y0, y1) -> np.ndarray:  # a wall facing the camera
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], float)


def _quad_y(y, x0, x1, z0, z1) -> np.ndarray:  # flat on the ground (or a roof)
    return np.array([[x0, y, z0], [x1, y, z0], [x1, y, z1], [x0, y, z1]], float)


def _disc_z(x, y, z, rx, ry, n: int = 16) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([x + rx * np.cos(a), y + ry * np.sin(a), np.full(n, z)], axis=-1)


def _disc_x(x, y, z, r, n: int = 12) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.full(n, x), y + r * np.sin(a), z + r * np.cos(a)], axis=-1)


def _grid(lo: float, hi: float, step: float, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of evenly spaced panes (windows, dashes) that fit inside [lo, hi]."""
    starts = np.arange(lo + step * (1 - fill) / 2, hi - step * fill + 1e-9, step)
    return starts, starts + step * fill


# ---------------------------------------------------------------------------------------------
# Static layer: sky, ground, street, buildings, trees (cached per seed and size)


def _draw_sky(image_bgr: np.ndarray, labels: np.ndarray, look: Look, camera: Camera) -> None:
    rows = np.arange(image_bgr.shape[0], dtype=np.float32)[:, None]
    frac = np.clip(rows / max(camera.horizon * image_bgr.shape[0], 1.0), 0.0, 1.0) ** 0.8
    top, horizon = np.array(look.sky_top_bgr, np.float32), np.array(look.sky_horizon_bgr)
    column = ((1 - frac) * top + frac * horizon).astype(np.uint8)[:, None, :]  # (H,1,3)
    image_bgr[:] = cv2.resize(column, image_bgr.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    labels[:] = SKY


def _draw_street(p: _Painter, street: Street) -> None:
    left, right = street.edge_m(-1), street.edge_m(1)
    p.fill(_quad_y(0, -5000, 5000, 0.0, _FAR_M), street.ground_bgr, street.ground_class)
    p.fill(_quad_y(0, left, right, 0.0, _FAR_M), street.road_bgr, ROAD)
    for side in (-1, 1):
        inner, outer = street.edge_m(side), street.outer_m(side)
        if inner == outer:
            continue
        p.fill(_quad_y(0, inner, outer, 0.0, _FAR_M), street.sidewalk_bgr, SIDEWALK)
        curb = _shade(street.sidewalk_bgr, 1.2)
        p.fill(_quad_y(0, inner, inner + side * 0.2, 0.0, _FAR_M), curb)
        _draw_tiles(p, street, inner + side * 0.2, outer)
    _draw_markings(p, street)


def _draw_tiles(p: _Painter, street: Street, x_a: float, x_b: float) -> None:
    """Joint lines between paving tiles (image only); they fade out into the distance."""
    lo, hi = min(x_a, x_b), max(x_a, x_b)
    joint = _shade(street.sidewalk_bgr, 0.8)
    zs = np.arange(1.0, 40.0, street.tile_m)
    across = [_quad_y(0, lo, hi, z, z + 0.04 * z**0.5) for z in zs]
    xs = np.arange(lo + street.tile_m, hi, street.tile_m)
    along = [_quad_y(0, x, x + 0.03, 1.0, 40.0) for x in xs]
    p.fill_many(np.array(across + along).reshape(-1, 4, 3), joint)


def _draw_markings(p: _Painter, street: Street) -> None:
    """Dashed lane lines and solid edge lines, painted on the road (still labelled road)."""
    dashes = []
    z0, z1 = _grid(0.5, 160.0, 9.0, 0.35)
    for lane in range(1, street.lane_count):
        x = street.edge_m(-1) + lane * street.lane_width_m
        dashes += [_quad_y(0, x - 0.07, x + 0.07, a, b) for a, b in zip(z0, z1, strict=True)]
    for side in (-1, 1):
        x = street.edge_m(side) - side * 0.3
        dashes.append(_quad_y(0, x - 0.06, x + 0.06, 0.5, _FAR_M))
    p.fill_many(np.array(dashes), street.marking_bgr)


def _box_faces(b: Building, cam_height_m: float) -> list[tuple[str, np.ndarray]]:
    """The faces of a box seen from the camera at x=0: near face, inner side, maybe the roof."""
    faces = [("near", _quad_z(b.z0_m, b.x0_m, b.x1_m, 0.0, b.height_m))]
    if b.x0_m > 0:
        faces.append(("left", _quad_x(b.x0_m, 0.0, b.height_m, b.z0_m, b.z1_m)))
    elif b.x1_m < 0:
        faces.append(("right", _quad_x(b.x1_m, 0.0, b.height_m, b.z0_m, b.z1_m)))
    if cam_height_m > b.height_m:
        faces.append(("top", _quad_y(b.height_m, b.x0_m, b.x1_m, b.z0_m, b.z1_m)))
    return faces


def _face_windows(b: Building, face: str) -> np.ndarray:
    """(N,4,3) window panes on one face of a building."""
    y0, y1 = _grid(1.0, b.height_m - 0.5, b.floor_m, 0.5)
    if face == "near":
        a0, a1 = _grid(b.x0_m, b.x1_m, b.bay_m, 0.55)
    else:
        a0, a1 = _grid(b.z0_m, b.z1_m, b.bay_m, 0.55)
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


def _draw_building(p: _Painter, b: Building, spec: SceneSpec) -> None:
    for face, quad in _box_faces(b, spec.camera.height_m):
        lit = (face == "left") == (spec.look.sun_side < 0)
        factor = {"near": 0.85, "top": 1.05}.get(face, 1.0 if lit else 0.72)
        p.fill(quad, _shade(b.colour_bgr, factor), BUILDING)
        if face == "top":
            continue
        panes = _face_windows(b, face)
        for k in range(3):  # three pane brightnesses: dark, reflecting, lit
            colour = _shade(b.window_bgr, (0.8, 1.25, 1.6)[k] * factor)
            p.fill_many(panes[_pane_kind(len(panes)) == k], colour)


def _draw_tree(p: _Painter, tree: Tree) -> None:
    trunk = max(0.12 * tree.trunk_m, p.project.min_size_m(tree.z_m, 2.0))
    p.fill(
        _quad_z(tree.z_m, tree.x_m - trunk, tree.x_m + trunk, 0.0, tree.trunk_m + 0.3),
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
        disc = _disc_z(tree.x_m + dx * r, top + dy * r, tree.z_m, r * scale, r * scale * 0.9)
        p.fill(disc, _shade(tree.colour_bgr, shade), VEGETATION)


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


def _add_texture(image_bgr: np.ndarray, labels: np.ndarray, spec: SceneSpec) -> None:
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


@dataclass(frozen=True)
class _Static:
    image_bgr: np.ndarray  # (H, W + 2*margin, 3): wider than the frame so the camera can pan
    labels: np.ndarray
    margin_px: int
    vignette: np.ndarray  # (H,W,3) uint8 gain, 255 = unchanged


@functools.lru_cache(maxsize=4)
def _static_layer(seed: int, height: int, width: int) -> _Static:
    spec = scene_spec(seed)
    margin = math.ceil(spec.camera.pan_amplitude * width) + 1
    image = np.empty((height, width + 2 * margin, 3), np.uint8)
    labels = np.empty((height, width + 2 * margin), np.uint8)
    _draw_sky(image, labels, spec.look, spec.camera)
    vanish_x = margin + spec.camera.center_x * width
    p = _Painter(image, labels, _Projector(spec.camera, height, width, vanish_x))
    _draw_street(p, spec.street)
    items = [(b.z0_m, _draw_building, b) for b in spec.buildings]
    items += [(t.z_m, _draw_tree, t) for t in spec.trees]
    for _, draw, item in sorted(items, key=lambda it: -it[0]):
        if draw is _draw_building:
            draw(p, item, spec)
        else:
            draw(p, item)
    _add_texture(image, labels, spec)
    for array in (image, labels):
        array.flags.writeable = False
    return _Static(image, labels, margin, _vignette(height, width, spec.look.vignette))


def _vignette(height: int, width: int, strength: float) -> np.ndarray:
    """(H,W,3) uint8 gain, 255 in the centre, 255 * (1 - strength) in the corners."""
    dx2 = (np.arange(width, dtype=np.float32) / width - 0.5) ** 2
    dy2 = (np.arange(height, dtype=np.float32) / height - 0.5) ** 2
    gain = (255.0 * (1.0 - strength * 2.0 * (dy2[:, None] + dx2[None, :]))).astype(np.uint8)
    out = cv2.merge([gain] * 3)
    out.flags.writeable = False
    return out


# ---------------------------------------------------------------------------------------------
# Moving and thin objects (drawn per frame, far to near)


def _draw_car(p: _Painter, car: Car, z: float, cam_height_m: float) -> None:
    w, length, x = car.width_m, car.length_m, car.x_m
    x0, x1 = x - w / 2, x + w / 2
    p.darken(_quad_y(0.01, x0 - 0.08, x1 + 0.08, z - 0.12, z + length), 0.6)
    body = Building(x0, x1, z, z + length, 0.95, car.colour_bgr, (0, 0, 0), 1, 1)
    cabin_z = (z + 0.25 * length, z + 0.8 * length)
    cabin = Building(x0 + 0.12, x1 - 0.12, *cabin_z, car.height_m, car.colour_bgr, (0, 0, 0), 1, 1)
    glass = _shade((90, 80, 70), 0.6 + 0.002 * sum(car.colour_bgr))
    for part in (body, cabin):
        for face, quad in _box_faces(part, cam_height_m):
            if part is body:  # the body rests on its wheels, 0.28 m above the ground
                quad[:, 1] = np.maximum(quad[:, 1], 0.28)
            p.fill(quad, _shade(car.colour_bgr, {"near": 0.85, "top": 1.1}.get(face, 0.7)), CAR)
            if part is cabin and face != "top":
                _draw_car_glass(p, part, face, glass)
    _draw_wheels(p, car, z)
    _draw_car_lights(p, car, z)


def _draw_car_glass(p: _Painter, cabin: Building, face: str, glass: Colour) -> None:
    y0, y1 = 1.0, cabin.height_m - 0.07
    if face == "near":
        p.fill(_quad_z(cabin.z0_m - 0.01, cabin.x0_m + 0.1, cabin.x1_m - 0.1, y0, y1), glass)
    else:
        x = cabin.x0_m - 0.01 if face == "left" else cabin.x1_m + 0.01
        p.fill(_quad_x(x, y0, y1, cabin.z0_m + 0.1, cabin.z1_m - 0.1), glass)


def _draw_wheels(p: _Painter, car: Car, z: float) -> None:
    tyre = (28, 28, 30)
    x0, x1 = car.x_m - car.width_m / 2, car.x_m + car.width_m / 2
    for a, b in ((x0, x0 + 0.28), (x1 - 0.28, x1)):  # tyres seen under the near face
        p.fill(_quad_z(z + 0.6, a, b, 0.0, 0.3), tyre, CAR)
    side_x = x0 - 0.01 if x0 > 0 else (x1 + 0.01 if x1 < 0 else None)
    if side_x is not None:
        for wz in (z + 0.8, z + car.length_m - 0.8):
            p.fill(_disc_x(side_x, 0.32, wz, 0.32), tyre, CAR)
            p.fill(_disc_x(side_x, 0.32, wz, 0.15), (120, 120, 125))


def _draw_car_lights(p: _Painter, car: Car, z: float) -> None:
    x0, x1 = car.x_m - car.width_m / 2, car.x_m + car.width_m / 2
    lamp = (210, 235, 245) if car.speed_mps < 0 else (30, 30, 200)  # headlights when oncoming
    zf = z - 0.01
    p.fill(_quad_z(zf, x0 + 0.08, x0 + 0.38, 0.72, 0.86), lamp)
    p.fill(_quad_z(zf, x1 - 0.38, x1 - 0.08, 0.72, 0.86), lamp)
    p.fill(_quad_z(zf, car.x_m - 0.26, car.x_m + 0.26, 0.42, 0.54), (225, 225, 225))


def _draw_person(p: _Painter, person: Person, z: float) -> None:
    """A flat figure facing the camera; legs and arms swing with the distance walked."""
    h, x = person.height_m, person.x_m
    swing = math.sin(2 * math.pi * abs(person.z0_m - z) / 1.4)
    for k in (-1, 1):
        foot = x + k * 0.08 + k * 0.12 * swing
        leg = np.array(
            [
                [x + k * 0.1 - 0.065, 0.5 * h, z],
                [x + k * 0.1 + 0.065, 0.5 * h, z],
                [foot + 0.065, 0.0, z],
                [foot - 0.065, 0.0, z],
            ]
        )
        p.fill(leg, person.trousers_bgr, PERSON)
        hand = x + k * 0.27 - k * 0.07 * swing
        arm = np.array(
            [
                [x + k * 0.19, 0.8 * h, z],
                [x + k * 0.25, 0.8 * h, z],
                [hand + 0.035, 0.47 * h, z],
                [hand - 0.035, 0.47 * h, z],
            ]
        )
        p.fill(arm, _shade(person.shirt_bgr, 0.85), PERSON)
    torso = np.array(
        [
            [x - 0.2, 0.82 * h, z],
            [x + 0.2, 0.82 * h, z],
            [x + 0.16, 0.48 * h, z],
            [x - 0.16, 0.48 * h, z],
        ]
    )
    p.fill(torso, person.shirt_bgr, PERSON)
    p.fill(_disc_z(x, 0.91 * h, z, 0.095, 0.12), person.skin_bgr, PERSON)
    p.fill(_disc_z(x, 0.94 * h, z, 0.1, 0.075), (30, 35, 45))  # hair


def _draw_pole(p: _Painter, pole: Pole) -> None:
    x, z, h = pole.x_m, pole.z_m, pole.height_m
    half = max(pole.width_m, p.project.min_size_m(z, 2.0)) / 2
    grey = (120, 122, 125)
    p.fill(_quad_z(z, x - half, x + half, 0.0, h), grey, POLE)
    if pole.lamp:
        thick = max(0.12, p.project.min_size_m(z, 2.0, axis=1))
        tip = x - pole.side * 1.6
        p.fill(_quad_z(z, min(x, tip), max(x, tip), h - thick, h), grey, POLE)
        p.fill(_quad_z(z, tip - 0.3, tip + 0.3, h - thick - 0.15, h), (90, 95, 100), POLE)
    else:
        p.fill(_quad_z(z, x - 0.35, x + 0.35, h - 0.75, h), (235, 235, 235), POLE)
        p.fill(_quad_z(z - 0.01, x - 0.3, x + 0.3, h - 0.7, h - 0.05), pole.plate_bgr)


def _pole_extent_m(pole: Pole, p: _Projector) -> tuple[float, float]:
    half = max(pole.width_m, p.min_size_m(pole.z_m, 2.0)) / 2
    if pole.lamp:
        tip = pole.x_m - pole.side * 1.6
        return min(pole.x_m - half, tip - 0.3), max(pole.x_m + half, tip + 0.3)
    return pole.x_m - max(half, 0.35), pole.x_m + max(half, 0.35)


def _objects(spec: SceneSpec, t: float, project: _Projector) -> list[tuple[float, int, object]]:
    """(depth, class id, (item, 3-D bounds)) of everything drawn per frame, far first."""
    items = []
    for car in spec.cars:
        z = car.z_at(t)
        bounds = (
            car.x_m - car.width_m / 2,
            car.x_m + car.width_m / 2,
            0.0,
            car.height_m,
            max(z, _Z_NEAR_M),
            z + car.length_m,
        )
        if bounds[5] > _Z_NEAR_M:
            items.append((z, CAR, (car, bounds)))
    for person in spec.persons:
        z = person.z_at(t)
        x = person.x_m
        items.append((z, PERSON, (person, (x - 0.4, x + 0.4, 0.0, person.height_m, z, z))))
    for pole in spec.poles:
        lo, hi = _pole_extent_m(pole, project)
        items.append((pole.z_m, POLE, (pole, (lo, hi, 0.0, pole.height_m, pole.z_m, pole.z_m))))
    return sorted(items, key=lambda it: -it[0])


def _draw_objects(p: _Painter, spec: SceneSpec, t: float) -> None:
    for z, class_id, (item, _) in _objects(spec, t, p.project):
        if class_id == CAR:
            _draw_car(p, item, z, spec.camera.height_m)
        elif class_id == PERSON:
            _draw_person(p, item, z)
        else:
            _draw_pole(p, item)


# ---------------------------------------------------------------------------------------------
# Camera effects and public API


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def _check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or value < MIN_SIZE:
            raise ValueError(f"{name} must be an int >= {MIN_SIZE}, got {value!r}")


def _apply_camera(frame_bgr: np.ndarray, look: Look, vignette: np.ndarray) -> np.ndarray:
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


def _add_sensor_noise(frame_bgr: np.ndarray, sigma: float, seed: int, t: float) -> np.ndarray:
    # A random crop of one shared noise field per frame: Gaussian, seeded, and ~10x cheaper
    # than drawing fresh normals for every pixel.
    h, w = frame_bgr.shape[:2]
    dy, dx = np.random.default_rng((seed, round(t * 1e6) % 2**63)).integers(0, 64, 2)
    noise = _noise_field(h, w)[dy : dy + h, dx : dx + w]
    k = sigma / 16.0
    return cv2.addWeighted(frame_bgr, 1.0, noise, k, -128.0 * k)


def _crop_offset(spec: SceneSpec, static: _Static, width: int, t: float) -> int:
    return int(round(static.margin_px + spec.camera.pan(t) * width))


def render_scene(
    seed: int, height: int = 512, width: int = 512, t: float = 0.0, *, noise: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(frame_bgr (H,W,3) uint8, labels (H,W) uint8 class ids) of scene `seed` at time t (s).

    The same arguments always give identical bytes. noise=False leaves out sensor noise only.
    """
    _check_seed(seed)
    _check_size(height, width)
    if not math.isfinite(t):
        raise ValueError(f"t must be a finite number of seconds, got {t!r}")
    spec, static = scene_spec(seed), _static_layer(seed, height, width)
    x0 = _crop_offset(spec, static, width, t)
    frame_bgr = static.image_bgr[:, x0 : x0 + width].copy()
    labels = static.labels[:, x0 : x0 + width].copy()
    vanish_x = static.margin_px + spec.camera.center_x * width - x0
    project = _Projector(spec.camera, height, width, vanish_x)
    _draw_objects(_Painter(frame_bgr, labels, project), spec, t)
    frame_bgr = _apply_camera(frame_bgr, spec.look, static.vignette)
    if noise:
        frame_bgr = _add_sensor_noise(frame_bgr, spec.look.noise_sigma, seed, t)
    return frame_bgr, labels


def object_boxes(seed: int, height: int, width: int, t: float = 0.0) -> list[ObjectBox]:
    """Pixel boxes of the cars, persons and poles visible at time t, from their 3-D bounds.

    Every pixel `render_scene` labels car, person or pole lies in a box of that class (+-1 px).
    """
    _check_size(height, width)
    spec, static = scene_spec(seed), _static_layer(seed, height, width)
    x0 = _crop_offset(spec, static, width, t)
    project = _Projector(
        spec.camera, height, width, static.margin_px + spec.camera.center_x * width - x0
    )
    boxes = []
    for _, class_id, (_, (bx0, bx1, by0, by1, bz0, bz1)) in _objects(spec, t, project):
        corners = np.array([[x, y, z] for x in (bx0, bx1) for y in (by0, by1) for z in (bz0, bz1)])
        uv = project(corners)
        (u0, v0), (u1, v1) = np.floor(uv.min(axis=0)), np.ceil(uv.max(axis=0))
        if u1 < 0 or v1 < 0 or u0 >= width or v0 >= height:
            continue
        clip = (max(u0, 0), max(v0, 0), min(u1, width - 1), min(v1, height - 1))
        boxes.append(ObjectBox(class_id, *(int(c) for c in clip)))
    return boxes


def split_seeds(split: str, count: int, start: int = 0) -> list[int]:
    """`count` seeds of a split, from its `start`-th seed; splits never share a seed."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {sorted(SPLITS)}")
    seeds = SPLITS[split]
    if count < 0 or start < 0 or start + count > len(seeds):
        raise ValueError(
            f"split {split!r} has {len(seeds)} seeds; start={start} count={count} does not fit "
            f"(need 0 <= start and start + count <= {len(seeds)})"
        )
    return list(seeds[start : start + count])


def render_video_frames(
    seed: int, height: int, width: int, num_frames: int, fps: float = 25.0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame_bgr, labels) for t = i / fps, i = 0 .. num_frames-1 (arguments checked at once)."""
    _check_seed(seed)
    _check_size(height, width)
    if num_frames < 0 or not fps > 0:
        raise ValueError(f"need num_frames >= 0 and fps > 0, got {num_frames} and {fps}")
    return (render_scene(seed, height, width, i / fps) for i in range(num_frames))


def _resolve_fourcc(path: Path, fourcc: str | None) -> str:
    if fourcc is None:
        if path.suffix.lower() not in FOURCC_BY_SUFFIX:
            raise ValueError(
                f"cannot pick a codec for {path.name!r}; use one of {sorted(FOURCC_BY_SUFFIX)} "
                "or pass fourcc"
            )
        return FOURCC_BY_SUFFIX[path.suffix.lower()]
    if len(fourcc) != 4:
        raise ValueError(f"fourcc must be 4 characters (e.g. 'mp4v', 'MJPG'), got {fourcc!r}")
    return fourcc


def _check_targets(path: Path, labels_dir: Path | None, num_frames: int, overwrite: bool) -> None:
    existing = [path] if path.exists() else []
    if labels_dir is not None:
        existing += [labels_dir / f"{i:06d}.png" for i in range(num_frames)]
        existing = [p for p in existing if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]} already exists; pass overwrite=True (--force) to replace it"
        )


def _write_label_png(path: Path, labels: np.ndarray) -> None:
    ok, png = cv2.imencode(".png", labels)
    if not ok:
        raise RuntimeError(f"could not encode the label map for {path} as PNG")
    atomic_write_bytes(path, png.tobytes(), overwrite=True)


def write_scene_video(
    path: str | os.PathLike,
    seed: int,
    height: int,
    width: int,
    num_frames: int,
    fps: float = 25.0,
    labels_dir: str | os.PathLike | None = None,
    fourcc: str | None = None,
    overwrite: bool = False,
) -> VideoInfo:
    """Write scene `seed` as a video file (atomically) and optionally its label maps as PNGs.

    fourcc None picks mp4v for .mp4 and MJPG for .avi. Labels go to labels_dir/{i:06d}.png
    (single channel, uint8 class ids).
    """
    path = Path(path)
    label_path = Path(labels_dir) if labels_dir is not None else None
    codec = _resolve_fourcc(path, fourcc)
    frames = render_video_frames(seed, height, width, num_frames, fps)
    if num_frames < 1:
        raise ValueError(f"a video needs num_frames >= 1, got {num_frames}")
    if width % 2 or height % 2:
        # OpenCV 5's FFmpeg writer silently crops odd sizes (97x33 comes back as 96x32).
        raise ValueError(
            f"video size {width}x{height} is odd; use an even width and height "
            f"(e.g. {width + width % 2}x{height + height % 2})"
        )
    _check_targets(path, label_path, num_frames, overwrite)
    if label_path is not None:
        label_path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError(
                f"cv2.VideoWriter could not open {path} with fourcc {codec!r}; "
                "try an .avi path with fourcc 'MJPG', which every OpenCV build can write"
            )
        try:
            for i, (frame_bgr, labels) in enumerate(frames):
                writer.write(frame_bgr)
                if label_path is not None:
                    _write_label_png(label_path / f"{i:06d}.png", labels)
        finally:
            writer.release()
        if tmp.stat().st_size == 0:
            raise RuntimeError(f"cv2.VideoWriter wrote nothing to {path} with fourcc {codec!r}")
    return VideoInfo(path, num_frames, fps, width, height, codec, label_path)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size must look like 640x360, got {text!r}") from err
    return width, height


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a generated street-scene video.")
    parser.add_argument("out", type=Path, help="video path (.mp4 or .avi)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=_parse_size, default=(640, 360), help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--labels", type=Path, default=None, help="folder for label PNGs")
    parser.add_argument("--force", action="store_true", help="replace an existing video")
    args = parser.parse_args(argv)
    width, height = args.size
    try:
        info = write_scene_video(
            args.out,
            args.seed,
            height,
            width,
            args.frames,
            args.fps,
            args.labels,
            overwrite=args.force,
        )
    except (ValueError, OSError, RuntimeError) as err:
        parser.exit(1, f"error: {err}\n")
    print(f"wrote {info.num_frames} frames {info.width}x{info.height} to {info.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
