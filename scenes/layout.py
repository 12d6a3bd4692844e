"""Random layout: the `SceneSpec` a seed picks (camera, street, buildings, trees, poles, cars,
persons and look), drawn from `np.random.default_rng(seed)`."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from scenes.seeds import check_seed
from scenes.spec import (
    SIDEWALK,
    VEGETATION,
    Building,
    Camera,
    Car,
    Colour,
    Look,
    Person,
    Pole,
    SceneSpec,
    Street,
    Tree,
    bgr,
)


def _grey(rng, lo: float, hi: float, tint: float = 10.0) -> Colour:
    return bgr(rng.uniform(lo, hi) + rng.uniform(-tint, tint, 3))


def _pick(rng, colours: Sequence[Colour], jitter: float = 12.0) -> Colour:
    base = np.asarray(colours[int(rng.integers(len(colours)))], float)
    return bgr(base + rng.uniform(-jitter, jitter, 3))


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
            colour = bgr((1 - haze) * np.array(b.colour_bgr) + haze * np.array(look_haze))
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
        sky_top_bgr=bgr(np.array(top) + rng.uniform(-10, 10, 3)),
        sky_horizon_bgr=bgr(np.array(horizon) + rng.uniform(-10, 10, 3)),
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
    check_seed(seed)
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
