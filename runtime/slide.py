"""Sliding-window inference, computed the way mmsegmentation scores Cityscapes (test_cfg
mode='slide'), and the padding that keep-ratio frames need in whole mode.

The frame is resized (runtime.preprocess.resize_frame), then covered by crop-sized windows
`stride` apart, the last row and column pushed back inside the image so every window is whole
where the image allows. Each window's logits (at the model's output stride) are resized
bilinearly to the crop's size and summed into a (K,H,W) map; each pixel is divided by the
number of windows covering it; the averaged logits are resized to the frame's size and
argmax'd.

Differences from mmseg, by design:
- mmseg runs the windows one by one; here all windows of a frame are ONE batched call
  (N,3,ch,cw) (the graph needs a dynamic batch dim). Same numbers, one launch.
- Where the resized image is smaller than the crop on a side, mmseg runs the smaller window as
  it is. The graph here has the crop's size, so the window is padded at the bottom/right with
  zeros after normalisation (uint8 0, i.e. black, for graphs with fused preprocessing, which
  normalise inside) and the logits are cut back to the real region after resizing to the
  crop's size. The padding is context the model sees, so labels near the pad can differ.
- cv2's INTER_LINEAR resize stands in for torch's bilinear align_corners=False: both sample at
  half-pixel centres and clamp at the border, and for 2x down cv2's switch to INTER_AREA is the
  same 2x2 mean. Upsampling agrees to ~1e-6. Downsampling by a non-integer factor (the final
  resize when the frame is smaller than the resized image) differs by up to ~4e-4: torch's CPU
  kernel computes source coordinates in float32, while cv2 stays within 1e-6 of the exact
  formula (tests/runtime/test_slide.py checks cv2 against a float64 numpy reference,
  tests/export/test_slide_reference.py against torch).

Whole mode with keep-ratio frames pads the normalised image at the bottom/right to a multiple of
SIZE_DIVISOR with zeros, as mmseg's data preprocessor does with size_divisor, and cuts the
logits back after resizing them to the padded size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from runtime.budgets import check
from runtime.errors import UserInputError
from runtime.preprocess import (
    Preprocess,
    argmax_planes,
    as_bgr8,
    normalise,
    resize_frame,
    resized_argmax,
)

INFERENCE_MODES = ("whole", "slide")
SIZE_DIVISOR = 32  # the graph's input stride: H and W of a whole-mode input are multiples of it

Window = tuple[int, int, int, int]  # (y1, y2, x1, x2) in the resized image


@dataclass(frozen=True)
class Inference:
    """How a resized frame is run: whole (one input) or slide (crop-sized windows)."""

    mode: str = "whole"
    crop: tuple[int, int] | None = None  # (h, w), slide only: the graph's input size
    stride: tuple[int, int] | None = None  # (h, w), slide only

    def __post_init__(self) -> None:
        if self.mode not in INFERENCE_MODES:
            raise UserInputError(
                f"inference mode must be one of {', '.join(INFERENCE_MODES)}, got {self.mode!r}"
            )
        if self.mode == "whole":
            if self.crop is not None or self.stride is not None:
                raise UserInputError(
                    "inference mode 'whole' takes no crop or stride (those are for 'slide'); "
                    "drop them or use mode 'slide'"
                )
            return
        crop, stride = _pair("crop", self.crop), _pair("stride", self.stride)
        for side, c, s in (("height", crop[0], stride[0]), ("width", crop[1], stride[1])):
            if s > c:
                raise UserInputError(
                    f"slide stride {stride[0]}x{stride[1]} is larger than the crop "
                    f"{crop[0]}x{crop[1]} in {side}: windows would leave pixels uncovered; "
                    "use a stride <= the crop (mmseg's Cityscapes configs use crop 1024, "
                    "stride 768)"
                )
        object.__setattr__(self, "crop", crop)
        object.__setattr__(self, "stride", stride)

    @property
    def slide(self) -> bool:
        return self.mode == "slide"

    def to_dict(self) -> dict:
        if not self.slide:
            return {"mode": "whole"}
        return {"mode": "slide", "crop": list(self.crop), "stride": list(self.stride)}

    def describe(self) -> str:
        if not self.slide:
            return "whole"
        (ch, cw), (sh, sw) = self.crop, self.stride
        return f"slide crop {ch}x{cw} stride {sh}x{sw}"


def _pair(name: str, value: object) -> tuple[int, int]:
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        example = "crop_size=(1024, 1024)" if name == "crop" else "stride=(768, 768)"
        raise UserInputError(
            f"slide inference needs {name} as (h, w), two positive whole numbers "
            f"(as mmseg's test_cfg {example}), got {value!r}"
        )
    return int(value[0]), int(value[1])


def _grids(size: int, crop: int, stride: int) -> int:
    return max(size - crop + stride - 1, 0) // stride + 1


def window_count(h: int, w: int, crop: tuple[int, int], stride: tuple[int, int]) -> int:
    """len(windows(...)), without building them (checked against a budget first)."""
    return _grids(h, crop[0], stride[0]) * _grids(w, crop[1], stride[1])


def windows(h: int, w: int, crop: tuple[int, int], stride: tuple[int, int]) -> list[Window]:
    """The (y1, y2, x1, x2) windows mmseg's slide inference visits on an h x w image, row by
    row: `stride` apart, the last of each row/column moved back to end at the border, and cut
    to the image where it is smaller than the crop."""
    (ch, cw), (sh, sw) = crop, stride
    out = []
    for hi in range(_grids(h, ch, sh)):
        for wi in range(_grids(w, cw, sw)):
            y2, x2 = min(hi * sh + ch, h), min(wi * sw + cw, w)
            out.append((max(y2 - ch, 0), y2, max(x2 - cw, 0), x2))
    return out


def check_windows(
    count: int, image_hw: tuple[int, int], frame_hw: tuple[int, int], inference: Inference
) -> int:
    """The `batch` budget on the windows of one frame (they are one inference call)."""
    return check(
        "batch",
        count,
        f"slide inference of a {frame_hw[0]}x{frame_hw[1]} frame (resized to "
        f"{image_hw[0]}x{image_hw[1]}, {inference.describe()}; a larger stride or a smaller "
        "resize scale gives fewer windows)",
    )


def check_logits(num_classes: int, image_hw: tuple[int, int], frame_hw: tuple[int, int]) -> int:
    """The `tensor_elements` budget on the (K,H,W) float32 logits one frame is merged into."""
    h, w = image_hw
    return check(
        "tensor_elements",
        num_classes * h * w,
        f"the merged logits of a {frame_hw[0]}x{frame_hw[1]} frame ({num_classes} classes at "
        f"{h}x{w} after resizing; a smaller resize scale needs less)",
    )


def cut_crops(image: np.ndarray, wins: list[Window], crop: tuple[int, int]) -> np.ndarray:
    """(1,3,H,W) float32 normalised image -> (N,3,ch,cw) float32, window i at [i]; a window
    smaller than the crop sits at the top-left, zeros below and right of it."""
    ch, cw = crop
    out = np.zeros((len(wins), image.shape[1], ch, cw), np.float32)
    for i, (y1, y2, x1, x2) in enumerate(wins):
        out[i, :, : y2 - y1, : x2 - x1] = image[0, :, y1:y2, x1:x2]
    return out


def cut_crops_nhwc(image: np.ndarray, wins: list[Window], crop: tuple[int, int]) -> np.ndarray:
    """(1,H,W,3) uint8 BGR image -> (N,ch,cw,3) uint8, for graphs with fused preprocessing; a
    window smaller than the crop is padded with 0 (black once the graph normalises it)."""
    ch, cw = crop
    out = np.zeros((len(wins), ch, cw, image.shape[3]), np.uint8)
    for i, (y1, y2, x1, x2) in enumerate(wins):
        out[i, : y2 - y1, : x2 - x1] = image[0, y1:y2, x1:x2]
    return out


def merge_logits(
    crop_logits: np.ndarray,
    wins: list[Window],
    image_hw: tuple[int, int],
    crop: tuple[int, int],
) -> np.ndarray:
    """(N,K,h,w) logits of the windows -> (K,H,W) float32 averaged logits of the image.

    Each window's class planes are resized bilinearly to the crop's size, cut to the window's
    real size (dropping what padding added) and summed at its place; each pixel is then divided
    by the number of windows covering it."""
    n, k = crop_logits.shape[:2]
    if n != len(wins):
        raise ValueError(f"{n} window logits for {len(wins)} windows")
    (h, w), (ch, cw) = image_hw, crop
    total = np.zeros((k, h, w), np.float32)
    count = np.zeros((h, w), np.float32)
    scratch = np.empty((ch, cw), np.float32)
    for i, (y1, y2, x1, x2) in enumerate(wins):
        rh, rw = y2 - y1, x2 - x1
        count[y1:y2, x1:x2] += 1.0
        for c in range(k):
            plane = np.ascontiguousarray(crop_logits[i, c], dtype=np.float32)
            if plane.shape != (ch, cw):
                plane = cv2.resize(plane, (cw, ch), dst=scratch, interpolation=cv2.INTER_LINEAR)
            total[c, y1:y2, x1:x2] += plane[:rh, :rw]
    if not count.all():  # pragma: no cover - windows() covers every pixel when stride <= crop
        raise ValueError("the windows leave pixels uncovered")
    np.divide(total, count, out=total)
    return total


def labels_from_logits(logits: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """(K,H,W) logits of the resized image -> (h,w) labels at the frame's size: each class plane
    resized bilinearly to the frame, running argmax (no (h,w,K) volume is built)."""
    return resized_argmax(logits, frame_hw)


def padded_size(h: int, w: int, divisor: int = SIZE_DIVISOR) -> tuple[int, int]:
    return -(-h // divisor) * divisor, -(-w // divisor) * divisor


def pad_nchw(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(N,C,h,w) -> (N,C,H,W) with zeros at the bottom/right (no copy when already H x W)."""
    n, c, h, w = image.shape
    if (h, w) == tuple(hw):
        return image
    out = np.zeros((n, c, hw[0], hw[1]), image.dtype)
    out[:, :, :h, :w] = image
    return out


