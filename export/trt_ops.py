"""The ONNX ops TensorRT's ONNX parser supports, per TensorRT version, and a check against them.

OPS_SINCE maps each op to the oldest TensorRT whose parser supports it, read from onnx-tensorrt's
docs/operators.md of each release branch (release/8.6-GA, release/10.0-GA and later): 8.6 is the
oldest TensorRT we build on (JetPack 6.0). TRT_ONNX_OPS, the ops every target supports, is what
the exporter checks, so an artifact exported here builds on TensorRT 8.6 as well; ops added later
(Hardmax, Gelu, Mish, CastLike: "N" or absent in 8.6-GA's table, "Y" from 10.0-GA) are accepted
only by `supported_ops(version)` for a newer target. Only the default ONNX domain counts: ONNX
Runtime's com.microsoft fused ops (FusedConv, QLinearConv, ...) are not TensorRT ops.
"""

from __future__ import annotations

from collections import Counter

import onnx

from runtime.errors import UserInputError

OLDEST_TARGET = (8, 6)
# Ops the parser gained after 8.6, with the first TensorRT that lists them as supported.
ADDED_AFTER_8_6: dict[str, tuple[int, int]] = {
    "CastLike": (10, 0),
    "Gelu": (10, 0),
    "Hardmax": (10, 0),  # release/8.6-GA's operators.md: "Hardmax | N"
    "Mish": (10, 0),
}

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
OPS_SINCE: dict[str, tuple[int, int]] = {
    **{op: OLDEST_TARGET for op in TRT_ONNX_OPS},
    **ADDED_AFTER_8_6,
}
ONNX_DOMAINS = ("", "ai.onnx")


def supported_ops(version: tuple[int, ...] | str | None = None) -> frozenset[str]:
    """The ops TensorRT `version` ("10.3.0", (10, 3)) parses; None: every target (8.6 and up)."""
    if version is None:
        return TRT_ONNX_OPS
    if isinstance(version, str):
        from runtime.trt_compat import parse_version

        version = parse_version(version)
    return frozenset(op for op, since in OPS_SINCE.items() if tuple(version[:2]) >= since)


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


def unsupported_ops(model: onnx.ModelProto, version=None) -> dict[str, int]:
    """Ops of `model` that TensorRT `version` cannot parse (None: not every target can)."""
    ops = supported_ops(version)
    return {op: n for op, n in sorted(op_counts(model).items()) if op not in ops}


def check_trt_ops(model: onnx.ModelProto, what: str = "graph") -> None:
    bad = unsupported_ops(model)
    if bad:
        listed = ", ".join(f"{op} x{n}" for op, n in bad.items())
        raise UnsupportedOpsError(
            f"{what} uses ops TensorRT's ONNX parser does not support on every target: {listed}; "
            "this is an exporter bug (report it with the model variant and options)"
        )
