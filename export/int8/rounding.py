"""Weight rounding that minimises each layer's output error on calibration frames (GPTQ/OPTQ).

Rounding every INT8 weight to its nearest grid point is optimal for the weight, not for the
layer's output: rounding errors of weights that see correlated inputs add up. With the layer's
input second moments H = E[x x^T] (x: the input patch a weight row is applied to, from the FP32
graph on calibration frames), the rows are rounded one input column at a time, and each
column's rounding error is pushed onto the columns not yet rounded, weighted by the inverse of H
(Frantar et al. 2022, "GPTQ", the closed-form successor of AdaRound's learned rounding: no
gradient steps, one Cholesky factorisation per layer).

It rewrites the int8 weights of the Q/DQ graph in place of ONNX Runtime's nearest rounding,
keeping its per-channel scales, zero points (0) and graph structure, so TensorRT, ONNX Runtime and
OpenVINO read the same kind of graph. Handled: group-1 Conv (any kernel, stride, dilation,
padding), depthwise Conv (one small H per channel) and MatMul/Gemm with a constant weight. Other
grouped convs keep the nearest rounding.

Memory: H is d x d per layer (d = input channels x kernel area, at most a few thousand here),
2 GiB for all layers together at most (layers past that keep the nearest rounding); inputs are
sampled at up to POSITIONS output positions per frame and dropped after each frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from calibration.ranges import QUANTIZED_OPS

DAMP = 0.01  # of the mean diagonal of H, added to it (GPTQ's default)
POSITIONS = 1024  # sampled output positions per layer and frame
MAX_COLUMNS = 4096  # a layer with a larger H keeps the nearest rounding
MAX_MOMENT_BYTES = 2 << 30  # all layers' H together; layers past it keep the nearest rounding


@dataclass
class _Layer:
    node: onnx.NodeProto  # the quantized node in the Q/DQ graph
    source: str  # the float activation it reads (a tensor of the FP32 graph)
    weight: np.ndarray  # float weights (FP32 graph), Conv (O, I/g, kh, kw) or MatMul (I, O)
    qweight: str  # the int8 initializer of its weight DequantizeLinear
    scale: np.ndarray  # per output channel
    kind: str  # conv | depthwise | matmul
    hessian: np.ndarray | None = None
    rows: int = 0


@dataclass(frozen=True)
class RoundingResult:
    node: str
    kind: str
    columns: int
    error_before: float  # sum over calibration inputs of ||(W_q - W) x||^2 / ||W x||^2, nearest
    error_after: float  # the same with the chosen rounding

    def to_dict(self) -> dict:
        return {
            "node": self.node,
            "kind": self.kind,
            "columns": self.columns,
            "output_error_nearest": float(f"{self.error_before:.4g}"),
            "output_error": float(f"{self.error_after:.4g}"),
        }


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _layers(qdq: onnx.ModelProto, fp32: onnx.ModelProto) -> list[_Layer]:
    made = {o: n for n in qdq.graph.node for o in n.output}
    qinits = {i.name: i for i in qdq.graph.initializer}
    fnodes = {n.name: n for n in fp32.graph.node}
    finits = {i.name: i for i in fp32.graph.initializer}
    readers: dict[str, int] = {}
    for n in qdq.graph.node:
        for name in n.input:
            readers[name] = readers.get(name, 0) + 1
    layers = []
    for node in qdq.graph.node:
        if node.op_type not in QUANTIZED_OPS or node.name not in fnodes:
            continue
        twin = fnodes[node.name]
        if len(node.input) < 2 or len(twin.input) < 2 or twin.input[1] not in finits:
            continue
        dq = made.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in qinits:
            continue
        if len(dq.input) < 2 or dq.input[1] not in qinits:
            continue
        qw = qinits[dq.input[0]]
        if qw.data_type != onnx.TensorProto.INT8 or readers.get(qw.name, 0) != 1:
            continue  # another type, or int8 weights shared with another node
        zero = qinits.get(dq.input[2]) if len(dq.input) > 2 else None
        if zero is not None and numpy_helper.to_array(zero).any():
            continue  # asymmetric weights: not ours to round
        weight = numpy_helper.to_array(finits[twin.input[1]]).astype(np.float64)
        scale = numpy_helper.to_array(qinits[dq.input[1]]).astype(np.float64).reshape(-1)
        kind = _kind(node, weight)
        if kind is None:
            continue
        out_channels = weight.shape[0] if kind != "matmul" else weight.shape[1]
        if scale.size == 1:
            scale = np.full(out_channels, scale[0])
        if scale.size != out_channels or not (scale > 0).all():
            continue
        layers.append(_Layer(node, twin.input[0], weight, qw.name, scale, kind))
    return layers


def _kind(node: onnx.NodeProto, weight: np.ndarray) -> str | None:
    if node.op_type == "Conv" and weight.ndim == 4:
        if _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            return None  # padding decided at run time: keep the nearest rounding
        group = int(_attr(node, "group", 1))
        if group == 1:
            return "conv" if weight[0].size <= MAX_COLUMNS else None
        if weight.shape[1] == 1 and group == weight.shape[0]:
            return "depthwise"
        return None
    if node.op_type in ("MatMul", "Gemm") and weight.ndim == 2:
        if node.op_type == "Gemm" and (_attr(node, "transB", 0) or _attr(node, "transA", 0)):
            return None
        return "matmul" if weight.shape[0] <= MAX_COLUMNS else None
    return None


def _patches(x: np.ndarray, node: onnx.NodeProto, kh: int, kw: int, rng) -> np.ndarray:
    """(C, P, kh*kw) input patches of one frame (N=1) at up to POSITIONS output positions."""
    strides = _attr(node, "strides", [1, 1])
    dil = _attr(node, "dilations", [1, 1])
    pads = _attr(node, "pads", [0, 0, 0, 0])
    img = np.pad(x[0], ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    c, h, w = img.shape
    oh = (h - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (w - dil[1] * (kw - 1) - 1) // strides[1] + 1
    count = min(POSITIONS, oh * ow)
    pick = rng.choice(oh * ow, size=count, replace=False) if count < oh * ow else np.arange(count)
    ys, xs = (pick // ow) * strides[0], (pick % ow) * strides[1]
    dy = np.arange(kh) * dil[0]
    dx = np.arange(kw) * dil[1]
    rows = ys[:, None, None] + dy[None, :, None]  # (P, kh, 1)
    cols = xs[:, None, None] + dx[None, None, :]  # (P, 1, kw)
    return img[:, rows, cols].reshape(c, count, kh * kw)


def _accumulate(layer: _Layer, x: np.ndarray, rng) -> None:
    """Adds one frame's sampled input moments to the layer's H (products in float32, summed in
    float64)."""
    if layer.kind == "matmul":
        flat = x.reshape(-1, x.shape[-1])
        if flat.shape[0] > POSITIONS:
            flat = flat[rng.choice(flat.shape[0], POSITIONS, replace=False)]
        flat = np.ascontiguousarray(flat, dtype=np.float32)
        h = flat.T @ flat
        layer.rows += flat.shape[0]
    else:
        kh, kw = layer.weight.shape[2:]
        p = _patches(x, layer.node, kh, kw, rng).astype(np.float32)  # (C, P, k)
        if layer.kind == "depthwise":
            h = np.matmul(p.transpose(0, 2, 1), p)
        else:
            flat = p.transpose(1, 0, 2).reshape(p.shape[1], -1)  # (P, C*k) as W's (I, kh, kw)
            h = flat.T @ flat
        layer.rows += p.shape[1]
    h = h.astype(np.float64)
    layer.hessian = h if layer.hessian is None else layer.hessian + h


def _gptq(w: np.ndarray, h: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Integer weights (O, d) for float w (O, d), input moments h (d, d), per-row scales."""
    w = w.copy()
    h = h.copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h[np.diag_indices_from(h)] += DAMP * float(np.mean(np.diag(h)))
    try:
        hinv = np.linalg.cholesky(np.linalg.inv(h)).T  # upper triangular
    except np.linalg.LinAlgError:
        return np.clip(np.round(w / scale[:, None]), -127, 127)
    q = np.zeros_like(w)
    for i in range(w.shape[1]):
        q[:, i] = np.clip(np.round(w[:, i] / scale), -127, 127)
        err = (w[:, i] - q[:, i] * scale) / hinv[i, i]
        w[:, i + 1 :] -= np.outer(err, hinv[i, i + 1 :])
    return q


