"""The public rendering calls: a frame and its labels at time t, the object boxes, video frames."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from runtime.errors import UserInputError
from scenes.camera_effects import add_sensor_noise, apply_camera
from scenes.geometry import Projector
from scenes.layout import scene_spec
from scenes.objects import draw_objects, frame_objects
from scenes.painter import Painter
from scenes.seeds import check_seed, check_size
from scenes.spec import SceneSpec
from scenes.static import StaticLayer, static_layer


@dataclass(frozen=True)
class ObjectBox:
    """Pixel bounds (inclusive, clipped to the image) of one moving or thin object at time t."""

    class_id: int
    x0: int
    y0: int
    x1: int
    y1: int


def _crop_offset(spec: SceneSpec, static: StaticLayer, width: int, t: float) -> int:
    return int(round(static.margin_px + spec.camera.pan(t) * width))


def render_scene(
    seed: int, height: int = 512, width: int = 512, t: float = 0.0, *, noise: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(frame_bgr (H,W,3) uint8, labels (H,W) uint8 class ids) of scene `seed` at time t (s).

    The same arguments always give identical bytes. noise=False leaves out sensor noise only.
    """
    check_seed(seed)
    check_size(height, width)
    if not math.isfinite(t):
        raise UserInputError(f"t must be a finite number of seconds, got {t!r}")
    spec, static = scene_spec(seed), static_layer(seed, height, width)
    x0 = _crop_offset(spec, static, width, t)
    frame_bgr = static.image_bgr[:, x0 : x0 + width].copy()
    labels = static.labels[:, x0 : x0 + width].copy()
    vanish_x = static.margin_px + spec.camera.center_x * width - x0
    project = Projector(spec.camera, height, width, vanish_x)
    draw_objects(Painter(frame_bgr, labels, project), spec, t)
    frame_bgr = apply_camera(frame_bgr, spec.look, static.vignette)
    if noise:
        frame_bgr = add_sensor_noise(frame_bgr, spec.look.noise_sigma, seed, t)
    return frame_bgr, labels


def object_boxes(seed: int, height: int, width: int, t: float = 0.0) -> list[ObjectBox]:
    """Pixel boxes of the cars, persons and poles visible at time t, from their 3-D bounds.

    Every pixel `render_scene` labels car, person or pole lies in a box of that class (+-1 px).
    """
    check_size(height, width)
    spec, static = scene_spec(seed), static_layer(seed, height, width)
    x0 = _crop_offset(spec, static, width, t)
    project = Projector(
        spec.camera, height, width, static.margin_px + spec.camera.center_x * width - x0
    )
    boxes = []
    for _, class_id, (_, (bx0, bx1, by0, by1, bz0, bz1)) in frame_objects(spec, t, project):
        corners = np.array([[x, y, z] for x in (bx0, bx1) for y in (by0, by1) for z in (bz0, bz1)])
        uv = project(corners)
        (u0, v0), (u1, v1) = np.floor(uv.min(axis=0)), np.ceil(uv.max(axis=0))
        if u1 < 0 or v1 < 0 or u0 >= width or v0 >= height:
            continue
        clip = (max(u0, 0), max(v0, 0), min(u1, width - 1), min(v1, height - 1))
        boxes.append(ObjectBox(class_id, *(int(c) for c in clip)))
    return boxes


def render_video_frames(
    seed: int, height: int, width: int, num_frames: int, fps: float = 25.0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame_bgr, labels) for t = i / fps, i = 0 .. num_frames-1 (arguments checked at once)."""
    check_seed(seed)
    check_size(height, width)
    if num_frames < 0 or not fps > 0:
        raise UserInputError(f"need num_frames >= 0 and fps > 0, got {num_frames} and {fps}")
    return (render_scene(seed, height, width, i / fps) for i in range(num_frames))
