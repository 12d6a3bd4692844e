"""Cross-layer equalization of producer -> Conv pairs in a float ONNX graph, where it is exact.

A few channels far larger than the rest in front of a quantized op crush every other channel of
that tensor under a per-tensor INT8 activation scale. When such a tensor is the output of a
per-channel linear op read only by one Conv, the pair can be rescaled per channel without changing
what the graph computes: producer output channel c divided by s_c, consumer input channel c
multiplied by s_c (data-free quantization, Nagel et al. 2019). Producers: a Conv of any group
(output channel c is weights[c] and bias[c], whatever it reads: a 1x1 conv, a depthwise conv, a
strip conv) and an inference BatchNormalization (channel c is scale[c] * x_hat + B[c]; its
per-channel gain scale[c] / sqrt(var[c] + eps) stands for the weight range). Consumers: a group-1
Conv (input channel c is weights[:, c]) or a depthwise Conv (weights[c]). With
s_c = sqrt(r1_c * r2_c) / r2_c, from the per-channel weight ranges r1 (producer, output channel
c) and r2 (consumer, input channel c), both become sqrt(r1_c * r2_c), and the intermediate
tensor's channels are brought back towards each other. Zero padding in the consumer commutes
with the scaling, so the rescaled graph is the same function up to float rounding.

Pairs are only rescaled where the producer's channel ranges show an outlier (largest over
median range at least `min_ratio`), so a model without outliers is left untouched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx
from onnx import numpy_helper

DEFAULT_MIN_RATIO = 20.0  # largest / median producer channel range; trained convs sit at 1-3


@dataclass(frozen=True)
class ConvPair:
    """A producer Conv whose output feeds exactly one consumer Conv and nothing else."""

    producer: str
    consumer: str
    kind: str  # depthwise | regular (the consumer)
    channels: int
    ratio: float  # largest / median producer output-channel weight range
    producer_op: str = "Conv"  # Conv | BatchNormalization


@dataclass(frozen=True)
class EqualizedPair:
    producer: str
    consumer: str
    kind: str
    channels: int
    ratio_before: float
    ratio_after: float
    producer_op: str = "Conv"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ratio_before"] = round(self.ratio_before, 2)
        out["ratio_after"] = round(self.ratio_after, 2)
        return out


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _uses(graph: onnx.GraphProto) -> dict[str, int]:
    """How many node inputs (plus graph outputs) read each tensor name."""
    count: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            if name:
                count[name] = count.get(name, 0) + 1
    for out in graph.output:
        count[out.name] = count.get(out.name, 0) + 1
    return count


def _ranges(w: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(np.abs(w), axis, 0)
    return moved.reshape(moved.shape[0], -1).max(axis=1)


def _ratio(r: np.ndarray) -> float:
    median = float(np.median(r))
    return float(r.max()) / median if median > 0 else float("inf")


def _producer_ranges(node: onnx.NodeProto, inits: dict, uses: dict) -> np.ndarray | None:
    """Per-output-channel weight ranges of a producer that can be rescaled exactly, else None.

    Its parameters must be constants no other node reads (rescaling them would change it too)."""
    if node.op_type == "Conv":
        params = list(node.input[1:3])
    elif node.op_type == "BatchNormalization" and len(node.output) == 1:
        params = list(node.input[1:5])  # scale, B, mean, var
        if len(params) != 4:
            return None
    else:
        return None
    if not params or any(p and (p not in inits or uses.get(p, 0) != 1) for p in params):
        return None
    if node.op_type == "Conv":
        return _ranges(numpy_helper.to_array(inits[params[0]]), 0)
    return np.abs(_bn_gain(node, inits))


def _bn_gain(node: onnx.NodeProto, inits: dict) -> np.ndarray:
    scale, var = (numpy_helper.to_array(inits[node.input[i]]).astype(np.float64) for i in (1, 4))
    return scale / np.sqrt(var + _attr(node, "epsilon", 1e-5))


def find_pairs(model: onnx.ModelProto) -> list[ConvPair]:
    """Every producer -> Conv pair that can be rescaled exactly.

    The producer is a Conv (any group) or a BatchNormalization with constant parameters; its
    output is not a graph output and has exactly one reader: input 0 of a Conv with a constant
    weight that is either depthwise (group == channels, one weight per channel) or group 1."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    uses = _uses(graph)
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    pairs = []
    for node in graph.node:
        r1 = _producer_ranges(node, inits, uses)
        if r1 is None:
            continue
        out = node.output[0]
        if uses.get(out, 0) != 1 or len(readers.get(out, [])) != 1:
            continue
        consumer = readers[out][0]
        if consumer.op_type != "Conv" or list(consumer.input).index(out) != 0:
            continue
        if len(consumer.input) < 2 or consumer.input[1] not in inits:
            continue
        if uses.get(consumer.input[1], 0) != 1:
            continue
        w2 = numpy_helper.to_array(inits[consumer.input[1]])
        channels = len(r1)
        group = _attr(consumer, "group", 1)
        if group == 1 and w2.shape[1] == channels:
            kind = "regular"
        elif group == channels and w2.shape[0] == channels and w2.shape[1] == 1:
            kind = "depthwise"
        else:
            continue
        pairs.append(ConvPair(node.name, consumer.name, kind, channels, _ratio(r1), node.op_type))
    return pairs


