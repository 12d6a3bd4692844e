"""Evaluate a segmenter on generated scenes with exact masks: mIoU and per-class IoU.

The metric takes label maps, so anything that turns a BGR frame into labels can be evaluated: a
PyTorch checkpoint here, ONNX and engine artifacts through the runtime.

    python -m export.evaluate --checkpoint scaseg/weights/scaseg_t_demo.safetensors --frames 200
    python -m export.evaluate --model artifacts/scaseg_t_demo.int8.onnx --frames 200
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from runtime.classes import DEMO_CLASSES
from runtime.metrics import ConfusionMatrix, format_iou_table
from runtime.preprocess import Preprocess, logits_to_labels, preprocess
from runtime.scenes import render_scene, split_seeds

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


def _segmenter(args) -> tuple[Segment, tuple[str, ...], int]:
    """(segment, class names, model input size) for a checkpoint or an exported artifact."""
    if args.model:
        from runtime.segmenter import Segmenter

        seg = Segmenter(args.model, provider=args.provider)
        return seg, seg.meta.class_names, seg.meta.preprocess.height
    import torch

    from scaseg.checkpoint import load_model

    torch.set_grad_enabled(False)
    model, info = load_model(args.checkpoint)
    names = tuple(info.get("class_names", DEMO_CLASSES))
    return torch_segmenter(model, Preprocess(args.size, args.size)), names, args.size


def main(argv: list[str] | None = None) -> None:
    from rich.progress import Progress

    parser = argparse.ArgumentParser(
        description="mIoU of a checkpoint or artifact on generated scenes"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a PyTorch checkpoint (.safetensors, .pth)")
    source.add_argument("--model", help="an exported .onnx or .engine with its sidecar")
    parser.add_argument("--provider", default="auto", help="--model: ONNX Runtime provider")
    parser.add_argument("--split", default="val")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--start", type=int, default=0, help="offset into the split's seeds")
    parser.add_argument(
        "--size", type=int, default=512, help="frame size (checkpoints: also the model input)"
    )
    args = parser.parse_args(argv)
    segment, names, _ = _segmenter(args)
    with Progress() as bar:
        task = bar.add_task("evaluating", total=args.frames)
        result = evaluate(
            segment,
            scene_frames(args.split, args.frames, args.size, args.size, args.start),
            len(names),
            progress=lambda: bar.advance(task),
        )
    print(format_iou_table(names, result.iou))
    print(
        f"mIoU {result.miou:.4f}  pixel accuracy {result.pixel_accuracy:.4f}  ({result.frames} frames)"
    )


if __name__ == "__main__":
    main()
