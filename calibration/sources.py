"""Calibration frames: an image folder, a video (frames sampled evenly) or generated scenes.

Frames are kept as decoded (BGR uint8, any size); `model_inputs` turns them into exactly the tensors
the runtime will feed, through runtime.preprocess (never a copy of it).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.preprocess import Preprocess, preprocess, preprocess_uint8

GENERATED = "generated"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class CalibrationDataError(ValueError):
    """Calibration data that cannot be read, is empty, or holds files that are not images."""


@dataclass(frozen=True)
class CalibrationData:
    frames: tuple[np.ndarray, ...]  # BGR uint8 (H,W,3), as decoded
    kind: str  # folder | video | generated
    description: str  # what was read, for the sidecar ("video cam.mp4: 32 of 900 frames")
    sha256: str  # of the sampled frames' pixels: the data part of the calibration cache key

    @property
    def samples(self) -> int:
        return len(self.frames)


def load_calibration_data(
    source: str | os.PathLike, samples: int, height: int, width: int
) -> CalibrationData:
    """Read `samples` frames from a folder, a video or 'generated' (scenes rendered at HxW)."""
    if samples < 1:
        raise CalibrationDataError(f"--calib-samples must be >= 1, got {samples}")
    if str(source) == GENERATED:
        return _generated(samples, height, width)
    path = Path(source)
    if path.is_dir():
        return _folder(path, samples)
    if path.is_file():
        return _video(path, samples)
    raise CalibrationDataError(
        f"calibration data {path} does not exist; pass an image folder, a video file or 'generated'"
    )


def model_inputs(data: CalibrationData, pp: Preprocess, fused: bool) -> Iterator[np.ndarray]:
    """(1,3,H,W) float32 inputs, or (1,H,W,3) uint8 for graphs with fused preprocessing."""
    convert = preprocess_uint8 if fused else preprocess
    for frame in data.frames:
        yield convert(frame, pp)


def evenly_spaced(total: int, count: int) -> list[int]:
    """`count` indices spread over range(total), first and last included (all when fewer)."""
    if count >= total:
        return list(range(total))
    if count == 1:
        return [total // 2]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def _digest(frames: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for f in frames:
        h.update(str(f.shape).encode())
        h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()


def _generated(samples: int, height: int, width: int) -> CalibrationData:
    from runtime.scenes import render_scene, split_seeds

    # The "calib" seed range is disjoint from train/val/bench, so the gate's frames are unseen.
    frames = [render_scene(seed, height, width)[0] for seed in split_seeds("calib", samples)]
    desc = f"generated scenes: {samples} frames of the calib split at {height}x{width}"
    return CalibrationData(tuple(frames), GENERATED, desc, _digest(frames))


def _folder(path: Path, samples: int) -> CalibrationData:
    if not _readable(path):
        raise CalibrationDataError(f"calibration folder {path} is not readable; check permissions")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise CalibrationDataError(
            f"calibration folder {path} has no images; put {', '.join(IMAGE_SUFFIXES[:3])} files in it"
        )
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        shown = ", ".join(others[:5]) + (f" (+{len(others) - 5} more)" if len(others) > 5 else "")
        raise CalibrationDataError(
            f"calibration folder {path} holds files that are not images: {shown}; "
            f"keep only {'/'.join(s.lstrip('.') for s in IMAGE_SUFFIXES)} files there"
        )
    picked = [files[i] for i in evenly_spaced(len(files), samples)]
    frames = [_read_image(p) for p in picked]
    desc = f"image folder {path}: {len(frames)} of {len(files)} images"
    return CalibrationData(tuple(frames), "folder", desc, _digest(frames))


def _readable(folder: Path) -> bool:
    return os.access(folder, os.R_OK | os.X_OK)


def _read_image(path: Path) -> np.ndarray:
    from runtime.preprocess import as_bgr8

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise CalibrationDataError(
            f"cannot decode image {path} (corrupt or unsupported); remove or replace it"
        )
    try:
        return as_bgr8(image)
    except ValueError as err:
        raise CalibrationDataError(f"image {path}: {err}") from err


def _video(path: Path, samples: int) -> CalibrationData:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise CalibrationDataError(
                f"cannot open {path} as a video; pass an image folder, a readable video or 'generated'"
            )
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = set(evenly_spaced(total, samples)) if total > 0 else None
        frames, index = [], 0
        # Read sequentially: seeking (CAP_PROP_POS_FRAMES) lands on keyframes for many codecs.
        while wanted is None or index <= max(wanted, default=-1):
            ok, frame = cap.read()
            if not ok:
                break
            if wanted is None or index in wanted:
                frames.append(frame)
            index += 1
    finally:
        cap.release()
    if wanted is None:  # container without a frame count: sample what was decoded
        frames = [frames[i] for i in evenly_spaced(len(frames), samples)]
        total = index
    if not frames:
        raise CalibrationDataError(f"video {path} has no decodable frames")
    desc = f"video {path}: {len(frames)} of {total} frames, evenly spaced"
    return CalibrationData(tuple(frames), "video", desc, _digest(frames))
