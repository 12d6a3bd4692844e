"""The checkpoint side of an export: load it, check its classes, and describe it in a sidecar."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime
import torch

from export.onnx_export import OPSET, GraphIO
from export.request import DEMO_CHECKPOINT, ExportInputError, ExportRequest
from runtime.classes import DEMO_CLASSES, DEMO_PALETTE_RGB, palette_bgr
from runtime.meta import ModelMeta, sha256_file
from runtime.preprocess import Preprocess
from scaseg.checkpoint import CheckpointError, load_model


def checkpoint_path(request: ExportRequest) -> Path:
    if request.checkpoint is not None:
        return Path(request.checkpoint)
    if not DEMO_CHECKPOINT.is_file():
        raise ExportInputError(
            f"the bundled demo model {DEMO_CHECKPOINT} is missing (not trained or not installed); "
            "pass --checkpoint PATH"
        )
    return DEMO_CHECKPOINT


def load(request: ExportRequest) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, info with checkpoint path and sha256); bad files -> ExportInputError."""
    path = checkpoint_path(request)
    try:
        model, info = load_model(path)
    except CheckpointError as err:
        raise ExportInputError(str(err)) from err
    k = int(model.num_classes)
    if request.num_classes is not None and request.num_classes != k:
        raise ExportInputError(
            f"{path} has {k} classes but --num-classes {request.num_classes} was given; "
            f"drop --num-classes or export the checkpoint trained for {request.num_classes} classes"
        )
    names = info.get("class_names")
    if names is not None and len(names) != k:
        raise ExportInputError(
            f"{path} lists {len(names)} class names but its classifier has {k} outputs; "
            "the checkpoint metadata is inconsistent: re-save it with matching class_names"
        )
    info = dict(info, checkpoint=str(path), checkpoint_sha256=sha256_file(path))
    info["is_demo"] = path.resolve() == DEMO_CHECKPOINT.resolve()
    return model, info


def default_name(request: ExportRequest, info: dict) -> str:
    """The checkpoint's stem (the bundled model: scaseg_t_demo, the name the runtime and the
    docs use), else scaseg_<variant>."""
    return Path(info["checkpoint"]).name.split(".")[0] or f"scaseg_{info['variant']}"


def class_names(info: dict) -> tuple[str, ...]:
    k = int(info["num_classes"])
    if info.get("class_names"):
        return tuple(str(n) for n in info["class_names"])
    if k == len(DEMO_CLASSES):
        return DEMO_CLASSES
    return tuple(f"class_{i}" for i in range(k))


def palette(info: dict) -> tuple[tuple[int, int, int], ...]:
    k = int(info["num_classes"])
    given = info.get("palette_rgb")
    if given and len(given) >= k:
        return tuple(tuple(int(v) for v in c) for c in given)
    table = palette_bgr(DEMO_PALETTE_RGB, k)[:, ::-1]  # BGR -> RGB, deterministic extras
    return tuple(tuple(int(v) for v in row) for row in table[:k])


def base_meta(info: dict, io_spec: GraphIO, pp: Preprocess, request: ExportRequest) -> ModelMeta:
    return ModelMeta(
        variant=str(info["variant"]),
        precision="fp32",
        class_names=class_names(info),
        palette_rgb=palette(info),
        input=io_spec.input,
        output=io_spec.output,
        output_kind=io_spec.output_kind,
        output_stride=io_spec.output_stride,
        preprocess=pp,
        fused_preprocess=request.fuse_preprocess,
        fused_argmax=request.fuse_argmax,
        hashes={"checkpoint": info["checkpoint_sha256"]},
        extra={
            "checkpoint": Path(info["checkpoint"]).name,
            "opset": OPSET,
            "exporter": f"torch {torch.__version__} torch.onnx.export(dynamo=False)",
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    )
