"""Which form of strip attention an export writes: `exact` or `grid` (scaseg/strip_grid.py).

The grid form evaluates each head's attention on a fixed number of query values and
interpolates, so its cost grows linearly with the pixels instead of with their square. It has
the same weights; the gate checks it against the exact PyTorch model like every variant.
`auto` writes the grid form where it was measured to pay: from AUTO_MIN_PIXELS input pixels
(BENCHMARKS.md, "Strip attention at Cityscapes resolution"). A dynamic export is judged by its
largest size, the one whose memory and latency decide whether it fits.
"""

from __future__ import annotations

from torch import nn

from export.plans import StripForm
from export.request import STRIP_FORMS, ExportInputError, ExportRequest
from scaseg.strip_grid import GRID_DEFAULT, use_grid_attention

__all__ = ["STRIP_FORMS", "StripForm", "choose_strip_form", "model_for_export"]
# Below this many input pixels per frame the exact form was as fast or faster on both CPU engines.
AUTO_MIN_PIXELS = 512 * 1024


def largest_pixels(request: ExportRequest) -> int:
    """Input pixels of the largest frame the artifact is exported for."""
    if request.dynamic is not None:
        return request.dynamic.height[2] * request.dynamic.width[2]
    return request.height * request.width


def choose_strip_form(request: ExportRequest, model: nn.Module) -> StripForm:
    """The form to export; ExportInputError where grid is asked of a model without strips."""
    asked = request.strip_attention
    grid = request.strip_grid or GRID_DEFAULT
    attention = getattr(getattr(getattr(model, "cfg", None), "decoder", None), "attention", None)
    if attention != "strip":
        if asked == "grid":
            raise ExportInputError(
                f"--strip-attention grid: this checkpoint's decoder uses {attention} attention, "
                "and only strip attention has a grid form; drop the flag or pass exact"
            )
        return StripForm("exact", None, asked, f"the decoder uses {attention} attention")
    if asked == "exact":
        return StripForm("exact", None, asked, "asked for")
    if asked == "grid":
        return StripForm("grid", grid, asked, "asked for")
    pixels = largest_pixels(request)
    if pixels >= AUTO_MIN_PIXELS:
        return StripForm(
            "grid", grid, asked, f"{pixels} input pixels >= {AUTO_MIN_PIXELS}, where grid pays"
        )
    return StripForm(
        "exact", None, asked, f"{pixels} input pixels < {AUTO_MIN_PIXELS}: exact is as fast"
    )


def model_for_export(model: nn.Module, form: StripForm) -> nn.Module:
    """The model the ONNX graph is traced from: `model` itself, or its grid-form copy."""
    if form.form == "grid":
        return use_grid_attention(model, form.grid)
    return model
