"""Calibration and held-out frames picked evenly from a video, without trusting its header.

A video's frame count comes from its header, and the header can lie: a 3.6 kB .mkv can claim
60 million frames. A count larger than the file's size in bytes cannot be true (every stored
frame takes at least a byte): such a video, or one without a count, is sampled from the frames
that actually decode, in bounded memory (`_read_thinned`). A believable count is checked against
the `video_frames` budget before reading, since the frames are read in order up to the last one
picked (seeking with CAP_PROP_POS_FRAMES lands on keyframes for many codecs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from runtime.budgets import budget, check
from runtime.errors import UserInputError
from runtime.io.files import opencv_path
from runtime.sampling import evenly_split
from runtime.text import shown


class VideoFrames(NamedTuple):
    total: int  # frames in the video: the header's believable count, or the frames decoded
    calib: list[np.ndarray]  # BGR uint8, evenly spaced
    holdout: list[np.ndarray]  # BGR uint8, evenly over the frames not in `calib`
    warnings: tuple[str, ...]  # a header count that was not believed


def read_video_frames(
    path: Path, samples: int, holdout: int, error: type[UserInputError]
) -> VideoFrames:
    """`samples` frames evenly spaced and up to `holdout` others; `error` for a video that
    does not open (or whose name OpenCV cannot take)."""
    what = f"calibration video {shown(path)}"
    cap = cv2.VideoCapture(opencv_path(path, "calibration video", error))
    try:
        if not cap.isOpened():
            raise error(
                f"cannot open {shown(path)} as a video; pass an image folder, a readable video "
                "or 'generated'"
            )
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        check("image_pixels", w * h, f"{what}: {w}x{h} frames")  # before decoding them
        claimed, notes = _claimed_frames(cap, path, what)
        if not claimed:  # no count, or one that cannot be true: sample what decodes
            return VideoFrames(*_read_thinned(cap, samples, holdout, what), notes)
        check("video_frames", claimed, f"{what} (by its header)")
        return VideoFrames(claimed, *_read_planned(cap, claimed, samples, holdout), notes)
    finally:
        cap.release()


def _claimed_frames(cap: cv2.VideoCapture, path: Path, what: str) -> tuple[int, tuple[str, ...]]:
    """The header's frame count, or 0 when there is none or it cannot be true."""
    claimed = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    if not (math.isfinite(claimed) and claimed >= 1):
        return 0, ()
    size = path.stat().st_size
    if claimed > size:
        return 0, (
            f"{what}: its header claims {int(claimed):,} frames, more than its {size:,} bytes "
            "can hold; sampled the frames that decode instead",
        )
    return int(claimed), ()


def _read_planned(cap: cv2.VideoCapture, total: int, samples: int, holdout: int):
    """The frames picked from a video of `total` frames, read in order. A file that ends early
    (truncated) gives the picked frames that decoded."""
    calib, held = evenly_split(total, samples, holdout)
    wanted = set(calib) | set(held)
    frames = {}
    for index in range(max(wanted) + 1):
        if not cap.grab():
            break
        if index in wanted:
            ok, frame = cap.retrieve()
            if ok:
                frames[index] = frame
    return [frames[i] for i in calib if i in frames], [frames[i] for i in held if i in frames]


def _read_thinned(cap: cv2.VideoCapture, samples: int, holdout: int, what: str):
    """(frames decoded, calibration frames, held-out frames) of a video of unknown length.

    Keeps every `stride`-th frame and doubles the stride whenever more than twice the frames
    needed are kept, so the frames kept stay spread over the whole video in bounded memory;
    a video short enough to keep whole is sampled exactly as one of known length. Reading stops
    with a BudgetError past the `video_frames` budget."""
    keep_at_most, limit = max(2 * (samples + holdout), 2), budget("video_frames").limit
    kept: dict[int, np.ndarray] = {}
    stride, index = 1, 0
    while cap.grab():
        if index >= limit:
            check("video_frames", index + 1, f"{what} (length unknown, still decoding)")
        if index % stride == 0:
            ok, frame = cap.retrieve()
            if ok:
                kept[index] = frame
            if len(kept) > keep_at_most:
                stride *= 2
                kept = {i: f for i, f in kept.items() if i % stride == 0}
        index += 1
    order = sorted(kept)
    calib, held = evenly_split(len(order), samples, holdout)
    return index, [kept[order[i]] for i in calib], [kept[order[i]] for i in held]
