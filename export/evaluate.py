"""Evaluation building blocks: score any frame -> labels function on (frame, mask) pairs.

The metric takes label maps, so anything that turns a BGR frame into labels can be evaluated: a
PyTorch checkpoint (`torch_segmenter`), ONNX and engine artifacts through the runtime. Generated
scenes (`scene_frames`) serve the demo model's training and tests; a user's own images and masks
go through `scaseg-eval` (export/eval_cli.py), which is also `python -m export.evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from runtime.metrics import ConfusionMatrix
from runtime.preprocess import Preprocess, labels_to_frame, logits_to_labels, preprocess
from runtime.slide import Inference
from scenes import render_scene, split_seeds

if TYPE_CHECKING:
    from torch import nn

Segment = Callable[[np.ndarray], np.ndarray]  # frame_bgr (H,W,3) -> labels (H,W)


@dataclass(frozen=True)
class EvalResult:
    miou: float
    iou: np.ndarray  # per class, NaN where a class is absent from prediction and truth
    pixel_accuracy: float
    frames: int


def scene_frames(split: str, frames: int, height: int, width: int, start: int = 0) -> Iterable:
    """(frame_bgr, labels) of `frames` generated scenes from a split's seed range."""
    for seed in split_seeds(split, frames, start):
        yield render_scene(seed, height, width)


def evaluate(segment: Segment, samples: Iterable, num_classes: int, progress=None) -> EvalResult:
    cm = ConfusionMatrix(num_classes)
    n = 0
    for frame_bgr, labels in samples:
        cm.update(segment(frame_bgr), labels)
        n += 1
        if progress is not None:
            progress()
    return EvalResult(cm.miou(), cm.iou(), cm.pixel_accuracy(), n)


def torch_segmenter(
    model: nn.Module, pp: Preprocess, inference: Inference | None = None
) -> Segment:
    """PyTorch model -> Segment giving labels at each frame's own size.

    Whole frames stretched to the input size go through the runtime's preprocessing and
    logits -> labels step, then nearest-neighbour to the frame (a no-op for frames at the input
    size). Slide inference or keep-ratio resizing is scored as mmseg scores it, through
    export/slide_reference.py (the PyTorch reference the runtime's slide is checked against):
    logits resized to the frame bilinearly, then argmax."""
    import torch

    inference = inference or Inference()
    model = model.eval()
    if inference.slide or pp.resize == "keep_ratio":
        from export.slide_reference import slide_labels_torch

        def as_mmseg(frame_bgr: np.ndarray) -> np.ndarray:
            return slide_labels_torch(model, frame_bgr, pp, inference)

        return as_mmseg

    def segment(frame_bgr: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(torch.from_numpy(preprocess(frame_bgr, pp)))[0].numpy()
        return labels_to_frame(logits_to_labels(logits, pp), frame_bgr.shape[:2])

    return segment


def main(argv: list[str] | None = None) -> None:
    """`python -m export.evaluate` is `scaseg-eval` (export/eval_cli.py)."""
    from export.eval_cli import main as eval_main

    eval_main(argv)


if __name__ == "__main__":
    main()
