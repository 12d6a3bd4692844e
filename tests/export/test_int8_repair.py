"""INT8 repairs: cross-layer equalization, per-node sensitivity and float fallback.

Unit tests build tiny Conv graphs with onnx.helper. The end-to-end ones export the bundled demo
weights at 64x64 through the real CLI after tests/support/outliers.py has put activation outliers
in front of quantized convs: by function-preserving rescalings that equalization undoes (MLP
fc1 -> depthwise dwconv, strip conv0_1 -> conv0_2, norm2 -> fc1), or by one it does not reach
(the decoder's LayerNorm -> reshape -> FFN conv), where only the float fallback helps.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from export import cli
from export.int8.equalize import DEFAULT_MIN_RATIO, equalize, find_pairs, max_relative_diff
from export.int8.repair import default_cap, fallback_search
from export.int8.sensitivity import float_nodes, quantized_nodes, write_report

C_IN, C_MID, C_OUT, HW = 4, 8, 6, 8


# --- tiny graphs -------------------------------------------------------------------------------


def _conv_graph(consumer="depthwise", extra_reader=False, mid_is_output=False, producer_group=1,
                shared_weight=False, outliers=(), factor=2000.0, seed=0):  # fmt: skip
    """input -> Conv a (1x1, group producer_group) -> mid -> Conv b (3x3 pad 1) -> out.

    consumer: "depthwise" (group C_MID) or "regular"; extra_reader: mid also feeds a Relu that is
    a second output; outliers: channels of a scaled by `factor`, b's matching input divided."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (C_MID, C_IN // producer_group, 1, 1)).astype(np.float32)
    b1 = rng.normal(0, 0.1, (C_MID,)).astype(np.float32)
    if consumer == "depthwise":
        w2 = rng.normal(0, 0.5, (C_MID, 1, 3, 3)).astype(np.float32)
        group, c_out = C_MID, C_MID
    else:
        w2 = rng.normal(0, 0.5, (C_OUT, C_MID, 3, 3)).astype(np.float32)
        group, c_out = 1, C_OUT
    b2 = rng.normal(0, 0.1, (w2.shape[0],)).astype(np.float32)
    for c in outliers:
        w1[c] *= factor
        b1[c] *= factor
        if consumer == "depthwise":
            w2[c] /= factor
        else:
            w2[:, c] /= factor
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["mid"], name="a", group=producer_group),
        helper.make_node("Conv", ["mid", "w2", "b2"], ["out"], name="b", group=group, pads=[1, 1, 1, 1]),
    ]  # fmt: skip
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, c_out, HW, HW])]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["mid"], ["side"], name="side"))
        outputs.append(helper.make_tensor_value_info("side", TensorProto.FLOAT, [1, C_MID, HW, HW]))
    if mid_is_output:
        outputs.append(helper.make_tensor_value_info("mid", TensorProto.FLOAT, [1, C_MID, HW, HW]))
    if shared_weight:  # a third conv reading a's weight too
        nodes.append(helper.make_node("Conv", ["input", "w1"], ["twin"], name="twin"))
        outputs.append(helper.make_tensor_value_info("twin", TensorProto.FLOAT, [1, C_MID, HW, HW]))
    graph = helper.make_graph(
        nodes, "pair", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, C_IN, HW, HW])],
        outputs, inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})


def _inputs(count=3, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, (1, C_IN, HW, HW)).astype(np.float32) for _ in range(count)]


@pytest.mark.parametrize("consumer", ["depthwise", "regular"])
def test_pair_finder_finds_depthwise_and_regular_consumers(consumer):
    (pair,) = find_pairs(_conv_graph(consumer))
    assert (pair.producer, pair.consumer, pair.kind, pair.channels) == ("a", "b", consumer, C_MID)
    assert pair.ratio < DEFAULT_MIN_RATIO  # plain random weights: no outlier
    (pair,) = find_pairs(_conv_graph(consumer, outliers=(2,)))
    assert pair.ratio > 500


@pytest.mark.parametrize(
    "kwargs",
    [{"extra_reader": True}, {"mid_is_output": True}, {"shared_weight": True}],
    ids=["two-readers", "graph-output", "shared-weight"],
)  # fmt: skip
def test_pair_finder_refuses_pairs_it_cannot_rescale_exactly(kwargs):
    model = _conv_graph(outliers=(1,), **kwargs)
    assert find_pairs(model) == []
    same, pairs = equalize(model)
    assert pairs == [] and same is model


