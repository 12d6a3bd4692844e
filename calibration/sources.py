"""Calibration frames: an image folder, a glob pattern, a list file, a video or generated scenes.

Frames are kept as decoded (BGR uint8, any size); `model_inputs` turns them into exactly the tensors
the runtime will feed, through runtime.preprocess (never a copy of it).

Held-out frames (`holdout`) come from the same source but never from the items calibration used,
so the accuracy gate can compare variants on frames the INT8 ranges were not fitted to.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.errors import UserInputError
from runtime.io.source_types import GENERATED
from runtime.preprocess import Preprocess, preprocess, preprocess_uint8, read_image
from runtime.sampling import evenly_spaced, natural_key

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
LIST_SUFFIXES = (".txt",)
GLOB_CHARS = "*?["
SOURCES_HINT = "an image folder, a glob pattern ('frames/*.jpg'), a video file, a .txt list of images or 'generated'"


class CalibrationDataError(UserInputError):
    """Calibration data that cannot be read, is empty, or holds files that are not images."""


@dataclass(frozen=True)
class CalibrationData:
    frames: tuple[np.ndarray, ...]  # BGR uint8 (H,W,3), as decoded
    kind: str  # folder | glob | list | video | generated
    description: str  # what was read, for the sidecar ("video cam.mp4: 32 of 900 frames")
    sha256: (
        str  # of the calibration frames' pixels only: the data part of the calibration cache key
    )
    holdout_frames: tuple[np.ndarray, ...] = ()  # BGR uint8, never among `frames`' items

    @property
    def samples(self) -> int:
        return len(self.frames)


def load_calibration_data(
    source: str | os.PathLike, samples: int, height: int, width: int, holdout: int = 0
) -> CalibrationData:
    """Read `samples` frames (and up to `holdout` other ones) from a source (see the module doc).

    Items are picked evenly spaced; held-out frames are picked evenly from the items left over,
    fewer when too few are left (the description says so). Generated scenes render at HxW.
    """
    if samples < 1:
        raise CalibrationDataError(f"--calib-samples must be >= 1, got {samples}")
    if holdout < 0:
        raise CalibrationDataError(f"held-out frame count must be >= 0, got {holdout}")
    if str(source) == GENERATED:
        return _generated(samples, holdout, height, width)
    path = Path(source)
    if path.is_dir():
        return _from_files(_folder_files(path), samples, holdout, "folder", f"image folder {path}")
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        return _from_files(_listed_files(path), samples, holdout, "list", f"image list {path}")
    if path.is_file():
        return _video(path, samples, holdout)
    if any(c in str(source) for c in GLOB_CHARS):
        files = _glob_files(str(source))
        return _from_files(files, samples, holdout, "glob", f"images matching {source}")
    raise CalibrationDataError(f"calibration data {path} does not exist; pass {SOURCES_HINT}")


def model_inputs(data: CalibrationData, pp: Preprocess, fused: bool) -> Iterator[np.ndarray]:
    """(1,3,H,W) float32 inputs, or (1,H,W,3) uint8 for graphs with fused preprocessing."""
    convert = preprocess_uint8 if fused else preprocess
    for frame in data.frames:
        yield convert(frame, pp)


def _digest(frames: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for f in frames:
        h.update(str(f.shape).encode())
        h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()


def _split(total: int, samples: int, holdout: int) -> tuple[list[int], list[int]]:
    """Calibration indices evenly over range(total); held-out ones evenly over the rest."""
    calib = evenly_spaced(total, samples)
    used = set(calib)
    rest = [i for i in range(total) if i not in used]
    return calib, [rest[i] for i in evenly_spaced(len(rest), holdout)]


def _holdout_text(got: int, wanted: int) -> str:
    if wanted == 0:
        return ""
    if got == wanted:
        return f"; {got} held-out frames"
    return f"; only {got} of {wanted} held-out frames (no more items left after calibration)"


def _generated(samples: int, holdout: int, height: int, width: int) -> CalibrationData:
    from scenes import render_scene, split_seeds

    # The "calib" seed range is disjoint from train/val/bench, so the gate's frames are unseen;
    # held-out scenes are the seeds after the calibration ones.
    seeds = split_seeds("calib", samples + holdout)
    frames = [render_scene(seed, height, width)[0] for seed in seeds]
    desc = f"generated scenes: {samples} frames of the calib split at {height}x{width}"
    desc += _holdout_text(holdout, holdout)
    calib = frames[:samples]
    return CalibrationData(tuple(calib), GENERATED, desc, _digest(calib), tuple(frames[samples:]))


def _from_files(
    files: list[Path], samples: int, holdout: int, kind: str, what: str
) -> CalibrationData:
    calib, held = _split(len(files), samples, holdout)
    frames = [_read_image(files[i]) for i in calib]
    held_frames = tuple(_read_image(files[i]) for i in held)
    desc = f"{what}: {len(frames)} of {len(files)} images" + _holdout_text(len(held), holdout)
    return CalibrationData(tuple(frames), kind, desc, _digest(frames), held_frames)


def _folder_files(path: Path) -> list[Path]:
    if not _readable(path):
        raise CalibrationDataError(f"calibration folder {path} is not readable; check permissions")
    files = sorted(
        (p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")), key=natural_key
    )
    if not files:
        raise CalibrationDataError(
            f"calibration folder {path} has no images; put {', '.join(IMAGE_SUFFIXES[:3])} files in it"
        )
    _check_images([p.name for p in files], f"calibration folder {path} holds", "there")
    return files


def _glob_files(pattern: str) -> list[Path]:
    # recursive=True: "**" matches any depth of folders ("frames/**/*.jpg").
    files = sorted(
        (Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file()), key=natural_key
    )
    files = [p for p in files if not p.name.startswith(".")]
    if not files:
        raise CalibrationDataError(
            f"calibration pattern {pattern} matches no files; check the pattern (quote it so the "
            "shell does not expand it) or pass a folder"
        )
    _check_images(
        [str(p) for p in files], f"calibration pattern {pattern} matches", "in the pattern"
    )
    return files


def _listed_files(path: Path) -> list[Path]:
    """Image paths listed one per line, relative to the list's folder; blank and # lines skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise CalibrationDataError(f"cannot read image list {path}: {err}") from err
    files = []
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        file = path.parent / entry  # an absolute entry replaces the folder
        if not file.is_file():
            raise CalibrationDataError(
                f"image list {path} line {number}: {entry} does not exist (looked for {file}); "
                "paths are relative to the list's folder"
            )
        files.append(file)
    if not files:
        raise CalibrationDataError(f"image list {path} lists no images; write one path per line")
    _check_images([str(p) for p in files], f"image list {path} names", "in the list")
    return files


