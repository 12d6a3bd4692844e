"""INT8 that passes its gate by itself: equalization before calibration, float fallback after.

`--int8-fallback auto` (the default) repairs in order of cost:

1. cross-layer equalization of Conv pairs whose producer has outlier channels (export/int8/equalize.py),
   applied to the FP32 graph before calibration and kept only if the FP32 outputs stay the same
   (ONNX Runtime FP32 on two calibration frames, max |diff| / max |output| <= 1e-4);
2. the gate; if INT8 still misses its budget,
3. the most sensitive quantized nodes (export/int8/sensitivity.py, ranked on calibration frames)
   are left in float, fewest first: k = 1, 2, 4, ... up to the cap, then bisected down to the
   smallest k that passes. Each try re-checks the INT8 variant only against the kept PyTorch
   reference. Past the cap the variant fails as without repairs.

`--int8-fallback off` does none of this. Nothing here prints: progress goes to callbacks and
findings into the record (sidecar and report).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from export.int8.equalize import EqualizedPair, equalize, max_relative_diff
from runtime.sampling import evenly_spaced

EQUALIZE_CHECK_FRAMES = 2
EQUALIZE_MAX_RELATIVE_DIFF = 1e-4  # of the largest FP32 output value
DEFAULT_FLOAT_FRACTION = 0.10  # of the quantized nodes, the default --int8-max-float-nodes
WORST_NODES_SHOWN = 5


@dataclass
class Int8Work:
    """What the INT8 stage made, kept for the repairs after the gate."""

    calibrated: Path  # the FP32 graph that was calibrated and quantized (equalized or not)
    qdq: Path  # quantize_int8's graph before any node was left in float
    input_name: str
    frames: list[np.ndarray]  # model inputs of a few calibration frames (never gate frames)
    equalized: list[EqualizedPair] = field(default_factory=list)
    equalize_diff: float | None = None  # max relative FP32 difference of the kept equalization


def _fp32_outputs(model: onnx.ModelProto, input_name: str, frames: Sequence[np.ndarray]):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return [out for x in frames for out in session.run(None, {input_name: x})]


def equalize_graph(
    fp32: Path, input_name: str, frames: Sequence[np.ndarray], out: Path
) -> tuple[Path, list[EqualizedPair], float | None, str | None]:
    """(graph to calibrate, pairs equalized, max relative FP32 diff, warning or None).

    The FP32 graph itself comes back, untouched, when no pair has outlier channels or when the
    equalized graph's outputs differ (then with a warning saying by how much)."""
    model = onnx.load(str(fp32))
    equalized, pairs = equalize(model)
    if not pairs:
        return fp32, [], None, None
    checked = [frames[i] for i in evenly_spaced(len(frames), EQUALIZE_CHECK_FRAMES)]
    before = _fp32_outputs(model, input_name, checked)
    after = _fp32_outputs(equalized, input_name, checked)
    if any(np.issubdtype(b.dtype, np.integer) for b in before):  # fused argmax: labels only
        diff = max(float((a != b).mean()) for a, b in zip(after, before))
    else:
        diff = max_relative_diff(before, after)
    if not diff <= EQUALIZE_MAX_RELATIVE_DIFF:
        return (
            fp32,
            [],
            diff,
            (
                f"INT8: equalizing {len(pairs)} Conv pair(s) with outlier channels changed the FP32 "
                f"outputs by {diff:.3g} of their range (limit {EQUALIZE_MAX_RELATIVE_DIFF:g}), so it "
                "was discarded and the graph calibrated as exported"
            ),
        )
    onnx.save(equalized, str(out))
    return out, pairs, diff, None


def default_cap(quantized: int) -> int:
    """10% of the quantized nodes, rounded up, at least 1."""
    return max(1, math.ceil(DEFAULT_FLOAT_FRACTION * quantized))


def fallback_search(cap: int, passes: Callable[[int], bool]) -> tuple[int | None, list[int]]:
    """Smallest k in 1..cap with passes(k), searched 1, 2, 4, ... cap then bisected; (k, tried).

    k is None when even cap fails (or cap is 0). Assumes more nodes in float never hurts, as
    the search only ever needs: it returns a k that passed, never one it did not try."""
    tried: list[int] = []
    results: dict[int, bool] = {}

    def run(k: int) -> bool:
        tried.append(k)
        results[k] = passes(k)
        return results[k]

    lo, hi, k = 0, None, 1
    while k <= cap:
        if run(k):
            hi = k
            break
        lo = k
        if k == cap:
            break
        k = min(2 * k, cap)
    if hi is None:
        return None, tried
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if run(mid):
            hi = mid
        else:
            lo = mid
    return hi, tried


def step_record(name: str, check) -> dict:
    """One gate result of the INT8 variant: agreement, mIoU, latency per CPU backend."""
    latency = {"onnxruntime": round(check.latency_ms, 2)}
    out = {
        "step": name,
        "agreement": round(check.agreement, 6),
        "miou": None if check.miou is None else round(check.miou, 6),
        "latency_ms": latency,
        "passed": check.passed,
    }
    if check.openvino is not None:
        latency["openvino"] = round(check.openvino.latency_ms, 2)
        out["openvino_agreement"] = round(check.openvino.agreement, 6)
    return out


def new_record(work: Int8Work | None, cap: int | None, quantized: int | None) -> dict:
    eq = work.equalized if work is not None else []
    record = {
        "mode": "auto",
        "equalized": [p.to_dict() for p in eq],
        "left_in_float": [],
        "steps": [],
    }
    if work is not None and work.equalize_diff is not None and eq:
        record["equalization_fp32_max_relative_diff"] = float(f"{work.equalize_diff:.3g}")
    if quantized is not None:
        record["quantized_nodes"] = quantized
    if cap is not None:
        record["max_float_nodes"] = cap
    return record


def latency_cost(steps: list[dict]) -> dict | None:
    """Latency of the first gated INT8 graph and of the final one, per backend, and the ratio."""
    if len(steps) < 2:
        return None
    first = steps[0]["latency_ms"]
    final = next((s for s in reversed(steps) if s["passed"]), steps[-1])["latency_ms"]
    return {
        backend: {
            "before": first[backend],
            "after": final[backend],
            "ratio": round(final[backend] / first[backend], 3) if first[backend] else None,
        }
        for backend in first
        if backend in final
    }


def worst_text(ranking: Sequence, count: int = WORST_NODES_SHOWN) -> str:
    return ", ".join(
        f"{s.node} ({s.op}, rel. error {s.relative_error:.3g}, agreement {100 * s.agreement:.2f}%)"
        for s in ranking[:count]
    )
