"""What is fuzzed: each target is a small function that calls one public reader on a file, and
the seeds it starts from, placed where the reader finds them (beside their companions)."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SIZE = 64  # calibration frames are resized to the model input, 64x64 as in the other tests


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[Path], object]  # called with the mutated file's path
    seeds: dict[str, str]  # seed name -> where it sits in the target's folder (one is mutated)
    extra: dict[str, str] = field(default_factory=dict)  # companions that are never mutated


def read_checkpoint(path: Path) -> None:
    from scaseg.checkpoint_read import read_checkpoint

    read_checkpoint(path)


def load_model(path: Path) -> None:
    from scaseg.checkpoint import load_model

    load_model(path)


def read_sidecar(path: Path) -> None:
    from runtime.meta import read_meta

    read_meta(str(path).removesuffix(".json"))


def check_onnx(path: Path) -> None:
    from runtime.onnx_guard import check_external_data

    folder = path.parent.resolve()
    for location in check_external_data(path):
        # The guard's promise, beyond not crashing: what it lets through stays in the folder.
        target = (folder / location).resolve()
        if folder not in target.parents:
            raise AssertionError(f"guard let {location!r} through: it resolves to {target}")


def open_onnx(path: Path) -> None:
    import numpy as np

    from runtime.backends import BackendOptions, open_backend

    options = BackendOptions(provider="cpu", intra_op_threads=1)
    with open_backend(path.parent / "model.onnx", "onnxruntime", options) as backend:
        shape = backend.meta.input.shape
        if all(type(d) is int and d > 0 for d in shape) and math.prod(shape) <= (1 << 20):
            dtype = np.uint8 if backend.meta.input.dtype == "uint8" else np.float32
            backend.infer(np.zeros(shape, dtype))


def read_image(path: Path) -> None:
    from runtime.preprocess import read_image

    read_image(path)


def read_mask(path: Path) -> None:
    from runtime.masks import read_mask

    read_mask(path)


def read_val_pairs(path: Path) -> None:
    from runtime.val_data import find_val_set

    root = path.parents[1]
    val = find_val_set(root / "images", masks=root / "masks")
    for i in range(len(val)):
        val.read(i)


def read_calibration(path: Path) -> None:
    from calibration.sources import load_calibration_data

    source = path if path.suffix in (".txt", ".avi") else path.parent
    load_calibration_data(source, samples=2, height=SIZE, width=SIZE, holdout=1)


def read_classes(path: Path) -> None:
    from runtime.classes import resolve_class_spec

    resolve_class_spec(str(path))


def read_frames(path: Path) -> None:
    from runtime.io.sources import open_source

    spec = str(path.parent) if path.parent.name == "frames" else str(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "ended after N frames": expected of a broken file
        source = open_source(spec)
        try:
            for _ in itertools.islice(source.frames(), 30):
                pass
        finally:
            source.close()


CHECKPOINTS = {
    "mmengine_mini": "mini.pth",
    "mmengine_tiny": "tiny.pth",
    "legacy_mini": "legacy.pth",
    "mmseg0x_mini": "mmseg0x.pth",
    "tiny_safetensors": "tiny.safetensors",
}
IMAGES = {
    "image_png": "a.png",
    "image_jpg": "a.jpg",
    "image_bmp": "a.bmp",
    "image_png16": "b.png",
    "image_tiff": "a.tiff",
    "image_webp": "a.webp",
}
MASKS = {"mask_png": "m.png", "mask_palette_png": "p.png", "mask16_png": "w.png"}
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("checkpoint_read", read_checkpoint, CHECKPOINTS),
        Target("checkpoint_load", load_model, {"tiny_safetensors": "tiny.safetensors", "mmengine_tiny": "tiny.pth"}),
        Target("sidecar", read_sidecar, {"sidecar_json": "model.onnx.json"}, {"tiny_onnx": "model.onnx"}),
        Target("onnx_guard", check_onnx, {"tiny_onnx": "model.onnx", "external_onnx": "external.onnx"},
               {"weights_bin": "weights.bin"}),
        Target("onnx_open", open_onnx, {"tiny_onnx": "model.onnx", "sidecar_json": "model.onnx.json"}),
        Target("image", read_image, IMAGES),
        Target("mask", read_mask, MASKS),
        Target("val_pair", read_val_pairs, {"image_jpg": "images/a.jpg", "mask_png": "masks/a.png",
                                            "mask_palette_png": "masks/b.png"},
               {"image_png": "images/b.png"}),
        Target("calibration", read_calibration, {"image_png": "frames/a.png", "image_jpg": "frames/b.jpg",
                                                 "calib_list_txt": "list.txt", "video_avi": "clip.avi"}),
        Target("classes", read_classes, {"classes_json": "classes.json", "classes_dict_json": "palette.json",
                                         "classes_txt": "classes.txt"}),
        Target("video", read_frames, {"video_avi": "clip.avi", "video_mp4": "clip.mp4",
                                      "image_png": "frames/a.png", "image_jpg": "frames/b.jpg"}),
    )
}  # fmt: skip


def target_named(name: str) -> Target:
    """A target of TARGETS, or one of the harness's own self-test targets."""
    if name in TARGETS:
        return TARGETS[name]
    from tests.fuzz.selftest_targets import SELFTEST_TARGETS

    return SELFTEST_TARGETS[name]
