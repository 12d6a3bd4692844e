"""Which quantized node of an INT8 Q/DQ graph costs how much accuracy, and leaving nodes in float.

A quantized node is a Conv/MatMul/Gemm with a DequantizeLinear in front of an input. Both the
ranking and the float fallback are edits of the Q/DQ graph itself (no new quantize_static run):

- `float_nodes(qdq, fp32, names)`: those nodes read the float tensors again. An activation's
  QuantizeLinear -> DequantizeLinear pair is bypassed; a quantized weight is replaced by the float
  weight of the same node in the FP32 graph that was quantized (by node name). Q/DQ nodes and
  initializers nobody reads any more are removed, so TensorRT runs those nodes in FP16/FP32.
- `rank_nodes(...)`: for every quantized node, a graph where only that node is quantized (all
  others float) runs on a few calibration frames (never gate frames) on ONNX Runtime's CPU EP,
  compared with the FP32 graph's outputs on the same frames: relative logit error
  (MSE / variance of the FP32 logits) and argmax agreement. One frame and one session at a time.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from calibration.ranges import QUANTIZED_OPS

SENSITIVITY_FRAMES = 2  # calibration frames the ranking runs on (one graph run per node each)
CHART_NODES = 30  # bars in the PNG chart


@dataclass(frozen=True)
class NodeSensitivity:
    node: str
    op: str
    rank: int  # 1 = the most harmful node
    relative_error: float  # MSE(quantized - FP32) / variance(FP32), logits
    agreement: float  # argmax agreement with the FP32 graph

    def to_dict(self) -> dict:
        return {
            "node": self.node,
            "op": self.op,
            "rank": self.rank,
            "relative_error": float(f"{self.relative_error:.6g}"),
            "agreement": round(self.agreement, 6),
        }


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: n for n in graph.node for out in n.output}


def quantized_nodes(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """(name, op) of every Conv/MatMul/Gemm reading a DequantizeLinear output, in graph order."""
    made = _producers(model.graph)
    return [
        (n.name, n.op_type)
        for n in model.graph.node
        if n.op_type in QUANTIZED_OPS
        and any(made.get(i) is not None and made[i].op_type == "DequantizeLinear" for i in n.input)
    ]


def float_nodes(
    qdq: onnx.ModelProto,
    fp32: onnx.ModelProto,
    names: Sequence[str],
    every_side_pair: bool = False,
) -> onnx.ModelProto:
    """A copy of `qdq` where the nodes `names` read float inputs (see the module docstring).

    ORT also gives the other readers of a quantized activation (a residual Add, a gating Mul)
    their own Q/DQ pair of it. Those pairs go with the activation: they are bypassed where a
    floated node reads the same tensor, and everywhere with `every_side_pair` (the ranking
    isolates one node with it)."""
    out = onnx.ModelProto()
    out.CopyFrom(qdq)
    wanted = set(names)
    if not wanted and not every_side_pair:
        return out
    graph = out.graph
    made = _producers(graph)
    quantized = {n for n, _ in quantized_nodes(qdq)}
    inits = {i.name for i in graph.initializer}
    fp32_nodes = {n.name: n for n in fp32.graph.node}
    fp32_inits = {i.name: i for i in fp32.graph.initializer}
    added: set[str] = set()
    found = set()
    floated_tensors: set[str] = set()
    for node in graph.node:
        if node.name not in wanted:
            continue
        found.add(node.name)
        for i, name in enumerate(node.input):
            dq = made.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = made.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]  # the activation (or computed weight) before its Q
                floated_tensors.add(q.input[0])
                continue
            original = _float_input(node, i, fp32_nodes, fp32_inits)
            if original.name not in inits and original.name not in added:
                graph.initializer.append(original)
                added.add(original.name)
            node.input[i] = original.name
    missing = wanted - found
    if missing:
        raise ValueError(f"no quantized node named {sorted(missing)[0]!r} in the INT8 graph")
    for node in graph.node:
        if node.name in quantized:
            continue
        for i, name in enumerate(node.input):
            dq = made.get(name)
            q = (
                made.get(dq.input[0])
                if dq is not None and dq.op_type == "DequantizeLinear"
                else None
            )
            if (
                q is not None
                and q.op_type == "QuantizeLinear"
                and (every_side_pair or q.input[0] in floated_tensors)
            ):
                node.input[i] = q.input[0]
    _prune(graph)
    return out


def _float_input(node, i: int, fp32_nodes: dict, fp32_inits: dict) -> onnx.TensorProto:
    """The FP32 graph's initializer for input i of the node of the same name."""
    twin = fp32_nodes.get(node.name)
    if twin is None or twin.op_type != node.op_type or len(twin.input) <= i:
        raise ValueError(
            f"{node.name}: no {node.op_type} of that name in the FP32 graph to take float "
            "weights from; the INT8 graph was not quantized from this FP32 graph"
        )
    weight = fp32_inits.get(twin.input[i])
    if weight is None:
        raise ValueError(f"{node.name}: input {i} of the FP32 node is not a constant weight")
    return weight


