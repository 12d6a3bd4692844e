"""The INT8 graph tools on tiny graphs: Constant weights made initializers, side Q/DQ pairs,
GPTQ weight rounding (export/int8/rounding.py) and the group-split ranking
(export/int8/group_ranking.py) against the one-by-one ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from calibration.ranges import CalibrationSettings, compute_ranges
from export.int8.group_ranking import GroupRanking
from export.int8.quantize import constant_weights_to_initializers, quantize_int8, side_pairs
from export.int8.records import CalibrationRecord, RepairRecord, RepairStep
from export.int8.rounding import round_weights
from export.int8.sensitivity import float_nodes, quantized_nodes, rank_nodes
from export.ort_session import cpu_session

C, HW = 8, 12


def _graph(constant_weight: bool = False, seed: int = 0) -> onnx.ModelProto:
    """input (1,4,HW,HW) -> Conv a 3x3 -> m1 -> depthwise Conv b 3x3 -> Relu -> Conv c 1x1 ->
    MatMul d (weight) -> out; m1 is also read by a Relu "side" (a second output)."""
    rng = np.random.default_rng(seed)
    wa = rng.normal(0, 0.4, (C, 4, 3, 3)).astype(np.float32)
    wb = rng.normal(0, 0.4, (C, 1, 3, 3)).astype(np.float32)
    wc = rng.normal(0, 0.4, (C, C, 1, 1)).astype(np.float32)
    wd = rng.normal(0, 0.4, (HW, HW)).astype(np.float32)
    bias = [
        numpy_helper.from_array(rng.normal(0, 0.1, C).astype(np.float32), f"b{k}") for k in "abc"
    ]
    inits = [numpy_helper.from_array(w, n) for w, n in ((wb, "wb"), (wc, "wc"), (wd, "wd"))]
    nodes = []
    if constant_weight:  # as the exporter leaves a folded layer-scale weight
        nodes.append(helper.make_node("Constant", [], ["wa"], value=numpy_helper.from_array(wa)))
    else:
        inits.append(numpy_helper.from_array(wa, "wa"))
    nodes += [
        helper.make_node("Conv", ["input", "wa", "ba"], ["m1"], name="a", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["m1", "wb", "bb"], ["m2"], name="b", group=C, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["m2"], ["m3"], name="relu"),
        helper.make_node("Conv", ["m3", "wc", "bc"], ["m4"], name="c"),
        helper.make_node("MatMul", ["m4", "wd"], ["out"], name="d"),
        helper.make_node("Relu", ["m1"], ["side_out"], name="side"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, HW, HW])],
        [
            helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, C, HW, HW]),
            helper.make_tensor_value_info("side_out", TensorProto.FLOAT, [1, C, HW, HW]),
        ],
        [*inits, *bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _inputs(n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, (1, 4, HW, HW)).astype(np.float32) for _ in range(n)]


def _quantize(tmp_path: Path, model: onnx.ModelProto, name: str = "m") -> onnx.ModelProto:
    path = tmp_path / f"{name}.fp32.onnx"
    onnx.save(model, str(path))
    ranges = compute_ranges(path, "input", iter(_inputs(6)), CalibrationSettings("minmax"))
    out = tmp_path / f"{name}.int8.onnx"
    quantize_int8(path, out, ranges, "minmax")
    return onnx.load(str(out))


def _out(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return cpu_session(model.SerializeToString(), basic=True).run(["out"], {"input": x})[0]


def _weight_dq(model: onnx.ModelProto, node_name: str) -> onnx.NodeProto:
    made = {o: n for n in model.graph.node for o in n.output}
    node = next(n for n in model.graph.node if n.name == node_name)
    return made[node.input[1]]


def test_constant_weights_become_initializers_so_they_are_quantized_per_channel(tmp_path):
    as_is = _quantize(tmp_path, _graph(constant_weight=True), "const")
    made = {o: n for n in as_is.graph.node for o in n.output}
    dq = _weight_dq(as_is, "a")
    assert made[dq.input[0]].op_type == "QuantizeLinear"  # calibrated as an activation

    model = _graph(constant_weight=True)
    assert constant_weights_to_initializers(model) == 1
    assert not [n for n in model.graph.node if n.op_type == "Constant"]
    fixed = _quantize(tmp_path, model, "fixed")
    dq = _weight_dq(fixed, "a")
    scale = next(i for i in fixed.graph.initializer if i.name == dq.input[1])
    assert list(scale.dims) == [C]  # one scale per output channel
    assert constant_weights_to_initializers(_graph()) == 0


def test_side_pairs_are_counted_and_bypassed(tmp_path):
    qdq = _quantize(tmp_path, _graph())
    assert side_pairs(qdq) == 1  # the Relu "side" reads its own Q/DQ copy of m1
    fp32 = _graph()
    bypassed = float_nodes(qdq, fp32, [], every_side_pair=True)
    assert side_pairs(bypassed) == 0
    side = next(n for n in bypassed.graph.node if n.name == "side")
    assert side.input[0] == "m1"
    assert [n for n, _ in quantized_nodes(bypassed)] == ["a", "b", "c", "d"]


def test_gptq_rounding_lowers_each_layers_and_the_graphs_output_error(tmp_path):
    fp32 = _graph()
    qdq = _quantize(tmp_path, fp32)
    rounded, results = round_weights(qdq, fp32, "input", _inputs(4))
    assert {r.node for r in results} == {"a", "b", "c", "d"}
    assert {r.kind for r in results} == {"conv", "depthwise", "matmul"}
    for r in results:
        assert r.error_after < r.error_before
    before = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
    after = {i.name: numpy_helper.to_array(i) for i in rounded.graph.initializer}
    assert before.keys() == after.keys()
    changed = 0
    for name, value in before.items():
        if value.dtype == np.int8:
            assert after[name].dtype == np.int8 and np.abs(after[name]).max() <= 127
            changed += int((after[name] != value).sum())
        else:  # scales, zero points, biases: untouched
            np.testing.assert_array_equal(after[name], value)
    assert changed > 0
    # on frames the rounding never saw, the whole graph is closer to FP32
    fresh = _inputs(4, seed=9)
    ref = [_out(fp32, x) for x in fresh]
    err = {
        tag: sum(float(np.square(_out(m, x) - r).sum()) for x, r in zip(fresh, ref))
        for tag, m in (("nearest", qdq), ("gptq", rounded))
    }
    assert err["gptq"] < err["nearest"]


def test_group_ranking_finds_the_one_by_one_ranking_worst_nodes_with_fewer_runs(tmp_path):
    fp32 = _graph(seed=3)
    qdq = float_nodes(_quantize(tmp_path, fp32), fp32, [], every_side_pair=True)
    frames = _inputs(2, seed=4)
    full = rank_nodes(qdq, fp32, "input", frames)
    ranking = GroupRanking(qdq, fp32, "input", frames, group_size=4)
    assert ranking.top(1) == [full[0].node]
    assert ranking.found[0].relative_error == pytest.approx(full[0].relative_error, rel=1e-6)
    assert ranking.top(2) == [s.node for s in full[:2]]
    assert ranking.top(10) == [s.node for s in full]  # asking past the end gives them all
    with pytest.raises(ValueError, match="no calibration frames"):
        GroupRanking(qdq, fp32, "input", [])


def test_records_write_the_sidecar_form():
    class Check:
        agreement, miou, latency_ms, passed = 0.99123456, 0.7, 12.345, False
        openvino = None

    step = RepairStep.from_check("initial (gate)", Check())
    record = RepairRecord(steps=[step], quantized_nodes=10, max_float_nodes=1)
    cal = CalibrationRecord("mse", 32, "onnxruntime", "frames", {}, "k", False, ["mm"])
    cal.repairs = record
    out = cal.to_dict()
    assert out["weight_rounding"] == {"method": "nearest"}
    repairs = out["repairs"]
    assert repairs["steps"] == [
        {
            "step": "initial (gate)",
            "agreement": 0.991235,
            "miou": 0.7,
            "latency_ms": {"onnxruntime": 12.35},
            "passed": False,
        }
    ]
    assert repairs["left_in_float"] == [] and "latency_cost_ms" not in repairs


def test_gptq_rounds_only_the_layers_whose_moments_fit_the_memory_budget(tmp_path, monkeypatch):
    from export.int8 import rounding

    fp32 = _graph()
    qdq = _quantize(tmp_path, fp32)
    # a: 4x3x3 = 36 columns (10 kB of H); b: 8 channels x 9x9 (5 kB); c: 8x8; d: 12x12
    monkeypatch.setattr(rounding, "MAX_MOMENT_BYTES", 8 * 36 * 36 - 1)
    _, results = round_weights(qdq, fp32, "input", _inputs(2))
    assert "a" not in {r.node for r in results}
    assert {r.node for r in results} == {"b", "c", "d"}
