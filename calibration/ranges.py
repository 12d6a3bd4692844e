"""Activation ranges for INT8: our own `mse` (the default), and ONNX Runtime's calibrators
(minmax, entropy, percentile).

mse: every activation a quantized node reads or writes gets a streaming |x| histogram
(calibration/histogram.py) over the calibration frames, one frame at a time, and the symmetric
range with the least expected quantize-dequantize error. On real street frames it kept more of
FP32's labels than minmax, percentile or entropy (BENCHMARKS.md, "INT8 methods").

Two ORT behaviours this module works around (onnxruntime 1.17-1.32):
- quantize_static forwards no bin count to its calibrator, so "entropy" there runs with 128 bins
  and 128 quantized bins: the KL search has nothing to choose from and returns the min-max range.
  We create the calibrator ourselves with 2048 bins (TensorRT's entropy calibrator's count).
- the histogram calibrators keep every activation of every sample fed in one collect_data call
  (32 frames at 512x512 were killed at 24 GiB). Feeding ONE sample per call merges it into the
  histograms and frees it, so memory stays at one sample's activations whatever the sample count.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

from calibration.histogram import DEFAULT_BINS, AbsHistogram, mse_threshold
from runtime.deps import require
from runtime.errors import UserInputError

METHODS = ("mse", "minmax", "entropy", "percentile")
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


@dataclass(frozen=True)
class CalibrationSettings:
    method: str = "mse"
    num_bins: int = 2048  # histogram methods
    num_quantized_bins: int = 128  # entropy: 2**(8-1) levels on each side of a symmetric range
    percentile: float = 99.99
    symmetric: bool = True  # TensorRT's Q/DQ are symmetric (zero point 0)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UserInputError(
                f"calibration method must be one of {', '.join(METHODS)}, got {self.method!r}"
            )
        if self.num_bins < self.num_quantized_bins:
            raise UserInputError(
                f"num_bins ({self.num_bins}) must be >= num_quantized_bins ({self.num_quantized_bins})"
            )
        if not 50.0 < self.percentile <= 100.0:
            raise UserInputError(f"percentile must be in (50, 100], got {self.percentile}")

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.method == "minmax":  # bins and percentile do not affect min-max ranges
            data = {"method": "minmax", "symmetric": self.symmetric}
        elif self.method == "mse":
            data = {"method": "mse", "num_bins": self.num_bins, "symmetric": True}
        elif self.method == "entropy":
            data.pop("percentile")
        else:
            data.pop("num_quantized_bins")
        return data


def ort_method(name: str):
    q = require("onnxruntime.quantization", "to calibrate INT8 models")
    if name == "mse":  # our own ranges; ORT only reads them from the cache file
        name = "minmax"
    return {
        "minmax": q.CalibrationMethod.MinMax,
        "entropy": q.CalibrationMethod.Entropy,
        "percentile": q.CalibrationMethod.Percentile,
    }[name]


def quantized_tensors(
    model: onnx.ModelProto, op_types: tuple[str, ...] = QUANTIZED_OPS
) -> list[str]:
    """Activations read or written by `op_types` nodes (weights and constants excluded), in
    graph order: the tensors ONNX Runtime's quantizer asks ranges for."""
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    seen: dict[str, None] = {}
    for node in model.graph.node:
        if node.op_type in op_types:
            for name in [*node.input, *node.output]:
                if name and name not in constants:
                    seen.setdefault(name)
    return list(seen)


def collect_histograms(
    model_path: str | os.PathLike,
    input_name: str,
    inputs: Iterable[np.ndarray],
    bins: int = DEFAULT_BINS,
    op_types: tuple[str, ...] = QUANTIZED_OPS,
) -> dict[str, AbsHistogram]:
    """{tensor: |x| histogram} of every activation a quantized node reads or writes, one frame
    at a time.

    The graph runs once per frame with those tensors as extra outputs; each frame's activations
    are folded into the histograms and dropped before the next frame runs."""
    ort = require("onnxruntime", "to calibrate INT8 models")
    model = onnx.load(str(model_path))
    names = quantized_tensors(model, op_types)
    outputs = {o.name for o in model.graph.output}
    graph_inputs = {i.name for i in model.graph.input}
    for name in names:
        if name not in outputs and name not in graph_inputs:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    fetched = [n for n in names if n not in graph_inputs]
    hists = {n: AbsHistogram.empty(bins) for n in names}
    fed = 0
    for x in inputs:
        values = dict(zip(fetched, session.run(fetched, {input_name: x})))
        for name in names:
            data = x if name in graph_inputs else values.pop(name)
            if np.issubdtype(data.dtype, np.floating):
                hists[name].add(data)
        del values
        fed += 1
    if not fed:
        raise UserInputError("no calibration samples were given")
    return hists


def mse_ranges(hists: dict[str, AbsHistogram]) -> dict[str, tuple[float, float]]:
    """Symmetric (-T, T) per tensor with T minimising the INT8 quantization error."""
    ranges = {}
    for name, hist in hists.items():
        t = mse_threshold(hist)
        ranges[name] = (-t, t)
    return ranges


def compute_ranges(
    model_path: str | os.PathLike,
    input_name: str,
    inputs: Iterable[np.ndarray],
    settings: CalibrationSettings,
    op_types: tuple[str, ...] = QUANTIZED_OPS,
) -> dict[str, tuple[float, float]]:
    """{tensor name: (low, high)} for the tensors feeding and leaving `op_types` nodes
    (feeding only, for "mse")."""
    if settings.method == "mse":
        hists = collect_histograms(model_path, input_name, inputs, settings.num_bins, op_types)
        return mse_ranges(hists)
    require("onnxruntime.quantization", "to calibrate INT8 models")
    from onnxruntime.quantization.calibrate import create_calibrator

    options = {"symmetric": settings.symmetric}
    if settings.method != "minmax":
        options.update(num_bins=settings.num_bins, percentile=settings.percentile)
        options["num_quantized_bins"] = settings.num_quantized_bins
    with tempfile.TemporaryDirectory(prefix="scaseg-calib-") as tmp, _quiet():
        calibrator = create_calibrator(
            Path(model_path),
            list(op_types),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=ort_method(settings.method),
            extra_options=options,
        )
        fed = 0
        for x in inputs:
            calibrator.collect_data(
                _OneSample(input_name, x)
            )  # one sample per call: bounded memory
            fed += 1
        if not fed:
            raise UserInputError("no calibration samples were given")
        tensors = calibrator.compute_data()
    return {name: _range(td) for name, td in tensors.data.items()}


def _range(td) -> tuple[float, float]:
    lo, hi = td.range_value
    return float(np.asarray(lo).min()), float(np.asarray(hi).max())


def tensors_data(ranges: dict[str, tuple[float, float]], method: str):
    """Our plain ranges -> ORT's TensorsData (what quantize_static reads from its cache file)."""
    from onnxruntime.quantization.calibrate import TensorData, TensorsData

    data = {
        name: TensorData(lowest=np.float32(lo), highest=np.float32(hi))
        for name, (lo, hi) in ranges.items()
    }
    return TensorsData(ort_method(method), data)


class _OneSample:
    """A CalibrationDataReader over one input (ORT's protocol: get_next() until None)."""

    def __init__(self, name: str, x: np.ndarray) -> None:
        self._item: dict | None = {name: x}

    def get_next(self) -> dict | None:
        item, self._item = self._item, None
        return item

    def __len__(self) -> int:
        return 1


@contextlib.contextmanager
def _quiet():
    """ORT's histogram collector prints progress lines; library code stays silent."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