def _prune(graph: onnx.GraphProto) -> None:
    """Drop Q/DQ nodes whose outputs nobody reads, then unread initializers, until stable."""
    outputs = {o.name for o in graph.output}
    while True:
        read = {i for n in graph.node for i in n.input} | outputs
        dead = [
            k
            for k, n in enumerate(graph.node)
            if n.op_type in ("QuantizeLinear", "DequantizeLinear")
            and not any(o in read for o in n.output)
        ]
        if not dead:
            break
        for k in reversed(dead):
            del graph.node[k]
    read = {i for n in graph.node for i in n.input} | outputs
    keep = [init for init in graph.initializer if init.name in read]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


def _one_quantized(qdq: onnx.ModelProto, fp32: onnx.ModelProto):
    """(name, op, serialized graph) per quantized node: that node with its Q/DQ, all else float.

    Same graphs as float_nodes(qdq, fp32, <every other node>, every_side_pair=True), made by
    putting one node's Q/DQ into the all-float graph and taking them out again after
    serializing (copying a model per node costs more than running it at small sizes)."""
    base = float_nodes(qdq, fp32, [n for n, _ in quantized_nodes(qdq)], every_side_pair=True)
    made = _producers(qdq.graph)
    qdq_inits = {i.name: i for i in qdq.graph.initializer}
    index = {n.name: k for k, n in enumerate(base.graph.node)}
    for node in qdq.graph.node:
        if node.op_type not in QUANTIZED_OPS or node.name not in index:
            continue
        chain = []
        for name in node.input:
            dq = made.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = made.get(dq.input[0])
            chain += [q, dq] if q is not None and q.op_type == "QuantizeLinear" else [dq]
        if not chain:
            continue
        have = {i.name for i in base.graph.initializer}
        needed = {i for n in chain for i in n.input if i in qdq_inits and i not in have}
        target = base.graph.node[index[node.name]]
        saved = list(target.input)
        del target.input[:]
        target.input.extend(node.input)
        base.graph.node.extend(chain)
        base.graph.initializer.extend(qdq_inits[i] for i in sorted(needed))
        try:
            data = base.SerializeToString()
        finally:
            del base.graph.node[len(base.graph.node) - len(chain) :]
            if needed:
                del base.graph.initializer[len(base.graph.initializer) - len(needed) :]
            del target.input[:]
            target.input.extend(saved)
        yield node.name, node.op_type, data


def _session(model: onnx.ModelProto | bytes):
    """Basic optimizations only (export/ort_session.py): each node's Q/DQ run as written."""
    from export.ort_session import cpu_session

    return cpu_session(model if isinstance(model, bytes) else model.SerializeToString(), basic=True)


