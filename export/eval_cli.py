"""`scaseg-eval`: mIoU, pixel accuracy and per-class IoU of a model on validation images + masks.

    scaseg-eval artifacts/m.int8.onnx --val-data data/cityscapes --json m.int8.json
    scaseg-eval m.int8.engine --val-data frames/ --val-masks masks/ --max-images 200
    scaseg-eval iter_160000.pth --val-data data/cityscapes --input-size 512x1024
    scaseg-eval scaseg/weights/scaseg_t_demo.safetensors --val-data generated --max-images 200

MODEL is an exported artifact (`.onnx`, `.engine`: run through the runtime, on this device's
backend, as its sidecar says: whole or slide inference, stretch or keep-ratio resize) or a
checkpoint (`.pth`, `.safetensors`: run through PyTorch with the same preprocessing and label
post-processing). A checkpoint is scored as the export would run it (export/inference_plan.py):
slide inference and keep-ratio resizing from --inference/--slide-crop/--slide-stride/--resize/
--resize-scale, else from its training config (test_cfg, the test pipeline's Resize), else whole
frames stretched to --input-size. Label maps are scored at each mask's own size. Only this file
prints or exits, through runtime/cli_errors.py: bad input -> one line, exit 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from export import cli_options as opts
from export.cli_options import VariantChoice
from export.gate_data import ClassMismatchError, check_class_mismatch
from runtime.cli_errors import warning_line
from runtime.errors import UserInputError
from runtime.io.source_types import GENERATED
from runtime.text import shown

if TYPE_CHECKING:
    from export.plans import InferencePlan

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

ARTIFACT_SUFFIXES = (".onnx", ".engine", ".plan", ".trt")
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")
GENERATED_FRAMES = 200


@dataclass(frozen=True)
class LoadedModel:
    segment: Callable[[np.ndarray], np.ndarray]  # frame_bgr -> (H,W) labels at the frame's size
    class_names: tuple[str, ...]
    description: str  # what ran: the backend, or "PyTorch <version> CPU"
    close: Callable[[], None]
    preprocess: object  # runtime.preprocess.Preprocess: the model's input size and normalisation


@dataclass(frozen=True)
class EvalSummary:
    miou: float
    aacc: float
    iou: np.ndarray
    images: int
    warnings: list[str]


@app.command()
def evaluate_command(
    model: Path = typer.Argument(..., help="An .onnx/.engine artifact or a .pth/.safetensors checkpoint."),
    val_data: Path = typer.Option(..., help=opts.val_data_help("Validation images and masks")),
    val_masks: Path = opts.VAL_MASKS,
    val_split: str = opts.VAL_SPLIT,
    ignore_index: int = opts.IGNORE_INDEX,
    reduce_zero_label: bool = opts.REDUCE_ZERO_LABEL,
    max_images: int = typer.Option(None, min=1, help="Evaluate this many pairs, evenly spaced. Example: --max-images 200"),
    json_out: Path = typer.Option(None, "--json", help="Also write the results as JSON. Example: --json eval.json"),
    backend: str = typer.Option("auto", help="Artifacts: auto, onnxruntime, tensorrt or openvino. Example: --backend openvino"),
    provider: str = typer.Option("auto", help="Artifacts on ONNX Runtime: auto, tensorrt, cuda or cpu."),
    device: str = typer.Option(None, help="CUDA GPU index, or an OpenVINO device (CPU, GPU, NPU, AUTO)."),
    input_size: str = typer.Option("512x512", help="Checkpoints: model input HxW, multiples of 32."),
    inference: opts.InferenceChoice = opts.INFERENCE,
    slide_crop: str = opts.SLIDE_CROP,
    slide_stride: str = opts.SLIDE_STRIDE,
    resize: opts.ResizeChoice = opts.RESIZE,
    resize_scale: str = opts.RESIZE_SCALE,
    classes: str = opts.CLASSES,
    variant: VariantChoice = opts.VARIANT,
    mean: str = opts.MEAN,
    std: str = opts.STD,
    rgb: bool = opts.RGB,
    allow_random_decoder: bool = typer.Option(False, help="Checkpoints without decoder weights (smoke tests)."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:  # fmt: skip
    """Score MODEL on validation images with masks: mIoU, aAcc and per-class IoU."""

    def run() -> int:
        if max_images is not None and max_images < 1:
            raise UserInputError(f"--max-images must be >= 1, got {max_images}")
        if json_out is not None:
            _check_json_out(json_out, model, val_data, val_masks, classes)
        from runtime.val_data import find_val_set

        generated = str(val_data) == GENERATED
        val_set = None
        if not generated:
            val_set = find_val_set(
                opts.existing_path(val_data, "--val-data"),
                masks=opts.existing_path(val_masks, "--val-masks"),
                split=val_split,
                reduce_zero_label=reduce_zero_label,
                ignore_index=ignore_index,
            )
        settings = _CheckpointSettings(
            input_size=input_size,
            classes=classes,
            variant=variant,
            mean=mean,
            std=std,
            rgb=rgb,
            allow_random_decoder=allow_random_decoder,
            inference=None if inference is None else inference.value,
            slide_crop=slide_crop,
            slide_stride=slide_stride,
            resize=None if resize is None else resize.value.replace("-", "_"),
            resize_scale=resize_scale,
        )
        loaded = load_model_for_eval(model, backend, provider, device, settings)
        try:
            data = _data(loaded, val_set, max_images, ignore_index)
            err_console.print(f"model: {escape(shown(model))} ({loaded.description})")
            err_console.print(f"data: {data.description}")
            summary = score(loaded, data)
        finally:
            loaded.close()
        print_summary(loaded, summary)
        for warning in summary.warnings:
            warning_line("scaseg-eval", warning, err_console)
        if json_out is not None:
            write_json(json_out, model, loaded, data.description, summary)
            err_console.print(f"wrote {escape(shown(json_out))}")
        return 0

    raise typer.Exit(_guarded(run, debug))


def _check_json_out(
    json_out: Path, model: Path, val_data: Path, val_masks: Path | None, classes: str | None
) -> None:
    """--json may not be the model, its sidecar, a class file, or sit among the images and
    masks (runtime/io/output_paths.py); its folder must be writable."""
    from runtime.atomic import check_writable_target
    from runtime.io.input_paths import file_inputs, folder_inputs, model_inputs
    from runtime.io.output_paths import check_outputs, output_file

    inputs = model_inputs(model, "MODEL") + file_inputs(classes, "--classes")
    if str(val_data) != GENERATED:
        inputs += folder_inputs(val_data, "--val-data") + folder_inputs(val_masks, "--val-masks")
    check_outputs(inputs, [output_file(json_out, "--json")])
    check_writable_target(json_out, overwrite=True)


@dataclass(frozen=True)
class _CheckpointSettings:
    input_size: str
    classes: str | None
    variant: VariantChoice | None
    mean: str | None
    std: str | None
    rgb: bool | None
    allow_random_decoder: bool
    inference: str | None = None  # whole | slide; None: the checkpoint's config, else whole
    slide_crop: str | None = None  # HxW text, as given
    slide_stride: str | None = None
    resize: str | None = None  # stretch | keep_ratio; None: the checkpoint's config, else stretch
    resize_scale: str | None = None

    def given_flags(self) -> list[str]:
        """The checkpoint-only flags that were given (refused for artifacts)."""
        flags = (
            ("--classes", self.classes), ("--variant", self.variant), ("--mean", self.mean),
            ("--std", self.std), ("--rgb/--bgr", self.rgb), ("--inference", self.inference),
            ("--slide-crop", self.slide_crop), ("--slide-stride", self.slide_stride),
            ("--resize", self.resize), ("--resize-scale", self.resize_scale),
        )  # fmt: skip
        return [flag for flag, value in flags if value is not None]


def load_model_for_eval(
    path: Path, backend: str, provider: str, device: str | None, settings: _CheckpointSettings
) -> LoadedModel:
    if not path.is_file():
        raise FileNotFoundError(
            f"model {path} does not exist; pass an .onnx/.engine or a checkpoint"
        )
    suffix = path.suffix.lower()
    if suffix in ARTIFACT_SUFFIXES:
        given = settings.given_flags()
        if given:
            raise UserInputError(
                f"{', '.join(given)} apply to checkpoints; {path.name} is an exported artifact "
                "whose classes, preprocessing and inference mode come from its sidecar: drop "
                "the flag(s)"
            )
        return _artifact(path, backend, provider, device)
    if suffix in CHECKPOINT_SUFFIXES:
        return _checkpoint(path, settings)
    raise UserInputError(
        f"{path}: unknown model type {suffix or '(no suffix)'!r}; pass an artifact "
        f"({'/'.join(ARTIFACT_SUFFIXES)}) or a checkpoint ({'/'.join(CHECKPOINT_SUFFIXES)})"
    )


def _artifact(path: Path, backend: str, provider: str, device: str | None) -> LoadedModel:
    from runtime.backends import BackendOptions, parse_device
    from runtime.cli import backend_line
    from runtime.segmenter import Segmenter

    options = BackendOptions(provider=provider, device=parse_device(device))
    seg = Segmenter(path, backend=backend, options=options)
    desc = backend_line(seg.backend)
    return LoadedModel(seg, seg.meta.class_names, desc, seg.close, seg.meta.preprocess)


def _checkpoint(path: Path, s: _CheckpointSettings) -> LoadedModel:
    import torch

    from export.cli import parse_size
    from export.evaluate import torch_segmenter
    from export.model_info import resolve_classes, resolve_preprocess
    from scaseg.checkpoint import load_model
    from scaseg.model import check_input_size

    h, w = parse_size(s.input_size)
    check_input_size(h, w)
    variant = None if s.variant is None else s.variant.value
    model, info = load_model(path, variant=variant, allow_random_decoder=s.allow_random_decoder)
    names, _, _, warnings = resolve_classes(s.classes, info, int(model.num_classes), path)
    for warning in warnings:
        warning_line("scaseg-eval", warning, err_console)
    flags = {
        "color": opts.color_order(s.rgb),
        "mean": opts.parse_triplet(s.mean, "--mean"),
        "std": opts.parse_triplet(s.std, "--std"),
    }
    info = dict(info, checkpoint=str(path))
    plan, (h, w) = checkpoint_plan(path, (h, w), s, info)
    pp, _, pp_warnings = resolve_preprocess(h, w, flags, info)
    for warning in pp_warnings:
        warning_line("scaseg-eval", warning, err_console)
    pp = replace(pp, resize=plan.resize, scale=plan.scale)
    segment = torch_segmenter(model, pp, plan.inference)  # labels at the frame's size
    runs = f"{h}x{w}" if plan.source == "default" else f"{h}x{w} input, {plan.describe()}"
    desc = f"PyTorch {torch.__version__} CPU, variant {info['variant']}, {runs}"
    return LoadedModel(segment, names, desc, lambda: None, pp)


def checkpoint_plan(
    path: Path, size: tuple[int, int], s: _CheckpointSettings, info: dict
) -> tuple[InferencePlan, tuple[int, int]]:
    """(InferencePlan, model input (h, w)) of a checkpoint: decided by the export's own rules
    (export.inference_plan.plan_inference) from the flags, else the checkpoint's config. Slide
    inference runs crop-sized windows, so the input size becomes the crop.

    PyTorch runs any input size, so the export's rule that keep-ratio whole inference needs a
    dynamic graph is met by a one-size range here (its TensorRT warnings do not apply)."""
    from export.cli import parse_size
    from export.inference_plan import plan_inference
    from export.onnx_export import ShapeRange
    from export.request import ExportRequest

    def size_or_none(text: str | None, flag: str) -> tuple[int, int] | None:
        return None if text is None else parse_size(text, flag)

    stored = (info.get("inference_config") or {}).get("inference") or {}
    mode = s.inference or stored.get("mode") or "whole"
    h, w = size
    any_size = None if mode == "slide" else ShapeRange((1, 1, 1), (h, h, h), (w, w, w))
    request = ExportRequest(
        checkpoint=path,
        height=h,
        width=w,
        dynamic=any_size,
        verify=False,
        inference=s.inference,
        slide_crop=size_or_none(s.slide_crop, "--slide-crop"),
        slide_stride=size_or_none(s.slide_stride, "--slide-stride"),
        resize=s.resize,
        resize_scale=size_or_none(s.resize_scale, "--resize-scale"),
    )
    request, plan, _ = plan_inference(request, info)
    return plan, (request.height, request.width)


def _data(loaded: LoadedModel, val_set, max_images: int | None, ignore_index: int):
    """The pairs to score: the validation set, or generated scenes (the demo model's classes)."""
    from export.gate_data import generated_gate, val_gate
    from scenes.classes import DEMO_CLASSES

    k = len(loaded.class_names)
    if val_set is not None:
        return val_gate(val_set, max_images, k, ignore_index)
    if k != len(DEMO_CLASSES):
        raise ClassMismatchError(
            f"--val-data generated: the generated scenes are labelled with the demo's "
            f"{len(DEMO_CLASSES)} classes ({', '.join(DEMO_CLASSES)}) but the model has {k}; "
            "pass your own --val-data"
        )
    return generated_gate(loaded.preprocess, max_images or GENERATED_FRAMES, with_truth=True)


def score(loaded: LoadedModel, data) -> EvalSummary:
    """Run every pair; refuse masks that mostly hold classes the model lacks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from runtime.metrics import ConfusionMatrix

    k = len(loaded.class_names)
    cm = ConfusionMatrix(k, data.ignore_index)
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("evaluating", total=data.count)
        for sample in data:
            cm.update(loaded.segment(sample.frame_bgr), sample.truth)
            if data.tally is not None:
                check_class_mismatch(data.tally, int(cm.matrix.sum()), k, sample.name)
            bar.advance(task)
    warnings = [*data.warnings, *data.late_warnings()]
    return EvalSummary(cm.miou(), cm.pixel_accuracy(), cm.iou(), data.count, warnings)


def print_summary(loaded: LoadedModel, s: EvalSummary) -> None:
    table = Table()
    table.add_column("class")
    table.add_column("IoU %", justify="right")
    for name, value in zip(loaded.class_names, s.iou):
        table.add_row(name, f"{100 * value:.2f}" if np.isfinite(value) else "-")
    console.print(table)
    console.print(f"mIoU {100 * s.miou:.2f}  aAcc {100 * s.aacc:.2f}  ({s.images} images)")


def write_json(path: Path, model: Path, loaded: LoadedModel, data: str, s: EvalSummary) -> None:
    from runtime.atomic import atomic_write_text

    def num(v: float) -> float | None:
        return float(v) if np.isfinite(v) else None

    data = {
        "miou": num(s.miou),
        "aacc": num(s.aacc),
        "per_class": {n: num(v) for n, v in zip(loaded.class_names, s.iou)},
        "images": s.images,
        "model": str(model),
        "runs": loaded.description,
        "data": data,
        "warnings": s.warnings,
    }
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _guarded(run, debug: bool) -> int:
    from runtime.cli_errors import guarded

    return guarded(run, prog="scaseg-eval", debug=debug, console=err_console,
                   interrupted="scaseg-eval: interrupted; nothing was written")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from runtime.cli_app import run_app

    run_app(app, "scaseg-eval", list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
