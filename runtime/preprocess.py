"""The one definition of the tensor the model sees, and of turning its output into labels.

Training, calibration, export checks and the runtime all call these functions; nothing else in the
project resizes or normalises frames for the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from runtime.errors import UserInputError
from runtime.io.image_file import ImageFileError, read_image_file
from runtime.text import shown

# ImageNet statistics on the 0..255 scale, in RGB order (as mmsegmentation's SegNeXt configs).
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)
COLOR_ORDERS = ("rgb", "bgr")
# stretch: the whole frame to (height, width). keep_ratio: mmseg's keep-ratio Resize with the
# limits `scale`, so frames keep their aspect ratio (and their size varies with the frame's).
RESIZE_MODES = ("stretch", "keep_ratio")


@dataclass(frozen=True)
class Preprocess:
    """How a BGR uint8 frame becomes the model's input."""

    height: int
    width: int
    color: str = "rgb"  # channel order the model expects
    mean: tuple[float, float, float] = IMAGENET_MEAN_RGB  # in `color` order, 0..255 scale
    std: tuple[float, float, float] = IMAGENET_STD_RGB
    resize: str = "stretch"  # whole frame resized to (height, width), bilinear
    # keep_ratio only: the limits as mmseg's config writes them, e.g. (2048, 1024): the longer side
    # at most max(scale), the shorter at most min(scale). height/width then stay the graph's input
    # size (the crop size for slide inference).
    scale: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise UserInputError(f"input size must be positive, got {self.height}x{self.width}")
        if self.color not in COLOR_ORDERS:
            raise UserInputError(f"color must be one of {COLOR_ORDERS}, got {self.color!r}")
        if self.resize not in RESIZE_MODES:
            raise UserInputError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise UserInputError(
                f"mean and std need 3 values with std > 0, got {self.mean}, {self.std}"
            )
        self._check_scale()

    def _check_scale(self) -> None:
        scale = self.scale
        if self.resize == "stretch":
            if scale is not None:
                raise UserInputError(
                    f"scale {scale} is only used with resize='keep_ratio' (stretch resizes to "
                    f"{self.height}x{self.width}); drop scale or use resize='keep_ratio'"
                )
            return
        ok = isinstance(scale, (tuple, list)) and len(scale) == 2
        if not ok or not all(_is_int(v) and v > 0 for v in scale):
            raise UserInputError(
                f"resize='keep_ratio' needs scale=(long, short): two positive whole numbers "
                f"as in mmseg's Resize(scale=(2048, 1024), keep_ratio=True), got {scale!r}"
            )
        object.__setattr__(self, "scale", (int(scale[0]), int(scale[1])))

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.scale is None:
            del data["scale"]  # stretch sidecars stay as they were
        else:
            data["scale"] = list(self.scale)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Preprocess:
        return cls(
            height=int(data["height"]),
            width=int(data["width"]),
            color=str(data.get("color", "rgb")),
            mean=tuple(float(v) for v in data.get("mean", IMAGENET_MEAN_RGB)),
            std=tuple(float(v) for v in data.get("std", IMAGENET_STD_RGB)),
            resize=str(data.get("resize", "stretch")),
            scale=_pair(data.get("scale")),
        )


def _pair(value: object) -> object:
    """A JSON list [a, b] as a tuple; anything else as it is (for __post_init__ to refuse)."""
    return tuple(value) if isinstance(value, list) else value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def as_bgr8(frame: np.ndarray) -> np.ndarray:
    """Any decoded image -> (H,W,3) uint8 BGR: grayscale, BGRA and 16-bit images are converted."""
    if not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3) or frame.size == 0:
        shape = getattr(frame, "shape", None)
        raise UserInputError(f"expected an (H,W) or (H,W,C) image array, got shape {shape}")
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype in (np.float32, np.float64):
        frame = np.clip(frame * 255.0 if frame.max() <= 1.0 else frame, 0, 255).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise UserInputError(f"unsupported image dtype {frame.dtype}; expected uint8 or uint16")
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.shape[2] != 3:
        raise UserInputError(f"expected 1, 3 or 4 channels, got {frame.shape[2]}")
    return frame


def read_image(path, error: type[UserInputError] = ImageFileError) -> np.ndarray:
    """Any image file (gray, BGRA, 16-bit) -> (H,W,3) uint8 BGR. Its size and pixel count are
    checked before decoding (runtime/io/image_file.py); every failure is `error` naming the file
    (or a BudgetError)."""
    image = read_image_file(path, "image", error)
    try:
        return as_bgr8(image)
    except ValueError as err:
        raise error(
            f"image {shown(path)}: {err}; re-save it as 8- or 16-bit gray, BGR or BGRA"
        ) from err


def resize_bgr(frame_bgr: np.ndarray, pp: Preprocess) -> np.ndarray:
    """(H,W,3) uint8 -> (pp.height, pp.width, 3) uint8, bilinear (no copy when already sized).

    Always the graph's input size, whatever `pp.resize` says: for keep_ratio models that is the
    fixed-size image export checks and calibration feed; inference goes through `resize_frame`."""
    if frame_bgr.shape[:2] == (pp.height, pp.width):
        return frame_bgr
    return cv2.resize(frame_bgr, (pp.width, pp.height), interpolation=cv2.INTER_LINEAR)


def keep_ratio_size(h: int, w: int, scale: tuple[int, int]) -> tuple[int, int]:
    """(new_h, new_w) of an h x w image under mmseg's keep-ratio Resize with `scale` (mmcv's
    rescale_size): one factor, the largest that keeps the longer side <= max(scale) and the
    shorter <= min(scale), applied to both sides with rounding half up. A side that would round
    to 0 (a 1x10000 strip) is kept at 1 pixel, where mmcv would fail."""
    if h <= 0 or w <= 0:
        raise UserInputError(f"image size must be positive, got {h}x{w}")
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))


