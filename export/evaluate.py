"""Evaluation building blocks: score any frame -> labels function on (frame, mask) pairs.

The metric takes label maps, so anything that turns a BGR frame into labels can be evaluated: a
PyTorch checkpoint (`torch_segmenter`), ONNX and engine artifacts through the runtime. Generated
scenes (`scene_frames`) serve the demo model's training and tests; a user's own images and masks
go through `scaseg-eval` (export/eval_cli.py), which is also `python -m export.evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from runtime.metrics import ConfusionMatrix
from runtime.preprocess import Preprocess, logits_to_labels, preprocess
from scenes import render_scene, split_seeds

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


def torch_segmenter(model, pp: Preprocess) -> Segment:
    """PyTorch model -> Segment, through the runtime's preprocessing and postprocessing."""
    import torch

    model = model.eval()

    def segment(frame_bgr: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(torch.from_numpy(preprocess(frame_bgr, pp)))[0].numpy()
        return logits_to_labels(logits, pp)

    return segment


def main(argv: list[str] | None = None) -> None:
    """`python -m export.evaluate` is `scaseg-eval` (export/eval_cli.py)."""
    from export.eval_cli import main as eval_main

    eval_main(argv)


if __name__ == "__main__":
    main()
