"""The models every table uses: one checkpoint, its PyTorch model and its ONNX artifacts.

FP32, FP16 and the INT8 Q/DQ artifact for TensorRT come from the export library's own
`export_artifacts` (the code behind scaseg-export), from the same checkpoint the PyTorch rows
load: the demo weights where they exist, else a randomly initialised model saved once. The CPU
INT8 variants are built here with ONNX Runtime's quantize_static: benchmark-only artifacts, see
BENCHMARKS.md for why they differ from the TensorRT one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.meta import read_meta, sha256_file, write_meta
from runtime.preprocess import Preprocess, preprocess
from scenes import render_scene, split_seeds
from scenes.classes import DEMO_CLASSES

DEMO_WEIGHTS = (
    Path(__file__).resolve().parents[1] / "scaseg" / "weights" / "scaseg_t_demo.safetensors"
)
LIBRARY_PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ModelSpec:
    variant: str = "t"
    height: int = 512
    width: int = 512
    checkpoint: Path | None = None  # None: random initialisation (saved once per run)


@dataclass(frozen=True)
class TorchModel:
    model: object  # scaseg.model.SCASeg in eval mode
    class_names: tuple[str, ...]
    weights: str  # what the weights are, for the report


def default_spec(variant: str = "t", size: int = 512) -> ModelSpec:
    """The demo checkpoint where it exists, else random weights of the same variant."""
    ckpt = DEMO_WEIGHTS if DEMO_WEIGHTS.is_file() and variant == "t" else None
    return ModelSpec(variant, size, size, ckpt)


def random_checkpoint(variant: str, folder: Path) -> Path:
    """A randomly initialised model (seed 0) saved as a checkpoint the export library reads."""
    import torch

    from scaseg.checkpoint import save_checkpoint
    from scaseg.model import build_model

    torch.manual_seed(0)
    model = build_model(variant, len(DEMO_CLASSES))
    info = {"variant": variant, "num_classes": len(DEMO_CLASSES), "class_names": list(DEMO_CLASSES)}
    return save_checkpoint(model, folder / f"random_{variant}.safetensors", info)


def load_torch(checkpoint: Path, random: bool) -> TorchModel:
    from scaseg.checkpoint import load_model

    model, info = load_model(checkpoint)
    names = tuple(info.get("class_names") or DEMO_CLASSES)
    weights = "random init (seed 0)" if random else f"trained ({checkpoint.name})"
    return TorchModel(model.eval(), names, weights)


def export_with_library(checkpoint: Path, spec: ModelSpec, folder: Path, calib_frames: int) -> dict:
    """{precision: Path or why it is missing} from export.pipeline.export_artifacts.

    verify=False: the accuracy gate is the export's job; table 1 measures mIoU itself, and an
    INT8 artifact that would fail the gate is still worth timing.
    """
    from export.pipeline import export_artifacts
    from export.request import ExportRequest

    request = ExportRequest(
        checkpoint=checkpoint, out=folder, name=f"scaseg_{spec.variant}_{spec.height}",
        precisions=LIBRARY_PRECISIONS, height=spec.height, width=spec.width,
        calib_samples=calib_frames, calib_data="generated",
        calib_cache=folder / "calibration_cache", verify=False,
        force=True,
    )  # fmt: skip
    report = export_artifacts(request)
    made = {a.precision: Path(a.path) for a in report.artifacts if a.written}
    return {p: made.get(p, f"export_artifacts did not write {p}") for p in LIBRARY_PRECISIONS}


def _with_precision(src: Path, dst: Path, precision: str, **changes) -> None:
    from dataclasses import replace

    meta = read_meta(src)
    hashes = {
        **meta.hashes,
        "source_onnx": meta.hashes.get("artifact", ""),
        "artifact": sha256_file(dst),
    }
    write_meta(dst, replace(meta, precision=precision, hashes=hashes, **changes))


def calibration_batches(pp: Preprocess, count: int) -> list[np.ndarray]:
    """Model inputs from the calibration split, through the runtime's own preprocessing."""
    return [preprocess(render_scene(s, 540, 960)[0], pp) for s in split_seeds("calib", count)]


def grouped_convs(model) -> list[str]:
    """Conv nodes with group > 1 (depthwise and strip convs): their int8 kernels gain little on
    the CPU while the Q/DQ around them costs, so the "pointwise" variant leaves them float."""
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
    ]


def quantize_cpu_int8(fp32: Path, path: Path, calib_frames: int, fmt: str = "qdq") -> Path:
    """CPU INT8 with ONNX Runtime's quantize_static: uint8 activations (asymmetric), int8
    per-channel weights. fmt: "qdq" (QuantFormat.QDQ), "qoperator" (QLinearConv etc.), or
    "pointwise" (QDQ, grouped convs left float). Attention products (MatMul of two activations)
    stay float, as in the TensorRT artifact."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from export.int8.quantize import activation_matmuls

    meta = read_meta(fp32)
    batches = calibration_batches(meta.preprocess, calib_frames)
    graph = onnx.load(str(fp32))
    excluded = activation_matmuls(graph) + (grouped_convs(graph) if fmt == "pointwise" else [])

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict | None:
            batch = next(self._it, None)
            return None if batch is None else {meta.input.name: batch}

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT logs "consider pre-processing" advice on every call
    try:
        quantize_static(
            str(fp32), str(path), Reader(),
            quant_format=QuantFormat.QOperator if fmt == "qoperator" else QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=excluded,
            op_types_to_quantize=["Conv", "MatMul", "Gemm"],
        )  # fmt: skip
    finally:
        root.setLevel(level)
    _with_precision(fp32, path, "int8", calibration={
        "method": "minmax", "samples": calib_frames, "library": "onnxruntime.quantization",
        "format": fmt, "activations": "uint8 asymmetric", "weights": "int8 per-channel",
        "float_nodes": len(excluded), "target": "CPU (ONNX Runtime); not for TensorRT",
    })  # fmt: skip
    return path
