"""Moving and thin objects (drawn per frame, far to near): cars, persons and poles."""

from __future__ import annotations

import math

import numpy as np

from scenes.geometry import (
    Z_NEAR_M,
    Projector,
    box_faces,
    disc_x,
    disc_z,
    quad_x,
    quad_y,
    quad_z,
)
from scenes.painter import Painter, shade_colour
from scenes.spec import CAR, PERSON, POLE, Building, Car, Colour, Person, Pole, SceneSpec


def _draw_car(p: Painter, car: Car, z: float, cam_height_m: float) -> None:
    w, length, x = car.width_m, car.length_m, car.x_m
    x0, x1 = x - w / 2, x + w / 2
    p.darken(quad_y(0.01, x0 - 0.08, x1 + 0.08, z - 0.12, z + length), 0.6)
    body = Building(x0, x1, z, z + length, 0.95, car.colour_bgr, (0, 0, 0), 1, 1)
    cabin_z = (z + 0.25 * length, z + 0.8 * length)
    cabin = Building(x0 + 0.12, x1 - 0.12, *cabin_z, car.height_m, car.colour_bgr, (0, 0, 0), 1, 1)
    glass = shade_colour((90, 80, 70), 0.6 + 0.002 * sum(car.colour_bgr))
    for part in (body, cabin):
        for face, quad in box_faces(part, cam_height_m):
            if part is body:  # the body rests on its wheels, 0.28 m above the ground
                quad[:, 1] = np.maximum(quad[:, 1], 0.28)
            p.fill(
                quad, shade_colour(car.colour_bgr, {"near": 0.85, "top": 1.1}.get(face, 0.7)), CAR
            )
            if part is cabin and face != "top":
                _draw_car_glass(p, part, face, glass)
    _draw_wheels(p, car, z)
    _draw_car_lights(p, car, z)


def _draw_car_glass(p: Painter, cabin: Building, face: str, glass: Colour) -> None:
    y0, y1 = 1.0, cabin.height_m - 0.07
    if face == "near":
        p.fill(quad_z(cabin.z0_m - 0.01, cabin.x0_m + 0.1, cabin.x1_m - 0.1, y0, y1), glass)
    else:
        x = cabin.x0_m - 0.01 if face == "left" else cabin.x1_m + 0.01
        p.fill(quad_x(x, y0, y1, cabin.z0_m + 0.1, cabin.z1_m - 0.1), glass)


def _draw_wheels(p: Painter, car: Car, z: float) -> None:
    tyre = (28, 28, 30)
    x0, x1 = car.x_m - car.width_m / 2, car.x_m + car.width_m / 2
    for a, b in ((x0, x0 + 0.28), (x1 - 0.28, x1)):  # tyres seen under the near face
        p.fill(quad_z(z + 0.6, a, b, 0.0, 0.3), tyre, CAR)
    side_x = x0 - 0.01 if x0 > 0 else (x1 + 0.01 if x1 < 0 else None)
    if side_x is not None:
        for wz in (z + 0.8, z + car.length_m - 0.8):
            p.fill(disc_x(side_x, 0.32, wz, 0.32), tyre, CAR)
            p.fill(disc_x(side_x, 0.32, wz, 0.15), (120, 120, 125))


def _draw_car_lights(p: Painter, car: Car, z: float) -> None:
    x0, x1 = car.x_m - car.width_m / 2, car.x_m + car.width_m / 2
    lamp = (210, 235, 245) if car.speed_mps < 0 else (30, 30, 200)  # headlights when oncoming
    zf = z - 0.01
    p.fill(quad_z(zf, x0 + 0.08, x0 + 0.38, 0.72, 0.86), lamp)
    p.fill(quad_z(zf, x1 - 0.38, x1 - 0.08, 0.72, 0.86), lamp)
    p.fill(quad_z(zf, car.x_m - 0.26, car.x_m + 0.26, 0.42, 0.54), (225, 225, 225))


def _draw_person(p: Painter, person: Person, z: float) -> None:
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
        p.fill(arm, shade_colour(person.shirt_bgr, 0.85), PERSON)
    torso = np.array(
        [
            [x - 0.2, 0.82 * h, z],
            [x + 0.2, 0.82 * h, z],
            [x + 0.16, 0.48 * h, z],
            [x - 0.16, 0.48 * h, z],
        ]
    )
    p.fill(torso, person.shirt_bgr, PERSON)
    p.fill(disc_z(x, 0.91 * h, z, 0.095, 0.12), person.skin_bgr, PERSON)
    p.fill(disc_z(x, 0.94 * h, z, 0.1, 0.075), (30, 35, 45))  # hair


def _draw_pole(p: Painter, pole: Pole) -> None:
    x, z, h = pole.x_m, pole.z_m, pole.height_m
    half = max(pole.width_m, p.project.min_size_m(z, 2.0)) / 2
    grey = (120, 122, 125)
    p.fill(quad_z(z, x - half, x + half, 0.0, h), grey, POLE)
    if pole.lamp:
        thick = max(0.12, p.project.min_size_m(z, 2.0, axis=1))
        tip = x - pole.side * 1.6
        p.fill(quad_z(z, min(x, tip), max(x, tip), h - thick, h), grey, POLE)
        p.fill(quad_z(z, tip - 0.3, tip + 0.3, h - thick - 0.15, h), (90, 95, 100), POLE)
    else:
        p.fill(quad_z(z, x - 0.35, x + 0.35, h - 0.75, h), (235, 235, 235), POLE)
        p.fill(quad_z(z - 0.01, x - 0.3, x + 0.3, h - 0.7, h - 0.05), pole.plate_bgr)


def _pole_extent_m(pole: Pole, p: Projector) -> tuple[float, float]:
    half = max(pole.width_m, p.min_size_m(pole.z_m, 2.0)) / 2
    if pole.lamp:
        tip = pole.x_m - pole.side * 1.6
        return min(pole.x_m - half, tip - 0.3), max(pole.x_m + half, tip + 0.3)
    return pole.x_m - max(half, 0.35), pole.x_m + max(half, 0.35)


def frame_objects(spec: SceneSpec, t: float, project: Projector) -> list[tuple[float, int, object]]:
    """(depth, class id, (item, 3-D bounds)) of everything drawn per frame, far first."""
    items = []
    for car in spec.cars:
        z = car.z_at(t)
        bounds = (
            car.x_m - car.width_m / 2,
            car.x_m + car.width_m / 2,
            0.0,
            car.height_m,
            max(z, Z_NEAR_M),
            z + car.length_m,
        )
        if bounds[5] > Z_NEAR_M:
            items.append((z, CAR, (car, bounds)))
    for person in spec.persons:
        z = person.z_at(t)
        x = person.x_m
        items.append((z, PERSON, (person, (x - 0.4, x + 0.4, 0.0, person.height_m, z, z))))
    for pole in spec.poles:
        lo, hi = _pole_extent_m(pole, project)
        items.append((pole.z_m, POLE, (pole, (lo, hi, 0.0, pole.height_m, pole.z_m, pole.z_m))))
    return sorted(items, key=lambda it: -it[0])


def draw_objects(p: Painter, spec: SceneSpec, t: float) -> None:
    for z, class_id, (item, _) in frame_objects(spec, t, p.project):
        if class_id == CAR:
            _draw_car(p, item, z, spec.camera.height_m)
        elif class_id == PERSON:
            _draw_person(p, item, z)
        else:
            _draw_pole(p, item)
