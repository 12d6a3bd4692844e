"""Deterministic generated street scenes with exact label maps (a stand-in for a labelled dataset).

A seed picks a layout (`SceneSpec`, in metres, from `np.random.default_rng(seed)`); `t` (seconds)
moves cars and persons and pans the camera. Geometry is projected with a pinhole camera whose focal
length and principal point are fractions of the image size, so any size shows the same scene.

Image and labels are drawn by the same cv2 call on the same points, in painter's order (far first),
with LINE_8 and no anti-aliasing, so every label pixel matches the image. Texture, shadows, window
panes, lane markings, lighting, vignette and sensor noise change the image only.

Modules: spec (the dataclasses), layout (what a seed picks), geometry and painter (projection and
filling), static, texture and objects (what is drawn), camera_effects, render (the calls below),
seeds (splits), video (writing), cli (`python -m scenes`).
"""

from scenes.cli import main
from scenes.layout import scene_spec
from scenes.render import ObjectBox, object_boxes, render_scene, render_video_frames
from scenes.seeds import MIN_SIZE, SPLITS, split_seeds
from scenes.spec import (
    BUILDING,
    CAR,
    PERSON,
    POLE,
    ROAD,
    SIDEWALK,
    SKY,
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
)
from scenes.video import FOURCC_BY_SUFFIX, VideoInfo, write_scene_video

__all__ = [
    "BUILDING",
    "CAR",
    "FOURCC_BY_SUFFIX",
    "MIN_SIZE",
    "PERSON",
    "POLE",
    "ROAD",
    "SIDEWALK",
    "SKY",
    "SPLITS",
    "VEGETATION",
    "Building",
    "Camera",
    "Car",
    "Colour",
    "Look",
    "ObjectBox",
    "Person",
    "Pole",
    "SceneSpec",
    "Street",
    "Tree",
    "VideoInfo",
    "main",
    "object_boxes",
    "render_scene",
    "render_video_frames",
    "scene_spec",
    "split_seeds",
    "write_scene_video",
]
