"""Options scaseg-export and scaseg-eval share: the model's classes and preprocessing, and where
validation images and masks are. One definition, so both commands read them the same way."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer


class VariantChoice(str, Enum):
    tiny = "tiny"
    t = "t"
    s = "s"
    b = "b"
    l = "l"  # noqa: E741 (the variant's name)


class InferenceChoice(str, Enum):
    whole = "whole"
    slide = "slide"


class ResizeChoice(str, Enum):
    stretch = "stretch"
    keep_ratio = "keep-ratio"


def parse_triplet(text: str | None, flag: str) -> tuple[float, float, float] | None:
    """'123.675,116.28,103.53' -> three floats (the model's channel order), None when not given."""
    if text is None:
        return None
    parts = [p for p in text.replace(" ", ",").split(",") if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise typer.BadParameter(
            f"{flag} {text!r}: expected three comma-separated numbers in the model's channel "
            "order, e.g. 123.675,116.28,103.53"
        )
    return values  # type: ignore[return-value]


def color_order(rgb: bool | None) -> str | None:
    return None if rgb is None else ("rgb" if rgb else "bgr")


CLASSES = typer.Option(
    None,
    help="Class names (and palette): a preset (cityscapes, ade20k, voc) or a .json/.txt file; "
    "default: the checkpoint's metadata. Example: --classes cityscapes",
)
VARIANT = typer.Option(
    None, help="Model variant; default: read from the checkpoint. Example: --variant t"
)
MEAN = typer.Option(
    None,
    help="Normalisation mean, 0..255, in the model's channel order (default ImageNet "
    "123.675,116.28,103.53). Example: --mean 0,0,0",
)
STD = typer.Option(
    None,
    help="Normalisation std, 0..255, in the model's channel order (default ImageNet "
    "58.395,57.12,57.375). Example: --std 255,255,255",
)
RGB = typer.Option(
    None, "--rgb/--bgr", help="Channel order the model was trained on (default --rgb, as mmseg)."
)
VAL_MASKS = typer.Option(
    None,
    help="Masks for --val-data IMAGES, paired by file stem. Example: --val-masks labels/",
)
VAL_SPLIT = typer.Option(
    None,
    help="Split folder inside a dataset layout; default: its validation split (val; "
    "validation for ADE20K). Example: --val-split test",
)
IGNORE_INDEX = typer.Option(255, help="Mask value of unlabelled pixels. Example: --ignore-index 0")
REDUCE_ZERO_LABEL = typer.Option(
    None,
    "--reduce-zero-label/--no-reduce-zero-label",
    help="Mask value 0 means 'other' (ignored) and k means class k-1; default: on for the "
    "ADE20K layout only.",
)


def val_data_help(what: str) -> str:
    return (
        f"{what}: a Cityscapes (leftImg8bit/ + gtFine/), ADE20K (images/ + annotations/) or "
        "mmseg (img_dir/ + ann_dir/) folder, or an image folder with --val-masks. "
        "Example: --val-data data/cityscapes"
    )


def existing_path(path: Path | None, flag: str) -> Path | None:
    if path is not None and not path.exists():
        raise FileNotFoundError(f"{flag} {path} does not exist; pass an existing folder")
    return path


# How a checkpoint's frames are run, as mmseg scores it (export/inference_plan.py); an ONNX or
# engine artifact's sidecar decides this for itself.
INFERENCE = typer.Option(
    None,
    help="How frames are run: whole, or slide (crop-sized windows, overlapping logits averaged, "
    "as mmseg scores Cityscapes); default: the checkpoint config's test_cfg, else whole.",
)
SLIDE_CROP = typer.Option(
    None, help="Slide: window HxW, the graph's input size. Example: --slide-crop 1024x1024"
)
SLIDE_STRIDE = typer.Option(None, help="Slide: window step HxW. Example: --slide-stride 768x768")
RESIZE = typer.Option(
    None,
    help="Frame resize: stretch to --input-size, or keep-ratio within --resize-scale (mmseg's "
    "Resize keep_ratio=True); default: the checkpoint config's test pipeline, else stretch.",
)
RESIZE_SCALE = typer.Option(
    None, help="Keep-ratio limits, longer x shorter side. Example: --resize-scale 2048x1024"
)
