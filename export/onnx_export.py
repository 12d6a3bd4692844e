"""PyTorch SCASeg -> ONNX: static or dynamic shapes, optional fused pre- and postprocessing.

Plain graph:  "input"  (N,3,H,W) float32 normalised  -> "logits" (N,K,H/4,W/4) float32.
Fused pre:    "image"  (N,H,W,3) uint8 BGR at model size, normalised inside the graph.
Fused argmax: "labels" (N,H,W) int32 at input size (bilinear x4, align_corners=False, ArgMax).

Why int32 labels and not uint8: TensorRT 8.5/8.6 (JetPack 5, JetPack 6.0) only allow UINT8 at network I/O in
narrow cases and its ONNX parser rejects Cast-to-UINT8 in many graphs; ArgMax is computed as an
INT32 TopK index on every TensorRT version, so int32 is the one label dtype that builds on all of
TensorRT 8.6 (JetPack 6.0), 10.3 (JetPack 6.1+) and 11. The runtime reads the dtype from the sidecar.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from runtime.budgets import check
from runtime.errors import UserInputError
from runtime.meta import TensorSpec
from runtime.preprocess import Preprocess
from scaseg.config import INPUT_STRIDE
from scaseg.model import OUTPUT_STRIDE, check_input_size

OPSET = 17  # native LayerNormalization; GELU stays Erf-based (TensorRT 8.6 lacks the Gelu op)
LABEL_DTYPE = "int32"
# ONNX protobufs cannot exceed 2 GiB; past that the weights must go to an external data file.
PROTOBUF_LIMIT_BYTES = 2 * 1024**3 - 64 * 1024**2


@dataclass(frozen=True)
class ShapeRange:
    """Dynamic export: (min, opt, max) of batch, height and width; sizes multiples of 32."""

    batch: tuple[int, int, int] = (1, 1, 4)
    height: tuple[int, int, int] = (256, 512, 1024)
    width: tuple[int, int, int] = (256, 512, 1024)

    def __post_init__(self) -> None:
        for name in ("batch", "height", "width"):
            lo, opt, hi = getattr(self, name)
            if not 1 <= lo <= opt <= hi:
                raise UserInputError(
                    f"{name} range must satisfy 1 <= min <= opt <= max, got {lo, opt, hi}"
                )
        check("batch", self.batch[2], "the dynamic batch range's max")
        for h in self.height:
            for w in self.width:
                check_input_size(h, w)


@dataclass(frozen=True)
class ExportOptions:
    height: int = 512
    width: int = 512
    dynamic: ShapeRange | None = None  # None = static (1,3,H,W), the default for fixed video
    fuse_preprocess: bool = False
    fuse_argmax: bool = False
    opset: int = OPSET

    def __post_init__(self) -> None:
        check_input_size(self.height, self.width, INPUT_STRIDE)
        if self.opset < 17:
            raise UserInputError(
                f"opset must be >= 17 (native LayerNormalization), got {self.opset}"
            )


@dataclass(frozen=True)
class GraphIO:
    input: TensorSpec
    output: TensorSpec
    output_kind: str
    output_stride: int


class FusedModel(nn.Module):
    """SCASeg with optional in-graph preprocessing and argmax; plain model when both are off."""

    def __init__(self, model: nn.Module, pp: Preprocess, fuse_preprocess: bool, fuse_argmax: bool):
        super().__init__()
        self.model = model
        self.fuse_preprocess = fuse_preprocess
        self.fuse_argmax = fuse_argmax
        self.swap_rb = pp.color == "rgb"  # frames arrive BGR
        mean = torch.tensor(pp.mean, dtype=torch.float32).view(1, 3, 1, 1)
        inv_std = 1.0 / torch.tensor(pp.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("inv_std", inv_std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fuse_preprocess:
            x = x.permute(0, 3, 1, 2).float()  # (N,H,W,3) uint8 -> (N,3,H,W) float32
            if self.swap_rb:
                x = x.flip(1)  # BGR -> RGB; a Slice with step -1, supported by every TensorRT
            x = (x - self.mean) * self.inv_std  # same arithmetic as runtime.preprocess.normalise
        logits = self.model(x)  # (N,K,H/4,W/4)
        if not self.fuse_argmax:
            return logits
        up = F.interpolate(logits, scale_factor=OUTPUT_STRIDE, mode="bilinear", align_corners=False)
        return up.argmax(dim=1).to(torch.int32)  # (N,K,H,W) -> (N,H,W)


def graph_io(num_classes: int, options: ExportOptions) -> GraphIO:
    """Names, dtypes, layouts and shapes of the exported graph (what goes into the sidecar)."""
    dyn = options.dynamic
    n, h, w = 1, options.height, options.width
    if dyn is not None:  # symbolic where the range varies; a fixed H/W stays a number (slide crops)
        n = "batch"
        h = "height" if dyn.height[0] != dyn.height[2] else dyn.height[0]
        w = "width" if dyn.width[0] != dyn.width[2] else dyn.width[0]
    if options.fuse_preprocess:
        inp = TensorSpec("image", "uint8", "NHWC", (n, h, w, 3))
        in_profile = _profile(dyn, lambda b, y, x: (b, y, x, 3))
    else:
        inp = TensorSpec("input", "float32", "NCHW", (n, 3, h, w))
        in_profile = _profile(dyn, lambda b, y, x: (b, 3, y, x))
    inp = TensorSpec(inp.name, inp.dtype, inp.layout, inp.shape, in_profile)
    if options.fuse_argmax:
        out = TensorSpec("labels", LABEL_DTYPE, "NHW", (n, h, w))
        return GraphIO(inp, out, "labels", 1)
    s = OUTPUT_STRIDE
    oh = f"height/{s}" if isinstance(h, str) else h // s
    ow = f"width/{s}" if isinstance(w, str) else w // s
    out = TensorSpec("logits", "float32", "NCHW", (n, num_classes, oh, ow))
    return GraphIO(inp, out, "logits", s)


def _profile(dyn: ShapeRange | None, make) -> tuple | None:
    if dyn is None:
        return None
    return tuple(make(dyn.batch[i], dyn.height[i], dyn.width[i]) for i in range(3))


def example_input(io_spec: GraphIO, options: ExportOptions, batch: int = 1) -> torch.Tensor:
    h, w = options.height, options.width
    if io_spec.input.dtype == "uint8":
        return torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8)
    return torch.randn(batch, 3, h, w)


def export_onnx(model: nn.Module, pp: Preprocess, options: ExportOptions) -> tuple[bytes, GraphIO]:
    """Export to ONNX bytes (one self-contained file) and describe its input and output."""
    num_classes = int(model.num_classes)
    io_spec = graph_io(num_classes, options)
    wrapped = FusedModel(model.eval(), pp, options.fuse_preprocess, options.fuse_argmax).eval()
    dynamic_axes = None
    if options.dynamic is not None:
        dynamic_axes = {
            io_spec.input.name: _dynamic_dims(io_spec.input.shape),
            io_spec.output.name: _dynamic_dims(io_spec.output.shape),
        }
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        # dynamo=False: the TorchScript exporter. On torch 2.13 the dynamo exporter (the default)
        # failed on dynamic height/width for this model and writes weights to a separate
        # .onnx.data file; the legacy exporter exported dynamic shapes exactly and inlines weights.
        torch.onnx.export(
            wrapped,
            (example_input(io_spec, options),),
            buffer,
            dynamo=False,
            opset_version=options.opset,
            input_names=[io_spec.input.name],
            output_names=[io_spec.output.name],
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    data = buffer.getvalue()
    if len(data) > PROTOBUF_LIMIT_BYTES:  # pragma: no cover - far beyond every SCASeg variant
        raise ValueError(
            f"the exported graph is {len(data) / 1e9:.1f} GB, over ONNX's 2 GB single-file limit; "
            "external-data export is not supported by this exporter"
        )
    return data, io_spec


def _dynamic_dims(shape: tuple) -> dict[int, str]:
    return {i: d for i, d in enumerate(shape) if isinstance(d, str)}
