"""FP32 ONNX + activation ranges -> explicit Q/DQ INT8 ONNX in the form TensorRT builds.

ONNX Runtime's QDQ quantizer, configured for TensorRT: symmetric int8 activations and weights
(zero point 0), per-channel weights (Conv axis 0, MatMul axis 1 = output channels), Q/DQ on the
inputs of quantized ops only (as TensorRT/ModelOpt place them), unquantized
biases (TensorRT has no int32 DequantizeLinear), a dedicated Q/DQ pair per consumer (TensorRT
cannot share one pair between nodes). Only Conv/MatMul/Gemm with a weight are quantized; the
attention products (MatMul of two activations), softmax and norms stay float.

On ONNX Runtime's CPU EP this graph is SLOWER than FP32 (int8 activations have no fast CPU
kernels; uint8 activations would be faster there but TensorRT wants int8). It is a TensorRT
artifact first; the CPU latency is measured and reported, not hidden.
"""

from __future__ import annotations

import inspect
import logging
import os
import tempfile
from pathlib import Path

import onnx

from calibration.ranges import QUANTIZED_OPS, tensors_data
from runtime.deps import MissingDependencyError, require

TRT_EXTRA_OPTIONS = {
    "ActivationSymmetric": True,
    "WeightSymmetric": True,
    "QuantizeBias": False,
    "DedicatedQDQPair": True,
    "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
    # TensorRT-style placement: Q/DQ on the INPUTS of Conv/MatMul/Gemm only. Quantizing their
    # outputs too (ORT's default) puts Q/DQ in front of every residual Add/Mul/norm, which
    # TensorRT must then run as extra int8<->float reformats (and ORT CPU as extra ops).
    "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS),
}


def activation_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMul nodes whose two inputs are both activations (q@k, attn@v): kept in float."""
    weights = {i.name for i in model.graph.initializer}
    weights |= {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul" and not any(i in weights for i in n.input)
    ]


def quantize_int8(
    float_path: str | os.PathLike,
    out_path: str | os.PathLike,
    ranges: dict[str, tuple[float, float]],
    method: str,
) -> list[str]:
    """Write the Q/DQ model to out_path; returns the names of the MatMuls left in float."""
    q = require("onnxruntime.quantization", "to quantize INT8 models")
    if "calibration_cache_path" not in inspect.signature(q.quantize_static).parameters:
        import onnxruntime

        raise MissingDependencyError(
            f"onnxruntime {onnxruntime.__version__} cannot quantize from precomputed ranges "
            "(quantize_static has no calibration_cache_path); upgrade onnxruntime (1.32 works)"
        )
    model = onnx.load(str(float_path))
    excluded = activation_matmuls(model)
    # quantize_static logs "consider pre-processing" at WARNING on the root logger; our graph is
    # already simplified and shape-inferred, and library code must not print.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        _quantize(q, float_path, out_path, ranges, method, excluded)
    finally:
        logging.disable(previous)
    return excluded


def _quantize(q, float_path, out_path, ranges, method: str, excluded: list[str]) -> None:
    from onnxruntime.quantization.calibrate import save_tensors_data

    with tempfile.TemporaryDirectory(prefix="scaseg-int8-") as tmp:
        cache = Path(tmp) / "ranges.json"
        save_tensors_data(tensors_data(ranges, method), cache)
        q.quantize_static(
            str(float_path),
            str(out_path),
            calibration_data_reader=None,  # ranges come from our own calibration (cached, keyed)
            quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=True,
            reduce_range=False,
            activation_type=q.QuantType.QInt8,
            weight_type=q.QuantType.QInt8,
            nodes_to_exclude=excluded,
            calibrate_method=tensors_data({}, method).calibration_method,
            extra_options=dict(TRT_EXTRA_OPTIONS),
            calibration_cache_path=str(cache),
        )


def constant_weights_to_initializers(model: onnx.ModelProto) -> int:
    """Turns Constant nodes read by Conv/MatMul/Gemm into initializers, in place; returns how
    many. The exporter leaves some folded weights (a layer scale times a conv weight) as
    Constant nodes, and ONNX Runtime's quantizer takes a Constant's output for an activation:
    it would calibrate that weight as an activation and quantize it per tensor, not per output
    channel like every other weight."""
    readers = {i for n in model.graph.node if n.op_type in QUANTIZED_OPS for i in n.input[1:]}
    keep, moved = [], 0
    for node in model.graph.node:
        value = node.attribute[0] if len(node.attribute) == 1 else None
        if (
            node.op_type == "Constant"
            and value is not None
            and value.name == "value"
            and node.output[0] in readers
        ):
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
            moved += 1
            continue
        keep.append(node)
    if moved:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return moved


def side_pairs(model: onnx.ModelProto) -> int:
    """Q/DQ pairs feeding nodes that are not quantized (a residual Add, a gating Mul).

    ONNX Runtime's dedicated-pair mode gives every reader of a quantized activation its own pair,
    so those readers get the activation rounded to INT8 for nothing: they compute in float, and
    with the Conv outputs unquantized TensorRT has no INT8 fusion for them to enable. Measured on
    real frames, bypassing them gains about 0.1 point of agreement and 0.4 of mIoU."""
    made = {o: n for n in model.graph.node for o in n.output}
    count = 0
    for node in model.graph.node:
        if node.op_type in (*QUANTIZED_OPS, "QuantizeLinear", "DequantizeLinear"):
            continue
        for name in node.input:
            dq = made.get(name)
            if dq is not None and dq.op_type == "DequantizeLinear":
                q = made.get(dq.input[0])
                count += q is not None and q.op_type == "QuantizeLinear"
    return count
