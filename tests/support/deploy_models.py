"""Tiny real ONNX models (onnx.helper, no torch) with sidecars, as the deployment tests use them.

A stride-4 convolution stands in for SCASeg and follows the artifact contract: plain ("input"
float32 NCHW -> "logits" (N,K,H/4,W/4)) or fused (uint8 NHWC BGR "image" in; Resize + ArgMax +
Cast "labels" (N,H,W) out), static or with dynamic batch/size and a (min, opt, max) profile.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.tiny_onnx import build_tiny_model

SIZE = 64
NUM_CLASSES = 5
# A sidecar's engine provenance, as scaseg-export records it for a Jetson Orin build.
ORIN_ENGINE = {
    "tensorrt_version": "10.3.0",
    "gpu_name": "Orin",
    "compute_capability": "8.7",
    "jetpack": "6.1",
    "dla_core": None,
}


def build_model(
    path: Path,
    *,
    fused: bool = False,
    dynamic: bool = False,
    batch_range: tuple[int, int, int] = (1, 2, 4),
    labels_dtype: str = "int32",
    precision: str = "fp32",
    engine: dict | None = None,
    num_classes: int = NUM_CLASSES,
) -> Path:
    """A tiny model (or, for an .engine path, a sidecar with placeholder bytes): fused means
    both uint8 input and label output, as `scaseg-export --fuse-preprocess --fuse-argmax`."""
    return build_tiny_model(
        path,
        fused_preprocess=fused,
        fused_argmax=fused,
        dynamic=dynamic,
        batches=batch_range,
        labels_dtype=labels_dtype,
        num_classes=num_classes,
        precision=precision,
        engine=engine,
    )


def build_slide_model(
    path: Path, *, fused: bool = False, batch_range: tuple[int, int, int] = (1, 4, 16)
) -> Path:
    """The dynamic tiny model with a slide sidecar: keep-ratio (200, 100), 64x64 windows 48
    apart (a 90x150 frame -> 100x167 -> 2 x 4 windows), as scaseg-export --inference slide."""
    from dataclasses import replace

    from runtime.meta import read_meta, write_meta
    from runtime.slide import Inference

    build_tiny_model(path, fused_preprocess=fused, dynamic=True, batches=batch_range)
    meta = read_meta(path)
    pp = replace(meta.preprocess, resize="keep_ratio", scale=(200, 100))
    write_meta(path, replace(meta, preprocess=pp, inference=Inference("slide", (64, 64), (48, 48))))
    return path


def build_keep_ratio_model(
    path: Path, *, fused: bool = False, batch_range: tuple[int, int, int] = (1, 2, 4)
) -> Path:
    """The dynamic tiny model with a keep-ratio whole sidecar (scale (128, 64)): each frame is
    resized keeping its aspect ratio and padded to a multiple of 32."""
    from dataclasses import replace

    from runtime.meta import read_meta, write_meta

    build_tiny_model(
        path, fused_preprocess=fused, fused_argmax=fused, dynamic=True, batches=batch_range
    )
    meta = read_meta(path)
    pp = replace(meta.preprocess, resize="keep_ratio", scale=(128, 64))
    write_meta(path, replace(meta, preprocess=pp))
    return path