def _compare(ref: np.ndarray, out: np.ndarray) -> tuple[float, float, int]:
    """(squared error sum, agreeing pixels, pixels) of one frame's output against FP32's."""
    if np.issubdtype(ref.dtype, np.integer):  # fused argmax: labels only
        same = int((ref == out).sum())
        return float(ref.size - same), float(same), int(ref.size)
    err = float(np.square(out.astype(np.float64) - ref.astype(np.float64)).sum())
    same = int((ref.argmax(axis=1) == out.argmax(axis=1)).sum())
    return err, float(same), int(ref.size // ref.shape[1])


def rank_nodes(
    qdq: onnx.ModelProto,
    fp32: onnx.ModelProto,
    input_name: str,
    inputs: Sequence[np.ndarray],
    tick: Callable[[str], None] | None = None,
) -> list[NodeSensitivity]:
    """Every quantized node, the most harmful first (see the module docstring)."""
    nodes = quantized_nodes(qdq)
    if not inputs:
        raise ValueError("no calibration frames to rank INT8 nodes on")
    reference = _session(fp32)
    refs = [reference.run(None, {input_name: x})[0] for x in inputs]
    del reference
    if np.issubdtype(refs[0].dtype, np.integer):
        variance = 1.0
    else:
        stacked = np.concatenate([r.astype(np.float64).ravel() for r in refs])
        variance = float(stacked.var()) or 1.0
    values = sum(r.size for r in refs)
    scored = []
    for done, (name, op, graph) in enumerate(_one_quantized(qdq, fp32), 1):
        session = _session(graph)
        err = same = pixels = 0.0
        for x, ref in zip(inputs, refs):
            e, s, p = _compare(ref, session.run(None, {input_name: x})[0])
            err, same, pixels = err + e, same + s, pixels + p
        del session
        if np.issubdtype(refs[0].dtype, np.integer):
            rel = err / max(pixels, 1)
        else:
            rel = err / values / variance
        scored.append((rel, -same / max(pixels, 1), name, op, same / max(pixels, 1)))
        if tick is not None:
            tick(f"INT8 sensitivity: {done}/{len(nodes)} nodes on {len(inputs)} calibration frames")
    scored.sort(key=lambda s: (-s[0], -s[1]))
    return [
        NodeSensitivity(name, op, rank, rel, agree)
        for rank, (rel, _, name, op, agree) in enumerate(scored, 1)
    ]


CSV_FIELDS = ("node", "op", "rank", "relative_error", "agreement", "equalized", "left_in_float")


def write_report(
    folder: str | os.PathLike,
    ranking: Sequence[NodeSensitivity],
    equalized: Sequence[str] = (),
    left_in_float: Sequence[str] = (),
    stem: str = "int8_sensitivity",
) -> tuple[list[Path], str | None]:
    """sensitivity CSV (+ PNG bar chart of the worst nodes) in `folder`, each written atomically.

    Returns (paths written, warning or None); the warning says why there is no PNG."""
    from runtime.atomic import atomic_path, atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    eq, flt = set(equalized), set(left_in_float)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for s in ranking:
        writer.writerow(
            [
                s.node,
                s.op,
                s.rank,
                f"{s.relative_error:.6g}",
                f"{s.agreement:.6f}",
                "yes" if s.node in eq else "no",
                "yes" if s.node in flt else "no",
            ]
        )
    written = [atomic_write_text(folder / f"{stem}.csv", buf.getvalue())]
    try:
        import matplotlib
    except ImportError:
        return written, (
            f"matplotlib is not installed, so {folder / stem}.png was not drawn (the CSV was "
            "written); pip install matplotlib (or the export extra) and export again for the chart"
        )
    matplotlib.use("Agg", force=False)
    png = folder / f"{stem}.png"
    with atomic_path(png) as tmp:
        _chart(ranking[:CHART_NODES], flt, tmp)
    written.append(png)
    return written, None


def _chart(top: Sequence[NodeSensitivity], floated: set[str], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 0.28 * max(len(top), 4) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    labels = [_short(s.node) for s in reversed(top)]
    values = [max(s.relative_error, 1e-12) for s in reversed(top)]
    colours = ["tab:orange" if s.node in floated else "tab:blue" for s in reversed(top)]
    ax.barh(range(len(top)), values, color=colours)
    ax.set_yticks(range(len(top)), labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("relative logit error, only this node quantized (MSE / var of FP32 logits)")
    ax.set_title(f"INT8 sensitivity, worst {len(top)} nodes (orange: left in float)")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def _short(name: str, width: int = 60) -> str:
    name = name.removeprefix("/model/")
    return name if len(name) <= width else "..." + name[-(width - 3) :]