def _check_images(names: list[str], where: str, keep: str) -> None:
    others = [n for n in names if Path(n).suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        shown = ", ".join(others[:5]) + (f" (+{len(others) - 5} more)" if len(others) > 5 else "")
        raise CalibrationDataError(
            f"{where} files that are not images: {shown}; "
            f"keep only {'/'.join(s.lstrip('.') for s in IMAGE_SUFFIXES)} files {keep}"
        )


def _readable(folder: Path) -> bool:
    return os.access(folder, os.R_OK | os.X_OK)


def _read_image(path: Path) -> np.ndarray:
    return read_image(path, CalibrationDataError)


def _video(path: Path, samples: int, holdout: int) -> CalibrationData:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise CalibrationDataError(
                f"cannot open {path} as a video; pass an image folder, a readable video or 'generated'"
            )
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        calib, held = _split(total, samples, holdout) if total > 0 else ([], [])
        wanted = set(calib) | set(held) if total > 0 else None
        frames, index = {}, 0
        # Read sequentially: seeking (CAP_PROP_POS_FRAMES) lands on keyframes for many codecs.
        while wanted is None or index <= max(wanted, default=-1):
            ok, frame = cap.read()
            if not ok:
                break
            if wanted is None or index in wanted:
                frames[index] = frame
            index += 1
    finally:
        cap.release()
    if wanted is None:  # container without a frame count: sample what was decoded
        total = index
        calib, held = _split(total, samples, holdout)
    # A frame count can overstate what decodes (truncated file): keep the frames that did.
    calib_frames = [frames[i] for i in calib if i in frames]
    held_frames = tuple(frames[i] for i in held if i in frames)
    if not calib_frames:
        raise CalibrationDataError(f"video {path} has no decodable frames")
    desc = f"video {path}: {len(calib_frames)} of {total} frames, evenly spaced"
    desc += _holdout_text(len(held_frames), holdout)
    return CalibrationData(tuple(calib_frames), "video", desc, _digest(calib_frames), held_frames)