@pytest.mark.parametrize("consumer", ["depthwise", "regular"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equalization_keeps_fp32_outputs_and_removes_the_outlier(consumer, seed):
    model = _conv_graph(consumer, outliers=(0, 5), seed=seed)
    equalized, pairs = equalize(model)
    assert [(p.producer, p.consumer) for p in pairs] == [("a", "b")]
    assert pairs[0].ratio_before > 500 and pairs[0].ratio_after < 10
    for x in _inputs():
        assert max_relative_diff(_run(model, x), _run(equalized, x)) <= 1e-4
    # the intermediate tensor itself is tamed: its largest channel is no longer ~2000x the median
    probe = onnx.ModelProto()
    probe.CopyFrom(equalized)
    probe.graph.output.append(helper.make_tensor_value_info("mid", TensorProto.FLOAT, None))
    mid = _run(probe, _inputs(1)[0])[1]
    per_channel = np.abs(mid).reshape(C_MID, -1).max(axis=1)
    assert per_channel.max() / np.median(per_channel) < 50
    original = onnx.ModelProto()
    original.CopyFrom(model)
    original.graph.output.append(helper.make_tensor_value_info("mid", TensorProto.FLOAT, None))
    raw = np.abs(_run(original, _inputs(1)[0])[1]).reshape(C_MID, -1).max(axis=1)
    assert raw.max() / np.median(raw) > 200  # the test graph really had the outlier


@pytest.mark.parametrize("consumer", ["depthwise", "regular"])
def test_grouped_producers_are_equalized_too(consumer):
    """Output channel c of a grouped (or depthwise) conv is weights[c] and bias[c] whatever
    it reads, so the producer's group does not matter."""
    model = _conv_graph(consumer, producer_group=2, outliers=(3,))
    equalized, pairs = equalize(model)
    assert [(p.producer, p.producer_op) for p in pairs] == [("a", "Conv")]
    assert pairs[0].ratio_after < 10
    for x in _inputs():
        assert max_relative_diff(_run(model, x), _run(equalized, x)) <= 1e-4


def _bn_graph(outliers=(), factor=2000.0, seed=0):
    """input -> BatchNormalization -> mid -> Conv 1x1 -> out; outliers: BN scale and bias of those
    channels times `factor`, the conv's matching input channels divided by it."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 1.5, C_IN).astype(np.float32)
    bias = rng.normal(0, 0.1, C_IN).astype(np.float32)
    mean = rng.normal(0, 0.5, C_IN).astype(np.float32)
    var = rng.uniform(0.5, 2.0, C_IN).astype(np.float32)
    w = rng.normal(0, 0.5, (C_OUT, C_IN, 1, 1)).astype(np.float32)
    for c in outliers:
        scale[c] *= factor
        bias[c] *= factor
        w[:, c] /= factor
    arrays = {"scale": scale, "bias": bias, "mean": mean, "var": var, "w": w}
    graph = helper.make_graph(
        [helper.make_node("BatchNormalization", ["input", "scale", "bias", "mean", "var"], ["mid"],
                          name="bn", epsilon=1e-5),
         helper.make_node("Conv", ["mid", "w"], ["out"], name="conv")],
        "bn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, C_IN, HW, HW])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, C_OUT, HW, HW])],
        [numpy_helper.from_array(a, n) for n, a in arrays.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_batchnorm_producers_are_equalized_exactly():
    model = _bn_graph(outliers=(1,))
    equalized, pairs = equalize(model)
    assert [(p.producer, p.consumer, p.producer_op) for p in pairs] == [
        ("bn", "conv", "BatchNormalization")
    ]
    assert pairs[0].ratio_before > 500 and pairs[0].ratio_after < 10
    for x in _inputs():
        assert max_relative_diff(_run(model, x), _run(equalized, x)) <= 1e-4
    assert equalize(_bn_graph())[1] == []  # no outlier: untouched


def test_equalization_leaves_a_model_without_outliers_alone():
    model = _conv_graph("regular")
    same, pairs = equalize(model)
    assert pairs == [] and same is model


def test_fallback_search_finds_the_smallest_passing_k():
    for need in (1, 2, 3, 5, 9, 13, 24):
        calls = []
        best, tried = fallback_search(24, lambda k, n=need, c=calls: c.append(k) or k >= n)
        assert best == need, (need, tried)
        assert tried == calls and len(set(tried)) == len(tried)  # no k gated twice
    assert fallback_search(24, lambda k: k >= 3)[1] == [1, 2, 4, 3]
    assert fallback_search(6, lambda k: False) == (None, [1, 2, 4, 6])
    assert fallback_search(0, lambda k: True) == (None, [])
    assert [default_cap(n) for n in (1, 9, 10, 11, 232)] == [1, 1, 1, 2, 24]


def _quantized_tiny(tmp_path: Path, outliers=(3,)) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    from calibration.ranges import CalibrationSettings, compute_ranges
    from export.int8.quantize import quantize_int8

    fp32 = _conv_graph("regular", extra_reader=True, outliers=outliers)
    path = tmp_path / "fp32.onnx"
    onnx.save(fp32, str(path))
    ranges = compute_ranges(path, "input", iter(_inputs(4)), CalibrationSettings())
    quantize_int8(path, tmp_path / "int8.onnx", ranges, "minmax")
    return onnx.load(str(tmp_path / "int8.onnx")), fp32


def test_float_nodes_removes_the_qdq_in_front_of_the_named_nodes(tmp_path):
    qdq, fp32 = _quantized_tiny(tmp_path)
    assert [n for n, _ in quantized_nodes(qdq)] == ["a", "b"]
    x = _inputs(1)[0]
    ref = _run(fp32, x)
    err_q = max_relative_diff(ref, _run(qdq, x))
    assert err_q > 1e-3  # quantized: visibly different

    one = float_nodes(qdq, fp32, ["b"])
    b = next(n for n in one.graph.node if n.name == "b")
    assert b.input[0] == "mid" and b.input[1] == "w2"  # float activation, FP32 weight
    assert [n for n, _ in quantized_nodes(one)] == ["a"]
    # the Relu reading "mid" had its own Q/DQ pair of it: it goes with b's
    side = next(n for n in one.graph.node if n.name == "side")
    assert side.input[0] == "mid"
    # every node floated + every side pair: the FP32 graph's outputs exactly
    both = float_nodes(qdq, fp32, ["a", "b"], every_side_pair=True)
    assert not [n for n in both.graph.node if "QuantizeLinear" in n.op_type]
    assert max_relative_diff(ref, _run(both, x)) <= 1e-6
    with pytest.raises(ValueError, match="no quantized node named 'nope'"):
        float_nodes(qdq, fp32, ["nope"])


def test_sensitivity_report_without_matplotlib_writes_the_csv_and_says_how(tmp_path, monkeypatch):
    import builtins

    from export.int8.sensitivity import NodeSensitivity

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    ranking = [
        NodeSensitivity("b", "Conv", 1, 0.5, 0.9),
        NodeSensitivity("a", "Conv", 2, 0.01, 1.0),
    ]
    files, warning = write_report(tmp_path / "rep", ranking, equalized=["a"], left_in_float=["b"])
    assert [f.name for f in files] == ["int8_sensitivity.csv"]
    assert "matplotlib is not installed" in warning and "pip install matplotlib" in warning
    assert "\n" not in warning
    rows = list(csv.DictReader((tmp_path / "rep" / "int8_sensitivity.csv").open()))
    assert [(r["node"], r["rank"], r["equalized"], r["left_in_float"]) for r in rows] == [
        ("b", "1", "no", "yes"), ("a", "2", "yes", "no")
    ]  # fmt: skip


# --- the CLI -----------------------------------------------------------------------------------

runner = CliRunner()
SIZE = "64x64"


def _export(ckpt, out, cache, *extra):
    args = ["--checkpoint", str(ckpt), "--out", str(out), "--calib-cache", str(cache),
            "--input-size", SIZE, "--verify-frames", "8", "--calib-samples", "8",
            "--calib-data", "generated", "--precision", "int8", "--engines", "no", *extra]  # fmt: skip
    return runner.invoke(cli.app, [str(a) for a in args], prog_name="scaseg-export")


def _one_line_error(result, match: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and match in lines[0], result.output


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--int8-max-float-nodes", "-1"], "--int8-max-float-nodes -1: pass a count >= 0"),
        (["--int8-fallback", "sometimes"], "sometimes"),
    ],
)
def test_bad_repair_flags_are_one_line_errors(tmp_path, extra, match):
    result = _export(tmp_path / "none.safetensors", tmp_path / "out", tmp_path / "c", *extra)
    assert result.exit_code == 2, result.output
    assert match in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_sensitivity_report_needs_int8(tmp_path):
    from export.request import DEMO_CHECKPOINT

    args = ["--checkpoint", str(DEMO_CHECKPOINT), "--out", str(tmp_path / "out"),
            "--precision", "fp16", "--sensitivity-report", str(tmp_path / "rep")]  # fmt: skip
    result = runner.invoke(cli.app, args, prog_name="scaseg-export")
    _one_line_error(result, "--sensitivity-report is about the INT8 variant")


@pytest.fixture(scope="module")
def outlier_checkpoints(tmp_path_factory):
    """The demo weights with function-preserving outliers (MLP, strip pair, norm -> fc1), and
    with decoder LayerNorm outliers equalization does not reach, in 1 or in every block."""
    from safetensors import safe_open

    from export.request import DEMO_CHECKPOINT
    from scaseg.checkpoint import load_model, save_checkpoint
    from tests.support.outliers import (
        add_ffn_norm_outliers,
        add_mlp_outliers,
        add_norm_outliers,
        add_strip_outliers,
    )

    folder = tmp_path_factory.mktemp("outliers")
    with safe_open(str(DEMO_CHECKPOINT), "pt") as f:
        info = json.loads(f.metadata()["scaseg"])
    paths = {}
    for name, change in (
        ("mlp", add_mlp_outliers),
        ("strip", add_strip_outliers),
        ("norm", add_norm_outliers),
        ("ffn1", lambda m: add_ffn_norm_outliers(m, blocks=1)),
        ("ffn_all", add_ffn_norm_outliers),
    ):
        model, _ = load_model(DEMO_CHECKPOINT)
        assert change(model) > 0
        paths[name] = save_checkpoint(model.eval(), folder / f"{name}.safetensors", info)
    return paths


def _sidecar(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.int8.onnx.json").read_text())


@pytest.mark.slow
def test_mlp_outliers_fail_with_repairs_off_and_pass_after_equalization(
    outlier_checkpoints, tmp_path
):
    from export.int8.equalize import equalize
    from export.int8.repair import equalize_graph

    ckpt = outlier_checkpoints["mlp"]
    off = _export(ckpt, tmp_path / "off", tmp_path / "c", "--int8-fallback", "off")
    assert off.exit_code == 1, off.output
    text = " ".join(off.output.split())
    assert "accuracy gate failed: int8 argmax agreement with PyTorch FP32" in text
    assert "INT8 repairs" not in text
    assert not (tmp_path / "off" / "mlp.int8.onnx").exists()

    auto = _export(ckpt, tmp_path / "auto", tmp_path / "c")
    assert auto.exit_code == 0, auto.output
    text = " ".join(auto.output.split())
    assert "INT8 repairs: equalized 13 Conv pair(s) with outlier channels" in text
    assert (
        "/model/backbone/block1.0/mlp/fc1/Conv -> /model/backbone/block1.0/mlp/dwconv/Conv" in text
    )
    meta = _sidecar(tmp_path / "auto", "mlp")
    repairs = meta["calibration"]["repairs"]
    assert repairs["mode"] == "auto" and repairs["left_in_float"] == []
    assert len(repairs["equalized"]) == 13
    assert all(p["kind"] == "depthwise" and p["ratio_before"] > 1000 for p in repairs["equalized"])
    assert repairs["equalization_fp32_max_relative_diff"] <= 1e-4
    (step,) = repairs["steps"]
    assert step["step"] == "equalized (gate)" and step["passed"] and step["agreement"] >= 0.97
    assert "onnxruntime" in step["latency_ms"]
    assert meta["hashes"]["calibrated_onnx"] != meta["hashes"]["source_onnx"]
    # equalization changes the graph calibrated: a different cache key, so two cache files
    assert len(list((tmp_path / "c").glob("*.json"))) == 2
    assert meta["calibration"]["cache_hit"] is False

    # the exported FP32 graph of this checkpoint, equalized: same outputs within 1e-4 (ORT)
    fp32_out = tmp_path / "fp32"
    res = runner.invoke(cli.app, ["--checkpoint", str(ckpt), "--out", str(fp32_out),
                                  "--input-size", SIZE, "--no-verify", "--engines", "no"])  # fmt: skip
    assert res.exit_code == 0, res.output
    fp32 = fp32_out / "mlp.fp32.onnx"
    frames = _demo_frames(4)
    path, pairs, diff, warning = equalize_graph(fp32, "input", frames, tmp_path / "eq.onnx")
    assert warning is None and len(pairs) == 13 and diff <= 1e-4 and path != fp32
    before, after = onnx.load(str(fp32)), onnx.load(str(path))
    for x in frames:
        ref = _run_named(before, x)
        assert max_relative_diff(ref, _run_named(after, x)) <= 1e-4
    assert equalize(before)[1]  # sanity: the checkpoint really has the outliers


def _demo_frames(count: int) -> list[np.ndarray]:
    from runtime.preprocess import Preprocess, preprocess
    from scenes import render_scene, split_seeds

    pp = Preprocess(64, 64)
    return [preprocess(render_scene(s, 64, 64)[0], pp) for s in split_seeds("calib", count)]


def _run_named(model, x):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "producer"),
    [("strip", "spatial_gating_unit/conv0_1/Conv"), ("norm", "norm2/BatchNormalization")],
)
def test_depthwise_and_norm_producers_are_equalized_exactly(
    outlier_checkpoints, tmp_path, name, producer
):
    """A depthwise strip conv into the next one, and a BatchNorm into a 1x1 conv: per-channel
    linear producers too, rescaled without changing the FP32 outputs."""
    from export.int8.equalize import equalize

    res = runner.invoke(cli.app, ["--checkpoint", str(outlier_checkpoints[name]), "--out",
                                  str(tmp_path), "--input-size", SIZE, "--no-verify",
                                  "--engines", "no"])  # fmt: skip
    assert res.exit_code == 0, res.output
    before = onnx.load(str(tmp_path / f"{name}.fp32.onnx"))
    after, pairs = equalize(before)
    mine = [p for p in pairs if producer in p.producer]
    assert len(mine) == 13 and all(p.ratio_before > 1000 and p.ratio_after < 20 for p in mine)
    for x in _demo_frames(3):
        assert max_relative_diff(_run_named(before, x), _run_named(after, x)) <= 1e-4


@pytest.mark.slow
def test_unreachable_outliers_pass_by_leaving_the_worst_nodes_in_float(
    outlier_checkpoints, tmp_path
):
    ckpt = outlier_checkpoints["ffn1"]
    off = _export(ckpt, tmp_path / "off", tmp_path / "c", "--int8-fallback", "off")
    assert off.exit_code == 1 and "accuracy gate failed: int8" in off.output, off.output

    report = tmp_path / "report"
    auto = _export(ckpt, tmp_path / "auto", tmp_path / "c", "--sensitivity-report", report)
    assert auto.exit_code == 0, auto.output
    repairs = _sidecar(tmp_path / "auto", "ffn1")["calibration"]["repairs"]
    assert repairs["equalized"] == []  # a reshape between LayerNorm and conv: no pair
    floated = repairs["left_in_float"]
    assert 1 <= len(floated) <= 8 and repairs["max_float_nodes"] == 24
    # the conv reading the outlier tensor, in the first decoder block
    assert all("ffn/fc1/Conv" in n for n in floated), floated
    steps = repairs["steps"]
    assert steps[0]["step"] == "initial (gate)" and not steps[0]["passed"]
    assert steps[-1]["passed"] or any(s["passed"] for s in steps)
    assert any(s["step"] == f"fallback k={len(floated)}" and s["passed"] for s in steps)
    assert set(repairs["latency_cost_ms"]) >= {"onnxruntime"}
    assert repairs["most_sensitive"][0]["node"] == floated[0]
    # the written graph really runs those nodes in float: no Q/DQ in front of them
    model = onnx.load(str(tmp_path / "auto" / "ffn1.int8.onnx"))
    assert not {n for n, _ in quantized_nodes(model)} & set(floated)
    text = " ".join(auto.output.split())
    assert f"INT8 repairs: {len(floated)} node(s) left in float: {floated[0]}" in text
    assert "INT8 initial (gate)" in text and "INT8 most sensitive nodes" in text
    # (e) the sensitivity report: every quantized node ranked, the floated ones marked
    rows = list(csv.DictReader((report / "int8_sensitivity.csv").open()))
    assert len(rows) == repairs["quantized_nodes"]
    assert [r["node"] for r in rows if r["left_in_float"] == "yes"] == floated
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    errors = [float(r["relative_error"]) for r in rows]
    assert errors == sorted(errors, reverse=True) and errors[0] > 10 * errors[len(errors) // 2]
    png = (report / "int8_sensitivity.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert not list(report.glob(".*tmp*"))  # written atomically, no temp file left


@pytest.mark.slow
def test_outliers_beyond_the_cap_fail_with_the_ranking_in_the_report(outlier_checkpoints, tmp_path):
    ckpt = outlier_checkpoints["ffn_all"]
    result = _export(ckpt, tmp_path / "out", tmp_path / "c", "--int8-max-float-nodes", "1")
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "accuracy gate failed: int8 argmax agreement" in text
    assert "INT8 repairs did not reach the budget: still failing with the 1 most sensitive" in text
    assert "(the cap, --int8-max-float-nodes 1); most sensitive: /model/" in text
    assert "Raise --int8-max-float-nodes" in text
    assert "INT8 fallback k=1" in text and "fail" in text
    assert not (tmp_path / "out" / "ffn_all.int8.onnx").exists()


@pytest.mark.slow
def test_unmodified_demo_gets_no_repairs_and_the_same_graph_as_off(tmp_path):
    from export.request import DEMO_CHECKPOINT

    results = {}
    for mode in ("off", "auto"):
        r = _export(DEMO_CHECKPOINT, tmp_path / mode, tmp_path / "c", "--int8-fallback", mode,
                    "--name", "demo")  # fmt: skip
        assert r.exit_code == 0, r.output
        results[mode] = r
    off, auto = _sidecar(tmp_path / "off", "demo"), _sidecar(tmp_path / "auto", "demo")
    assert "repairs" not in off["calibration"]
    assert auto["calibration"]["repairs"]["equalized"] == []
    assert auto["calibration"]["repairs"]["left_in_float"] == []
    assert auto["hashes"]["artifact"] == off["hashes"]["artifact"]  # byte-identical INT8 graph
    assert auto["calibration"]["cache_key"] == off["calibration"]["cache_key"]
    assert auto["calibration"]["cache_hit"] is True  # auto reused off's calibration
    assert "INT8 repairs: none needed" in results["auto"].output
    # the defaults: least-error ranges, GPTQ rounding, every weight per channel
    assert auto["calibration"]["method"] == "mse"
    rounding = auto["calibration"]["weight_rounding"]
    assert rounding["method"] == "gptq" and rounding["layers"] > 200
    assert rounding["mean_output_error"] < rounding["mean_output_error_nearest"]
    assert auto["calibration"]["constant_weights_made_initializers"] > 0


def test_recheck_against_the_kept_reference_matches_the_full_gate(tiny_checkpoint, tmp_path):
    """run_gate keeps PyTorch's labels; recheck of the same artifact must score it the same
    without PyTorch (the fallback search re-checks INT8 this way)."""
    from export.gate_data import generated_gate
    from export.pipeline import export_artifacts
    from export.request import ExportRequest
    from export.verify import Budgets, recheck, run_gate
    from runtime.preprocess import Preprocess
    from scaseg.checkpoint import load_model

    out = tmp_path / "out"
    request = ExportRequest(checkpoint=tiny_checkpoint, out=out, height=64, width=64, verify=False)
    export_artifacts(request)
    path = out / "tiny.fp32.onnx"
    model, info = load_model(tiny_checkpoint)
    pp = Preprocess(64, 64)
    gate = generated_gate(pp, 3, with_truth=True)
    names = info["class_names"]
    full = run_gate(model, {"fp32": path}, pp, gate, Budgets(), names, openvino=False)
    again = recheck("fp32", path, full.reference, gate, Budgets(), names, openvino=False)
    first = full.checks["fp32"]
    assert full.reference.frames == 3 and len(full.reference.labels) == 3
    assert full.reference.labels[0].dtype == np.uint8
    assert again.agreement == first.agreement and again.miou == first.miou
    assert np.array_equal(again.iou, first.iou, equal_nan=True)
    assert again.max_abs_diff is None and first.max_abs_diff is not None
    # a different reference (every label shifted) must show up as disagreement
    shifted = type(full.reference)(
        [(lab + 1) % len(names) for lab in full.reference.labels], full.reference.miou,
        full.reference.iou, 3, True,
    )  # fmt: skip
    assert recheck("fp32", path, shifted, gate, Budgets(), names, openvino=False).agreement == 0
