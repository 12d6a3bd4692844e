"""The INT8 variant from the FP32 graph, before the gate: what `scaseg-export --precision int8`
runs between the FP32 export and the accuracy gate.

1. Constant-node weights become initializers (export/int8/quantize.py), so every weight is
   quantized per output channel.
2. With `--int8-fallback auto`, Conv pairs with outlier channels are equalized
   (export/int8/equalize.py), kept only where the FP32 outputs stay the same.
3. Activation ranges (calibration/ranges.py; `mse` by default), cached under a key of
   everything that determines them (calibration/cache.py).
4. ONNX Runtime's quantizer writes the Q/DQ graph in TensorRT's form; Q/DQ pairs in front of
   readers that are not quantized are bypassed.
5. Weights rounded to minimise each layer's output error (export/int8/rounding.py, `gptq`), or
   left at the nearest grid point (`nearest`).

Nothing here prints: `say` starts a stage line, `tick` updates it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from calibration.cache import CacheKey, CalibrationCache
from calibration.ranges import compute_ranges
from calibration.sources import CalibrationData, model_inputs
from export.int8.quantize import constant_weights_to_initializers, quantize_int8, side_pairs
from export.int8.records import CalibrationRecord
from export.int8.repair import Int8Work, equalize_graph
from export.int8.rounding import round_weights
from export.int8.sensitivity import SENSITIVITY_FRAMES, float_nodes
from export.trt_ops import check_trt_ops
from runtime.meta import sha256_file
from runtime.preprocess import Preprocess
from runtime.sampling import evenly_spaced
from runtime.slide import Inference

ROUNDING_FRAMES = 4  # calibration frames GPTQ collects input moments on (8 measured no better)
ROUNDING_METHODS = ("gptq", "nearest")

Say = Callable[[str], None]


@dataclass
class Int8Stage:
    path: Path  # the Q/DQ graph to gate
    record: CalibrationRecord
    work: Int8Work  # what the repairs after the gate start from
    warnings: list[str]


def _frames(
    calib: CalibrationData, pp: Preprocess, fused: bool, count: int, inference: Inference
) -> list[np.ndarray]:
    """Model inputs of `count` evenly spaced calibration frames (only those are preprocessed:
    float inputs of every frame at once would be 4x the decoded frames' memory); with slide
    inference, every window of those frames."""
    keep = evenly_spaced(calib.samples, count)
    return list(model_inputs(calib, pp, fused, inference, frames=keep))


def _prepared(fp32: Path, tmp: Path) -> tuple[Path, int]:
    model = onnx.load(str(fp32))
    moved = constant_weights_to_initializers(model)
    if not moved:
        return fp32, 0
    path = tmp / "model.fp32.weights.onnx"
    onnx.save(model, str(path))
    return path, moved


def stage_int8(
    fp32: Path,
    input_name: str,
    pp: Preprocess,
    calib: CalibrationData,
    request,
    tmp: Path,
    say: Say,
    inference: Inference | None = None,
) -> Int8Stage:
    """Calibrate, quantize and round (see the module docstring). `inference`: slide windows
    are calibrated as the runtime cuts them."""
    import onnxruntime

    inference = inference or Inference()
    settings = request.calibration
    warnings: list[str] = []
    source, moved = _prepared(fp32, tmp)
    frames = _frames(calib, pp, request.fuse_preprocess, SENSITIVITY_FRAMES, inference)
    calibrated, equalized, diff = source, [], None
    if request.int8_fallback == "auto":
        say("INT8: looking for Conv pairs with outlier channels to equalize")
        calibrated, equalized, diff, warning = equalize_graph(
            source, input_name, frames, tmp / "model.fp32.equalized.onnx"
        )
        if warning:
            warnings.append(warning)
    key = CacheKey(
        model_sha256=sha256_file(calibrated),
        preprocess=pp.to_dict()
        if not inference.slide
        else {**pp.to_dict(), "inference": inference.to_dict()},
        data_sha256=calib.sha256,
        method=settings.method,
        samples=calib.samples,
        settings={
            **settings.to_dict(),
            "library": f"onnxruntime {onnxruntime.__version__}",
            **(
                {"equalized": [f"{p.producer} -> {p.consumer}" for p in equalized]}
                if equalized
                else {}
            ),
        },
    )
    cache = CalibrationCache(request.calib_cache)
    ranges = cache.load(key)
    hit = ranges is not None
    say(f"calibrating INT8 ({settings.method}, {calib.samples} samples)")
    if ranges is None:
        inputs = model_inputs(calib, pp, request.fuse_preprocess, inference)
        ranges = compute_ranges(calibrated, input_name, inputs, settings)
        cache.store(key, ranges)
    path = tmp / "model.int8.onnx"
    excluded = quantize_int8(calibrated, path, ranges, settings.method)
    qdq, reference = onnx.load(str(path)), onnx.load(str(calibrated))
    removed = side_pairs(qdq)
    if removed:
        qdq = float_nodes(qdq, reference, [], every_side_pair=True)
    record = CalibrationRecord(
        method=settings.method,
        samples=calib.samples,
        library=f"onnxruntime {onnxruntime.__version__} (quantize_static, QDQ)",
        data=calib.description,
        settings=settings.to_dict(),
        cache_key=key.digest(),
        cache_hit=hit,
        float_matmuls=list(excluded),
        equalized=equalized,
        constant_weights=moved,
        side_pairs_removed=removed,
        rounding=request.int8_rounding,
    )
    if request.int8_rounding == "gptq":
        say(f"INT8: rounding weights to the least output error ({ROUNDING_FRAMES} frames)")
        rounding_inputs = _frames(calib, pp, request.fuse_preprocess, ROUNDING_FRAMES, inference)
        qdq, record.rounded = round_weights(qdq, reference, input_name, rounding_inputs)
        record.rounding_frames = len(rounding_inputs)
    check_trt_ops(qdq, "the INT8 graph")
    onnx.save(qdq, str(path))
    work = Int8Work(calibrated, tmp / "model.int8.qdq.onnx", input_name, frames, equalized, diff)
    shutil.copyfile(path, work.qdq)
    return Int8Stage(path, record, work, warnings)
