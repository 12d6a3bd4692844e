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

The ranking is found by scoring groups of nodes and splitting the worst
(export/int8/group_ranking.py): the k worst nodes cost a few dozen graph runs, not one per
node. `--sensitivity-report` ranks every node one by one (export/int8/sensitivity.py).

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
from export.int8.group_ranking import GROUP_SIZE, GroupRanking
from export.int8.records import RepairRecord, RepairStep
from export.int8.sensitivity import float_nodes, quantized_nodes, rank_nodes, write_report
from export.ort_session import cpu_session
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
    session = cpu_session(model.SerializeToString())
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


def worst_text(ranking: Sequence, count: int = WORST_NODES_SHOWN) -> str:
    return ", ".join(
        f"{s.node} ({s.op}, rel. error {s.relative_error:.3g}, agreement {100 * s.agreement:.2f}%)"
        for s in ranking[:count]
    )


@dataclass
class RepairOutcome:
    check: object | None = None  # the final VariantCheck where the fallback ran, else None
    ranking: list = field(default_factory=list)  # NodeSensitivity, most harmful first
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def repair_int8(
    work: Int8Work,
    path: Path,
    write: Callable[[onnx.ModelProto], None],
    record: RepairRecord | None,
    check,
    recheck: Callable[[int], object],
    cap: int | None,
    report_folder: Path | None,
    say: Callable[[str], None],
    tick: Callable[[str], None] | None = None,
) -> RepairOutcome:
    """After the gate: leave the worst nodes in float until INT8 passes (`record` given: auto
    mode, up to the cap), rank every node where a report folder is given.

    `write(model)` puts a graph at `path` with its sidecar; `recheck(k)` gates it and returns
    the VariantCheck."""
    outcome = RepairOutcome()
    if record is not None and check is not None:
        first = "equalized" if work.equalized else "initial"
        record.steps.append(RepairStep.from_check(f"{first} (gate)", check))
    need_fallback = record is not None and check is not None and not check.passed
    if not need_fallback and report_folder is None:
        return outcome
    qdq, fp32 = onnx.load(str(work.qdq)), onnx.load(str(work.calibrated))
    nodes = quantized_nodes(qdq)
    floated: list[str] = []
    ranking = None
    if need_fallback:
        say(f"INT8 missed its budget: finding the most sensitive of {len(nodes)} quantized nodes")
        ranking = GroupRanking(qdq, fp32, work.input_name, work.frames, tick=tick)
        cap = default_cap(len(nodes)) if cap is None else min(cap, len(nodes))
        record.quantized_nodes, record.max_float_nodes = len(nodes), cap
        checks: dict[int, object] = {}

        def passes(k: int) -> bool:
            names = ranking.top(k)
            say(f"INT8 fallback: gate with the {len(names)} most sensitive node(s) in float")
            write(float_nodes(qdq, fp32, names))
            checks[k] = recheck(k)
            record.steps.append(RepairStep.from_check(f"fallback k={k}", checks[k]))
            return checks[k].passed

        best, tried = fallback_search(cap, passes)
        if best is not None:
            floated = ranking.top(best)
            if tried[-1] != best:  # the last try was a smaller, failing k: put the best back
                write(float_nodes(qdq, fp32, floated))
            outcome.check = checks[best]
        else:
            outcome.check = checks[tried[-1]] if tried else check
            ranking.top(WORST_NODES_SHOWN)
            failure = cap_failure(cap, tried, ranking.found, len(nodes), len(record.equalized))
            outcome.check.failures = [*outcome.check.failures, failure]
        ranking.top(WORST_NODES_SHOWN)
        record.left_in_float = floated
        record.ranking = (
            f"groups of {GROUP_SIZE} scored and the worst split: {ranking.evaluations} graph "
            f"runs on {len(work.frames)} calibration frames for {len(ranking.found)} node(s)"
        )
        outcome.ranking = list(ranking.found)
    if report_folder is not None:
        say(f"ranking {len(nodes)} quantized INT8 nodes one by one (--sensitivity-report)")
        outcome.ranking = rank_nodes(qdq, fp32, work.input_name, work.frames, tick)
        outcome.files, warning = write_report(
            report_folder,
            outcome.ranking,
            equalized=[n for p in work.equalized for n in (p.producer, p.consumer)],
            left_in_float=floated,
        )
        if warning:
            outcome.warnings.append(warning)
    if record is not None:
        record.most_sensitive = list(outcome.ranking[:WORST_NODES_SHOWN])
    return outcome


def cap_failure(cap: int, tried: list[int], ranking, quantized: int, equalized: int) -> str:
    done = f"equalized {equalized} Conv pair(s), " if equalized else ""
    if not tried:
        return (
            f"INT8 repairs: {done}--int8-max-float-nodes {cap} leaves no node in float; most "
            f"sensitive nodes: {worst_text(ranking)}"
        )
    return (
        f"INT8 repairs did not reach the budget: {done}still failing with the {tried[-1]} most "
        f"sensitive of {quantized} quantized nodes in float (the cap, --int8-max-float-nodes "
        f"{cap}); most sensitive: {worst_text(ranking)}. Raise --int8-max-float-nodes, "
        "calibrate on frames like the deployment's, or ship FP16"
    )
