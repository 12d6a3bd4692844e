"""How the exported model is run on a frame, as mmseg scores it: whole or slide, and the resize.

mmseg 1.x configs say both in the checkpoint's training config: `test_cfg=dict(mode='slide',
crop_size=(1024, 1024), stride=(768, 768))` and the test pipeline's
`Resize(scale=(2048, 1024), keep_ratio=True)`. scaseg/checkpoint_config.py reads them (parsed,
never run); flags override them. The result decides the graph's shape:
- slide: the graph takes crop-sized windows with a dynamic batch (all windows of a frame are one
  call), as many as the largest keep-ratio frame needs;
- whole with keep-ratio resize: frames keep their aspect ratio, so the graph needs a dynamic
  height and width (`--dynamic`) covering the resize scale;
- whole with stretch (the default): every frame is resized to --input-size, as before.
The runtime (runtime/segmenter.py, runtime/slide.py) reads the plan back from the sidecar.
"""

from __future__ import annotations

from dataclasses import replace

from export.onnx_export import ShapeRange
from export.plans import InferencePlan
from export.request import ExportInputError, ExportRequest
from runtime.errors import UserInputError
from runtime.slide import SIZE_DIVISOR, Inference, window_count


def plan_inference(
    request: ExportRequest, info: dict
) -> tuple[ExportRequest, InferencePlan, list[str]]:
    """(the request with the graph's size and batch set for the plan, the plan, warnings)."""
    config = info.get("inference_config") or {}
    stored_inf, stored_resize = config.get("inference") or {}, config.get("resize") or {}
    where = f"checkpoint {config.get('inference_from', 'config')}"
    mode = request.inference or stored_inf.get("mode") or "whole"
    resize = request.resize or stored_resize.get("mode") or "stretch"
    scale = request.resize_scale or stored_resize.get("scale")
    sources = []
    if request.inference or request.resize:
        sources.append("flags")
    if stored_inf or stored_resize:
        sources.append(where)
    source = " and ".join(sources) or "default"
    if resize == "keep_ratio" and scale is None:
        raise ExportInputError(
            "keep-ratio resize needs its scale: pass --resize-scale 2048x1024 (the longer and "
            "shorter side limits, as mmseg's Resize(scale=(2048, 1024), keep_ratio=True))"
        )
    if resize == "stretch":
        scale = None
    if mode == "slide":
        return _slide(request, stored_inf, resize, scale, source)
    if request.slide_crop or request.slide_stride:
        raise ExportInputError(
            "--slide-crop/--slide-stride are for slide inference; add --inference slide"
        )
    plan = InferencePlan(Inference(), resize, _pair(scale), source)
    return request, plan, _whole_warnings(request, plan)


def _slide(request: ExportRequest, stored: dict, resize: str, scale, source: str):
    crop = request.slide_crop or _pair(stored.get("crop"))
    stride = request.slide_stride or _pair(stored.get("stride"))
    if crop is None or stride is None:
        raise ExportInputError(
            "slide inference needs a crop and a stride: pass --slide-crop 1024x1024 "
            "--slide-stride 768x768 (mmseg's test_cfg crop_size and stride)"
        )
    if resize != "keep_ratio":
        raise ExportInputError(
            "slide inference needs keep-ratio resizing (stretching every frame to the crop "
            "leaves one window): pass --resize keep-ratio --resize-scale 2048x1024, as mmseg's "
            "test pipeline does"
        )
    if request.dynamic is not None:
        raise ExportInputError(
            "slide inference exports its own dynamic batch (the windows of a frame) at the crop "
            "size; drop --dynamic"
        )
    if request.fuse_argmax:
        raise ExportInputError(
            "slide inference averages the windows' logits, so the graph cannot end in argmax; "
            "drop --fuse-argmax"
        )
    try:
        inference = Inference("slide", crop, stride)
        for side in crop:
            if side % SIZE_DIVISOR:
                raise UserInputError(
                    f"slide crop {crop[0]}x{crop[1]} is not a multiple of {SIZE_DIVISOR}, the "
                    "graph's input stride; pass a crop such as 512x1024 or 1024x1024"
                )
    except UserInputError as err:
        raise ExportInputError(str(err)) from err
    long, short = max(scale), min(scale)
    landscape = window_count(short, long, crop, stride)
    most = max(landscape, window_count(long, short, crop, stride))
    shapes = ShapeRange(
        (1, min(landscape, most), most), (crop[0],) * 3, (crop[1],) * 3
    )  # every window is crop-sized; only the count varies
    plan = InferencePlan(inference, resize, _pair(scale), source, (landscape, most))
    return replace(request, height=crop[0], width=crop[1], dynamic=shapes), plan, []


def _whole_warnings(request: ExportRequest, plan: InferencePlan) -> list[str]:
    if plan.resize != "keep_ratio":
        return []
    if request.dynamic is None:
        raise ExportInputError(
            f"keep-ratio resize to {plan.scale} keeps each frame's aspect ratio, so whole "
            "inference needs a graph of any height and width: add --dynamic with --max-size "
            "covering the scale, or use --inference slide"
        )
    need = -(-max(plan.scale) // SIZE_DIVISOR) * SIZE_DIVISOR
    have = min(request.dynamic.height[2], request.dynamic.width[2])
    if have < need:
        return [
            f"keep-ratio resize to {plan.scale} makes frames up to {need} pixels on a side "
            f"(padded to {SIZE_DIVISOR}), past the dynamic profile's max "
            f"{request.dynamic.height[2]}x{request.dynamic.width[2]}: TensorRT engines "
            f"will refuse such frames; raise --max-size to {need}x{need}"
        ]
    return []


def _pair(value) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))