def equalize(
    model: onnx.ModelProto, min_ratio: float = DEFAULT_MIN_RATIO
) -> tuple[onnx.ModelProto, list[EqualizedPair]]:
    """A copy of `model` with every outlier pair (see find_pairs) rescaled; the pairs changed.

    Returns the input model itself (not a copy) and [] where no pair reaches `min_ratio`."""
    candidates = [p for p in find_pairs(model) if p.ratio >= min_ratio]
    if not candidates:
        return model, []
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    nodes = {n.name: n for n in graph.node}
    uses = _uses(graph)
    done = []
    for pair in candidates:
        producer, consumer = nodes[pair.producer], nodes[pair.consumer]
        w2 = numpy_helper.to_array(inits[consumer.input[1]]).astype(np.float64)
        axis2 = 0 if pair.kind == "depthwise" else 1
        r1, r2 = _producer_ranges(producer, inits, uses), _ranges(w2, axis2)
        s = np.ones_like(r1, dtype=np.float64)
        ok = (r1 > 0) & (r2 > 0)
        s[ok] = np.sqrt(r1[ok] * r2[ok]) / r2[ok]
        # Producer channel c divided by s_c: a Conv's weights[c] and bias[c]; a BatchNormalization's
        # scale[c] and B[c] (its mean and var act before the scale and stay as they are).
        for i in (1, 2):
            if len(producer.input) > i and producer.input[i]:
                p = numpy_helper.to_array(inits[producer.input[i]]).astype(np.float64)
                _replace(inits[producer.input[i]], p / s.reshape((-1,) + (1,) * (p.ndim - 1)))
        shape2 = [1] * w2.ndim
        shape2[axis2] = -1
        _replace(inits[consumer.input[1]], w2 * s.reshape(shape2))
        after = _ratio(r1 / s)
        done.append(
            EqualizedPair(
                pair.producer,
                pair.consumer,
                pair.kind,
                pair.channels,
                pair.ratio,
                after,
                pair.producer_op,
            )
        )
    return out, done


def _replace(tensor: onnx.TensorProto, values: np.ndarray) -> None:
    dtype = numpy_helper.to_array(tensor).dtype
    tensor.CopyFrom(numpy_helper.from_array(values.astype(dtype), tensor.name))


def max_relative_diff(reference: list[np.ndarray], candidate: list[np.ndarray]) -> float:
    """Largest |candidate - reference| over the largest |reference|, over all outputs given."""
    scale = max(float(np.abs(r).max()) for r in reference) or 1.0
    diff = max(
        float(np.abs(c.astype(np.float64) - r.astype(np.float64)).max())
        for r, c in zip(reference, candidate, strict=True)
    )
    return diff / scale
