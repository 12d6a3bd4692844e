"""Writing a scene as a video file (atomically), with its label maps as PNGs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.atomic import atomic_path, atomic_write_bytes
from runtime.errors import RunError, UserInputError
from scenes.render import render_video_frames

FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".avi": "MJPG"}


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    num_frames: int
    fps: float
    width: int
    height: int
    fourcc: str
    labels_dir: Path | None


def _resolve_fourcc(path: Path, fourcc: str | None) -> str:
    if fourcc is None:
        if path.suffix.lower() not in FOURCC_BY_SUFFIX:
            raise UserInputError(
                f"cannot pick a codec for {path.name!r}; use one of {sorted(FOURCC_BY_SUFFIX)} "
                "or pass fourcc"
            )
        return FOURCC_BY_SUFFIX[path.suffix.lower()]
    if len(fourcc) != 4:
        raise UserInputError(f"fourcc must be 4 characters (e.g. 'mp4v', 'MJPG'), got {fourcc!r}")
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
        raise RunError(f"could not encode the label map for {path} as PNG")
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
        raise UserInputError(f"a video needs num_frames >= 1, got {num_frames}")
    if width % 2 or height % 2:
        # OpenCV 5's FFmpeg writer silently crops odd sizes (97x33 comes back as 96x32).
        raise UserInputError(
            f"video size {width}x{height} is odd; use an even width and height "
            f"(e.g. {width + width % 2}x{height + height % 2})"
        )
    _check_targets(path, label_path, num_frames, overwrite)
    if label_path is not None:
        label_path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
        if not writer.isOpened():
            raise RunError(
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
            raise RunError(f"cv2.VideoWriter wrote nothing to {path} with fourcc {codec!r}")
    return VideoInfo(path, num_frames, fps, width, height, codec, label_path)
