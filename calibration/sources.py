"""Calibration frames: an image folder, a glob pattern, a list file, a video or generated scenes.

Frames are kept as decoded (BGR uint8, any size); `model_inputs` turns them into exactly the tensors
the runtime will feed, through runtime.preprocess (never a copy of it).

Held-out frames (`holdout`) come from the same source but never from the items calibration used,
so the accuracy gate can compare variants on frames the INT8 ranges were not fitted to.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.video_frames import read_video_frames
from runtime.budgets import check
from runtime.errors import UserInputError
from runtime.io.files import (
    GLOB_CHARS,
    glob_files,
    kind_of,
    list_files,
    read_bytes,
    shown,
)
from runtime.io.source_types import GENERATED
from runtime.preprocess import Preprocess, preprocess, preprocess_uint8, read_image
from runtime.sampling import evenly_split, natural_key
from runtime.slide import Inference, frame_batch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
LIST_SUFFIXES = (".txt",)
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
    warnings: tuple[str, ...] = ()  # entries skipped, a frame count not believed, one line each

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
        files = _folder_files(path)
        return _from_files(files, samples, holdout, "folder", f"image folder {shown(path)}")
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        files = _listed_files(path)
        return _from_files(files, samples, holdout, "list", f"image list {shown(path)}")
    if path.is_file():
        return _video(path, samples, holdout)
    if any(c in str(source) for c in GLOB_CHARS):
        files = _glob_files(str(source))
        return _from_files(files, samples, holdout, "glob", f"images matching {shown(source)}")
    raise CalibrationDataError(
        f"calibration data {shown(path)} does not exist; pass {SOURCES_HINT}"
    )


def model_inputs(
    data: CalibrationData,
    pp: Preprocess,
    fused: bool,
    inference: Inference | None = None,
    frames: Sequence[int] | None = None,
) -> Iterator[np.ndarray]:
    """(1,3,H,W) float32 inputs, or (1,H,W,3) uint8 for graphs with fused preprocessing, of
    every frame (or of the frames numbered in `frames`). With slide inference each window of a
    frame is one input, cut as the runtime cuts it; keep-ratio frames keep their own padded
    size (runtime.slide.frame_batch, the runtime's own code)."""
    inference = inference or Inference()
    picked = data.frames if frames is None else [data.frames[i] for i in frames]
    if not inference.slide and pp.resize == "stretch":
        convert = preprocess_uint8 if fused else preprocess
        for frame in picked:
            yield convert(frame, pp)
        return
    for frame in picked:
        batch = frame_batch(frame, pp, inference, fused)
        for i in range(batch.shape[0]):
            yield batch[i : i + 1]


def _digest(frames: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for f in frames:
        h.update(str(f.shape).encode())
        h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()


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
    found: tuple[list[Path] | list[str], list[str]],
    samples: int,
    holdout: int,
    kind: str,
    what: str,
) -> CalibrationData:
    files, warnings = found
    calib, held = evenly_split(len(files), samples, holdout)
    frames = [_read_image(Path(files[i])) for i in calib]
    held_frames = tuple(_read_image(Path(files[i])) for i in held)
    desc = f"{what}: {len(frames)} of {len(files)} images" + _holdout_text(len(held), holdout)
    return CalibrationData(tuple(frames), kind, desc, _digest(frames), held_frames, tuple(warnings))


def _folder_files(path: Path) -> tuple[list[Path], list[str]]:
    if not _readable(path):
        raise CalibrationDataError(
            f"calibration folder {shown(path)} is not readable; check permissions"
        )
    where = f"calibration folder {shown(path)}"
    listing = list_files(path, where, keep=lambda name: not name.startswith("."))
    files = sorted(listing.files, key=natural_key)
    if not files:
        raise CalibrationDataError(
            f"{where} has no images; put {', '.join(IMAGE_SUFFIXES[:3])} files in it"
            + (f" ({listing.warning()})" if listing.skipped else "")
        )
    _check_images([p.name for p in files], f"{where} holds", "there")
    return files, [f"{where}: {listing.warning()}"] if listing.skipped else []


def _glob_files(pattern: str) -> tuple[list[Path], list[str]]:
    # "**" matches any depth of folders ("frames/**/*.jpg"); hidden names only match ".*" parts.
    where = f"calibration pattern {shown(pattern)}"
    listing = glob_files(pattern, where)
    files = sorted(listing.files, key=natural_key)
    if not files:
        raise CalibrationDataError(
            f"{where} matches no files; check the pattern (quote it so the shell does not "
            "expand it) or pass a folder" + (f" ({listing.warning()})" if listing.skipped else "")
        )
    _check_images([os.fspath(p) for p in files], f"{where} matches", "in the pattern")
    return files, [f"{where}: {listing.warning()}"] if listing.skipped else []


def _listed_files(path: Path) -> tuple[list[str], list[str]]:
    """Image paths listed one per line, relative to the list's folder; blank and # lines skipped.
    Entries that are not regular files (FIFOs, devices) are skipped with a warning."""
    where = f"image list {shown(path)}"
    data = read_bytes(path, "list_bytes", "image list", CalibrationDataError)
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise CalibrationDataError(
            f"cannot read {where}: it is not UTF-8 text ({err.reason} at byte {err.start}); "
            "save it as UTF-8, one path per line"
        ) from err
    check("folder_entries", len(lines), f"{where}: {len(lines):,} lines")
    files, skipped = [], []
    folder = os.fspath(path.parent)
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        # os.path and os.stat on strings: a 200,000-line list costs a second, not a minute of
        # pathlib objects; an absolute entry replaces the folder.
        file = os.path.join(folder, entry)
        mode = _entry_mode(file, entry, where, number)
        if stat.S_ISREG(mode):
            files.append(file)
        else:
            skipped.append(f"{shown(entry)} ({kind_of(mode)})")
    if not files:
        raise CalibrationDataError(f"{where} lists no images; write one path per line")
    _check_images(files, f"{where} names", "in the list")
    return files, [_skipped_line(where, skipped)] if skipped else []  # Paths made when read


def _entry_mode(file: str, entry: str, where: str, number: int) -> int:
    """The stat mode of a listed file, following links; CalibrationDataError when it is
    missing or cannot be a file name."""
    if "\0" in entry:  # os.stat would raise a bare ValueError
        raise CalibrationDataError(
            f"{where} line {number}: {shown(entry)} holds a NUL character, which no file name "
            "can; write the list as text, one path per line"
        )
    try:
        return os.stat(file).st_mode
    except OSError as err:
        raise CalibrationDataError(
            f"{where} line {number}: {shown(entry)} does not exist (looked for {shown(file)}); "
            "paths are relative to the list's folder"
        ) from err


def _skipped_line(where: str, skipped: list[str]) -> str:
    n = len(skipped)
    noun = "entry that is not a regular file" if n == 1 else "entries that are not regular files"
    more = f" (+{n - 3} more)" if n > 3 else ""
    return f"{where}: skipped {n} {noun}: {', '.join(skipped[:3])}{more}"


def _check_images(names: list[str], where: str, keep: str) -> None:
    others = [n for n in names if os.path.splitext(n)[1].lower() not in IMAGE_SUFFIXES]
    if others:
        named = ", ".join(shown(n) for n in others[:5])
        named += f" (+{len(others) - 5} more)" if len(others) > 5 else ""
        raise CalibrationDataError(
            f"{where} files that are not images: {named}; "
            f"keep only {'/'.join(s.lstrip('.') for s in IMAGE_SUFFIXES)} files {keep}"
        )


def _readable(folder: Path) -> bool:
    return os.access(folder, os.R_OK | os.X_OK)


def _read_image(path: Path) -> np.ndarray:
    return read_image(path, CalibrationDataError)


def _video(path: Path, samples: int, holdout: int) -> CalibrationData:
    found = read_video_frames(path, samples, holdout, CalibrationDataError)
    if not found.calib:
        raise CalibrationDataError(f"video {shown(path)} has no decodable frames")
    desc = f"video {shown(path)}: {len(found.calib)} of {found.total} frames, evenly spaced"
    desc += _holdout_text(len(found.holdout), holdout)
    return CalibrationData(
        tuple(found.calib), "video", desc, _digest(found.calib), tuple(found.holdout),
        found.warnings,
    )  # fmt: skip