def resized_size(frame_hw: tuple[int, int], pp: Preprocess) -> tuple[int, int]:
    """(H, W) a frame of `frame_hw` has once resized for the model (`resize_frame`)."""
    if pp.resize == "keep_ratio":
        return keep_ratio_size(int(frame_hw[0]), int(frame_hw[1]), pp.scale)
    return pp.height, pp.width


def resize_keep_ratio(frame_bgr: np.ndarray, pp: Preprocess) -> np.ndarray:
    """(H,W,3) uint8 -> keep-ratio resized uint8 (`keep_ratio_size`), bilinear like mmcv's
    cv2 backend (no copy when the size does not change)."""
    h, w = keep_ratio_size(frame_bgr.shape[0], frame_bgr.shape[1], pp.scale)
    if frame_bgr.shape[:2] == (h, w):
        return frame_bgr
    return cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_LINEAR)


def resize_frame(frame_bgr: np.ndarray, pp: Preprocess) -> np.ndarray:
    """(H,W,3) uint8 -> resized as `pp.resize` says: stretched to the input size, or keep-ratio."""
    if pp.resize == "keep_ratio":
        return resize_keep_ratio(frame_bgr, pp)
    return resize_bgr(frame_bgr, pp)


def normalise(batch_bgr: np.ndarray, pp: Preprocess) -> np.ndarray:
    """(N,H,W,3) uint8 BGR at model size -> (N,3,H,W) float32, colour-ordered and normalised.

    Computes (x - mean) / std per channel as float32 `(x - mean) * (1 / std)`, plane by plane
    into the NCHW output (no strided transpose): ~15x faster than one broadcast expression at
    512x512 and bit-identical to it. The ufuncs read each colour plane straight from the HWC
    frame: 0.49 ms at 512x512, vs 1.2 ms through cv2.split (measured); cv2.split also raised a
    SystemError ("bad argument to internal function") in 1 of ~15 test runs in the pipeline's
    reader thread under load (OpenCV 5.0.0.93, Python 3.11), never reproduced alone.
    """
    n, h, w, _ = batch_bgr.shape
    mean = np.asarray(pp.mean, np.float32)
    inv_std = (1.0 / np.asarray(pp.std, np.float32)).astype(np.float32)
    sources = (2, 1, 0) if pp.color == "rgb" else (0, 1, 2)  # BGR plane feeding each channel
    out = np.empty((n, 3, h, w), np.float32)
    for i in range(n):
        for c, src in enumerate(sources):
            np.subtract(batch_bgr[i, :, :, src], mean[c], out=out[i, c], dtype=np.float32)
            np.multiply(out[i, c], inv_std[c], out=out[i, c])
    return out


def preprocess(frame: np.ndarray, pp: Preprocess) -> np.ndarray:
    """One frame (any size, gray/BGR/BGRA) -> (1,3,H,W) float32 model input."""
    return normalise(resize_bgr(as_bgr8(frame), pp)[None], pp)


def preprocess_uint8(frame: np.ndarray, pp: Preprocess) -> np.ndarray:
    """One frame -> (1,H,W,3) uint8 BGR, the input of graphs with fused preprocessing."""
    return np.ascontiguousarray(resize_bgr(as_bgr8(frame), pp)[None])


def logits_to_labels(logits: np.ndarray, pp: Preprocess) -> np.ndarray:
    """(K,h,w) logits at the model's output stride -> (H,W) uint8 labels at model input size.

    Bilinear upsampling (half-pixel centres, as torch's align_corners=False) then argmax: the same
    computation the fused-argmax graph performs. Done one class plane at a time with a running
    maximum (ties keep the lower class, like argmax): no (H,W,K) float volume is built, any
    number of classes works, and 8 classes at 512x512 take ~1 ms instead of ~6.
    """
    return resized_argmax(logits, (pp.height, pp.width))


def resized_argmax(logits: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(K,h,w) logits -> (H,W) labels: each class plane resized bilinearly to `hw` (cv2
    INTER_LINEAR, half-pixel centres) and a running argmax (see `logits_to_labels`)."""
    height, width = int(hw[0]), int(hw[1])
    size = (width, height)

    def plane(c: int, dst: np.ndarray | None) -> np.ndarray:
        src = np.ascontiguousarray(logits[c], dtype=np.float32)
        if src.shape != (height, width):
            return cv2.resize(src, size, dst=dst, interpolation=cv2.INTER_LINEAR)
        if dst is None:
            return src.copy()
        dst[...] = src
        return dst

    return argmax_planes(plane, logits.shape[0], (height, width))


def argmax_planes(plane, k: int, hw: tuple[int, int]) -> np.ndarray:
    """Running argmax over `k` float32 planes of size `hw`: `plane(c, dst)` returns class c's
    plane, written into `dst` when it is given (a reused scratch buffer) or as a new array for
    dst=None. Ties keep the lower class; labels are uint8, or int32 past 256 classes."""
    labels = np.zeros(hw, np.uint8 if k <= 256 else np.int32)
    best = plane(0, None)
    scratch = np.empty_like(best)
    fill = np.empty_like(labels)
    for c in range(1, k):
        up = plane(c, scratch)
        higher = cv2.compare(up, best, cv2.CMP_GT)
        fill.fill(c)
        cv2.copyTo(fill, higher, labels)
        cv2.max(best, up, dst=best)
    return labels


def labels_to_frame(labels: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Model-size labels -> frame-size labels, nearest neighbour (class ids never blend)."""
    h, w = frame_hw
    if labels.shape[:2] == (h, w):
        return labels
    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