def pad_nhwc(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(N,h,w,C) -> (N,H,W,C) with zeros at the bottom/right (no copy when already H x W)."""
    n, h, w, c = image.shape
    if (h, w) == tuple(hw):
        return image
    out = np.zeros((n, hw[0], hw[1], c), image.dtype)
    out[:, :h, :w] = image
    return out


def labels_from_padded_logits(
    logits: np.ndarray,
    padded_hw: tuple[int, int],
    image_hw: tuple[int, int],
    frame_hw: tuple[int, int],
) -> np.ndarray:
    """(K,h,w) logits of a padded whole-mode input -> (h,w) labels at the frame's size.

    Per class plane, as mmseg: resized to the padded input's size, cut to the image's region
    (the padding dropped), resized to the frame; then a running argmax."""
    (ph, pw), (ih, iw), (fh, fw) = padded_hw, image_hw, frame_hw
    up = np.empty((ph, pw), np.float32)

    def plane(c: int, dst: np.ndarray | None) -> np.ndarray:
        src = np.ascontiguousarray(logits[c], dtype=np.float32)
        if src.shape != (ph, pw):
            src = cv2.resize(src, (pw, ph), dst=up, interpolation=cv2.INTER_LINEAR)
        region = np.ascontiguousarray(src[:ih, :iw])
        if (ih, iw) != (fh, fw):
            return cv2.resize(region, (fw, fh), dst=dst, interpolation=cv2.INTER_LINEAR)
        if dst is None:
            return region.copy()  # the first plane: argmax_planes keeps it as its running max
        dst[...] = region
        return dst

    return argmax_planes(plane, logits.shape[0], (fh, fw))


def frame_batch(
    frame: np.ndarray,
    pp: Preprocess,
    inference: Inference,
    fused: bool,
    wins: list[Window] | None = None,
    padded_hw: tuple[int, int] | None = None,
) -> np.ndarray:
    """One frame -> the graph's input for slide or keep-ratio sidecars: all windows of the
    resized frame (N,3,ch,cw) float32 / (N,ch,cw,3) uint8, or the resized frame padded to a
    multiple of 32 (whole). `wins`/`padded_hw` are the frame's plan where the caller has it
    (runtime.Segmenter caches it per frame size); computed here otherwise (calibration)."""
    image = resize_frame(as_bgr8(frame), pp)[None]  # (1,H,W,3) uint8 BGR
    h, w = image.shape[1:3]
    if inference.slide:
        if wins is None:
            wins = windows(h, w, inference.crop, inference.stride)
        if fused:
            return cut_crops_nhwc(image, wins, inference.crop)
        return cut_crops(normalise(image, pp), wins, inference.crop)
    padded_hw = padded_hw or padded_size(h, w)
    if fused:
        return np.ascontiguousarray(pad_nhwc(image, padded_hw))
    return pad_nchw(normalise(image, pp), padded_hw)
