"""The ONNX ops TensorRT's ONNX parser supports on every target version, and a check against it.

The set is the intersection of onnx-tensorrt's docs/operators.md for TensorRT 8.6 (JetPack 6.0),
10.3 (JetPack 6.1+) and 10.x/11: ops added later (Gelu, opset-20 ops) are left out on purpose so an
artifact exported here builds on TensorRT 8.6 as well. Only the default ONNX domain counts: ONNX
Runtime's com.microsoft fused ops (FusedConv, QLinearConv, ...) are not TensorRT ops.
"""

from __future__ import annotations

from collections import Counter

import onnx

from runtime.errors import UserInputError

TRT_ONNX_OPS: frozenset[str] = frozenset(
    [
        "Abs",
        "Acos",
        "Acosh",
        "Add",
        "And",
        "ArgMax",
        "ArgMin",
        "Asin",
        "Asinh",
        "Atan",
        "Atanh",
        "AveragePool",
        "BatchNormalization",
        "Cast",
        "Ceil",
        "Celu",
        "Clip",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "ConvTranspose",
        "Cos",
        "Cosh",
        "CumSum",
        "DepthToSpace",
        "DequantizeLinear",
        "Div",
        "Dropout",
        "Einsum",
        "Elu",
        "Equal",
        "Erf",
        "Exp",
        "Expand",
        "EyeLike",
        "Flatten",
        "Floor",
        "Gather",
        "GatherElements",
        "GatherND",
        "Gemm",
        "GlobalAveragePool",
        "GlobalLpPool",
        "GlobalMaxPool",
        "Greater",
        "GreaterOrEqual",
        "GridSample",
        "GRU",
        "HardSigmoid",
        "HardSwish",
        "Hardmax",
        "Identity",
        "If",
        "InstanceNormalization",
        "IsInf",
        "IsNaN",
        "LayerNormalization",
        "LeakyRelu",
        "Less",
        "LessOrEqual",
        "Log",
        "LogSoftmax",
        "Loop",
        "LpNormalization",
        "LpPool",
        "LRN",
        "LSTM",
        "MatMul",
        "Max",
        "MaxPool",
        "Mean",
        "Min",
        "Mod",
        "Mul",
        "Neg",
        "NonMaxSuppression",
        "NonZero",
        "Not",
        "OneHot",
        "Or",
        "Pad",
        "Pow",
        "PRelu",
        "QuantizeLinear",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Range",
        "Reciprocal",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceProd",
        "ReduceSum",
        "ReduceSumSquare",
        "Relu",
        "Reshape",
        "Resize",
        "ReverseSequence",
        "RNN",
        "RoiAlign",
        "Round",
        "Scan",
        "ScatterElements",
        "ScatterND",
        "Selu",
        "Shape",
        "Shrink",
        "Sigmoid",
        "Sign",
        "Sin",
        "Sinh",
        "Size",
        "Slice",
        "Softmax",
        "Softplus",
        "Softsign",
        "SpaceToDepth",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Sum",
        "Tan",
        "Tanh",
        "ThresholdedRelu",
        "Tile",
        "TopK",
        "Transpose",
        "Trilu",
        "Unsqueeze",
        "Upsample",
        "Where",
        "Xor",
    ]
)
ONNX_DOMAINS = ("", "ai.onnx")


class UnsupportedOpsError(UserInputError):
    """The graph holds ops TensorRT's ONNX parser cannot build."""


def op_counts(model: onnx.ModelProto) -> Counter:
    """Op type -> count over the graph and its subgraphs; non-ONNX domains as 'domain::Op'."""
    counts: Counter = Counter()
    _count(model.graph, counts)
    return counts


def _count(graph: onnx.GraphProto, counts: Counter) -> None:
    for node in graph.node:
        key = node.op_type if node.domain in ONNX_DOMAINS else f"{node.domain}::{node.op_type}"
        counts[key] += 1
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _count(attr.g, counts)
            for sub in attr.graphs:
                _count(sub, counts)


def unsupported_ops(model: onnx.ModelProto) -> dict[str, int]:
    return {op: n for op, n in sorted(op_counts(model).items()) if op not in TRT_ONNX_OPS}


def check_trt_ops(model: onnx.ModelProto, what: str = "graph") -> None:
    bad = unsupported_ops(model)
    if bad:
        listed = ", ".join(f"{op} x{n}" for op, n in bad.items())
        raise UnsupportedOpsError(
            f"{what} uses ops TensorRT's ONNX parser does not support on every target: {listed}; "
            "this is an exporter bug (report it with the model variant and options)"
        )