def _gptq_depthwise(w: np.ndarray, h: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per channel: w (C, k), h (C, k, k), scale (C,)."""
    k = w.shape[1]
    h = h.copy()
    diag = np.einsum("ckk->ck", h)
    damp = DAMP * diag.mean(axis=1, keepdims=True)
    dead = diag == 0
    h[:, np.arange(k), np.arange(k)] += damp + dead
    w = np.where(dead, 0.0, w)
    try:
        hinv = np.linalg.cholesky(np.linalg.inv(h)).transpose(0, 2, 1)
    except np.linalg.LinAlgError:
        return np.clip(np.round(w / scale[:, None]), -127, 127)
    q = np.zeros_like(w)
    for i in range(k):
        q[:, i] = np.clip(np.round(w[:, i] / scale), -127, 127)
        err = (w[:, i] - q[:, i] * scale) / hinv[:, i, i]
        w[:, i + 1 :] -= err[:, None] * hinv[:, i, i + 1 :]
    return q


def _moment_bytes(layer: _Layer) -> int:
    if layer.kind == "depthwise":
        k = layer.weight.shape[2] * layer.weight.shape[3]
        return 8 * layer.weight.shape[0] * k * k
    d = layer.weight.shape[0] if layer.kind == "matmul" else layer.weight[0].size
    return 8 * d * d


def _within_budget(layers: list[_Layer]) -> list[_Layer]:
    """The layers (graph order) whose input moments fit MAX_MOMENT_BYTES together."""
    kept, used = [], 0
    for layer in layers:
        size = _moment_bytes(layer)
        if used + size <= MAX_MOMENT_BYTES:
            kept.append(layer)
            used += size
    return kept


def _output_error(w: np.ndarray, q: np.ndarray, h: np.ndarray, scale: np.ndarray) -> float:
    """tr(D H D^T) / tr(W H W^T), D = dequantized - float: relative output error energy."""
    d = q * scale[:, None] - w
    if h.ndim == 3:
        num = float((np.matmul(h, d[:, :, None])[:, :, 0] * d).sum())
        den = float((np.matmul(h, w[:, :, None])[:, :, 0] * w).sum())
    else:
        num = float(((d @ h) * d).sum())
        den = float(((w @ h) * w).sum())
    return float(num / den) if den > 0 else 0.0


def round_weights(
    qdq: onnx.ModelProto,
    fp32: onnx.ModelProto,
    input_name: str,
    inputs: Iterable[np.ndarray],
    seed: int = 0,
) -> tuple[onnx.ModelProto, list[RoundingResult]]:
    """A copy of `qdq` with GPTQ-rounded int8 weights; layers only change where the output
    error on the calibration inputs goes down."""
    from export.ort_session import cpu_session

    layers = _within_budget(_layers(qdq, fp32))
    if not layers:
        return qdq, []
    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    graph_inputs = {i.name for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    fetch = sorted({la.source for la in layers} - graph_inputs)
    for name in fetch:
        if name not in outputs:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    session = cpu_session(model.SerializeToString())
    rng = np.random.default_rng(seed)
    for x in inputs:
        values = dict(zip(fetch, session.run(fetch, {input_name: x})))
        for layer in layers:
            _accumulate(layer, x if layer.source in graph_inputs else values[layer.source], rng)
        del values
    out = onnx.ModelProto()
    out.CopyFrom(qdq)
    inits = {i.name: i for i in out.graph.initializer}
    results = []
    for layer in layers:
        result = _round_layer(layer, inits[layer.qweight])
        if result is not None:
            results.append(result)
    return out, results


def _round_layer(layer: _Layer, target: onnx.TensorProto) -> RoundingResult | None:
    current = numpy_helper.to_array(target)
    if layer.kind == "matmul":
        w = layer.weight.T  # (O, I)
        nearest = current.T.astype(np.float64)
    else:
        w = layer.weight.reshape(layer.weight.shape[0], -1)
        nearest = current.reshape(current.shape[0], -1).astype(np.float64)
    h = layer.hessian
    if layer.kind == "depthwise":
        q = _gptq_depthwise(w, h, layer.scale)
    else:
        q = _gptq(w, h, layer.scale)
    before = _output_error(w, nearest, h, layer.scale)
    after = _output_error(w, q, h, layer.scale)
    if not after < before:
        return None
    values = (q.T if layer.kind == "matmul" else q.reshape(current.shape)).astype(np.int8)
    target.CopyFrom(numpy_helper.from_array(values.reshape(current.shape), target.name))
    return RoundingResult(layer.node.name, layer.kind, w.shape[1], before, after)
