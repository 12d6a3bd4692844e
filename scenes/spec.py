"""The scene description a seed picks: class ids, colours, and the layout dataclasses.

Metres; x right, y up from the ground, z forward from the camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scenes.classes import CLASS_ID

ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, CAR, PERSON, POLE = (
    CLASS_ID[name]
    for name in ("road", "sidewalk", "building", "vegetation", "sky", "car", "person", "pole")
)


Colour = tuple[int, int, int]  # BGR


def bgr(values) -> Colour:
    return tuple(min(255, max(0, round(float(v)))) for v in values)


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
