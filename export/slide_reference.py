"""mmseg's test-time inference written in PyTorch: the independent reference that the runtime's
numpy/OpenCV implementation (runtime/slide.py, runtime.Segmenter) is checked against.

Kept deliberately apart from runtime/slide.py (its own window loop, torch's resize and padding)
and as mmseg runs it, not as the runtime does:
- slide: window by window, no batching. A window smaller than the crop (the resized image is
  smaller than the crop on a side) runs at its own size, unpadded, as mmseg runs it, where that
  size is a multiple of 32; SCASeg refuses any other size (its keys and values sit on the
  stride-32 grid), so there the window is padded with zeros at the bottom/right to the crop, as
  the runtime's crop-sized graph is, and its logits are cut back. Each window's logits are
  resized to the window's size
  (bilinear, align_corners=False), summed into a zero-padded (1,K,H,W) map, and divided by a
  count of the windows covering each pixel.
- whole: the normalised image padded at the bottom/right to a multiple of 32 with zeros (as
  mmseg's data preprocessor with size_divisor), the logits resized to the padded size and cut
  back to the image.
Then the logits are resized to the frame's own size (before the test-time Resize) and argmax'd.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from runtime.preprocess import Preprocess, as_bgr8, normalise, resize_frame
from runtime.slide import SIZE_DIVISOR, Inference


@torch.no_grad()
def slide_logits_torch(
    model: nn.Module,
    image: torch.Tensor,
    num_classes: int,
    crop: tuple[int, int],
    stride: tuple[int, int],
) -> torch.Tensor:
    """(1,3,H,W) normalised image -> (1,K,H,W) logits averaged over mmseg's slide windows."""
    _, _, h, w = image.shape
    (ch, cw), (sh, sw) = crop, stride
    rows = max(h - ch + sh - 1, 0) // sh + 1
    cols = max(w - cw + sw - 1, 0) // sw + 1
    total = image.new_zeros((1, num_classes, h, w))
    count = image.new_zeros((1, 1, h, w))
    for r in range(rows):
        for c in range(cols):
            bottom, right = min(r * sh + ch, h), min(c * sw + cw, w)
            top, left = max(bottom - ch, 0), max(right - cw, 0)
            window = image[:, :, top:bottom, left:right]
            logits = _window_logits(model, window, crop)
            total += F.pad(logits, (left, w - right, top, h - bottom))
            count[:, :, top:bottom, left:right] += 1
    if bool((count == 0).any()):
        raise ValueError(f"stride {stride} leaves pixels outside every {crop} window")
    return total / count


def _window_logits(model: nn.Module, window: torch.Tensor, crop: tuple[int, int]) -> torch.Tensor:
    """(1,3,h,w) window -> (1,K,h,w) logits at the window's size; padded to the crop first where
    the model cannot take h x w (not multiples of 32)."""
    h, w = window.shape[2:]
    if h % SIZE_DIVISOR == 0 and w % SIZE_DIVISOR == 0:
        return F.interpolate(model(window), size=(h, w), mode="bilinear", align_corners=False)
    ch, cw = crop
    padded = F.pad(window, (0, cw - w, 0, ch - h))  # zeros after normalisation, bottom/right
    logits = F.interpolate(model(padded), size=(ch, cw), mode="bilinear", align_corners=False)
    return logits[:, :, :h, :w]


@torch.no_grad()
def whole_logits_torch(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """(1,3,H,W) normalised image -> (1,K,H,W): padded to a multiple of 32 with zeros, run,
    resized to the padded size, cut back to H x W."""
    _, _, h, w = image.shape
    ph, pw = -(-h // SIZE_DIVISOR) * SIZE_DIVISOR, -(-w // SIZE_DIVISOR) * SIZE_DIVISOR
    padded = F.pad(image, (0, pw - w, 0, ph - h))
    logits = F.interpolate(model(padded), size=(ph, pw), mode="bilinear", align_corners=False)
    return logits[:, :, :h, :w]


@torch.no_grad()
def slide_labels_torch(
    model: nn.Module, frame_bgr: np.ndarray, pp: Preprocess, inference: Inference
) -> np.ndarray:
    """One frame -> (h,w) labels as mmseg scores it: the test-time resize (runtime.preprocess:
    keep-ratio or stretch, cv2 bilinear like mmcv), normalisation, slide or whole inference,
    logits resized to the frame's size (bilinear, align_corners=False), argmax. uint8 labels
    (int32 past 256 classes)."""
    frame = as_bgr8(frame_bgr)
    image = torch.from_numpy(normalise(resize_frame(frame, pp)[None], pp))
    model = model.eval()
    num_classes = int(model.num_classes)
    if inference.slide:
        logits = slide_logits_torch(model, image, num_classes, inference.crop, inference.stride)
    else:
        logits = whole_logits_torch(model, image)
    logits = F.interpolate(logits, size=frame.shape[:2], mode="bilinear", align_corners=False)
    labels = logits[0].argmax(dim=0).numpy()
    return labels.astype(np.uint8 if num_classes <= 256 else np.int32)
