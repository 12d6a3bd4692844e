"""Streaming |x| histograms and the least-error INT8 range (calibration/histogram.py), and the
`mse` calibration method built on them (calibration/ranges.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from calibration.histogram import LEVELS, AbsHistogram, mse_threshold
from calibration.ranges import CalibrationSettings, compute_ranges, quantized_tensors


def _qdq_error(values: np.ndarray, t: float) -> float:
    step = t / LEVELS
    q = np.round(np.clip(values, -t, t) / step) * step
    return float(np.mean((values - q) ** 2))


def test_growing_the_range_merges_bins_exactly_and_keeps_every_count():
    hist = AbsHistogram.empty(64)
    hist.add(np.linspace(-1.0, 1.0, 1001, dtype=np.float32))
    assert hist.counts.sum() == 1001 and hist.peak == pytest.approx(1.0)
    width = hist.width
    below_half = int(hist.counts[:32].sum())
    hist.add(np.array([3.5, -0.25], np.float32))  # past the top: the width doubles twice
    assert hist.width == pytest.approx(4 * width)
    assert hist.counts.sum() == 1003
    assert hist.peak == pytest.approx(3.5) and hist.low == pytest.approx(-1.0)
    assert hist.high == pytest.approx(3.5)
    # the old first 32 bins are now the first 8, with the same counts (plus the new -0.25)
    assert int(hist.counts[:8].sum()) == below_half + 1


def test_large_tensors_feed_a_strided_subset_but_the_peak_sees_everything():
    hist = AbsHistogram.empty(128)
    values = np.zeros(10_000, np.float32)
    values[7] = 9.0  # not on the stride
    hist.add(values, max_values=1000)
    assert hist.peak == 9.0
    assert hist.counts.sum() == 1000


def test_zeros_only_give_a_zero_range():
    hist = AbsHistogram.empty()
    hist.add(np.zeros((3, 4), np.float32))
    assert mse_threshold(hist) == 0.0


def test_non_finite_activations_are_refused():
    with pytest.raises(FloatingPointError):
        AbsHistogram.empty().add(np.array([1.0, np.nan], np.float32))


@pytest.mark.parametrize(
    "kind", ["gaussian", "laplace", "gelu_like", "rare_outliers", "one_in_a_million"]
)
def test_mse_range_is_the_least_error_range_on_the_data(kind):
    rng = np.random.default_rng(0)
    n = 400_000
    if kind == "gaussian":
        values = rng.normal(0, 1, n)
    elif kind == "laplace":  # heavy tails: the best range is well inside the peak
        values = rng.laplace(0, 1, n)
    elif kind == "gelu_like":
        x = rng.normal(0, 1.5, n)
        values = x * 0.5 * (1 + np.tanh(0.79788456 * (x + 0.044715 * x**3)))
    elif kind == "rare_outliers":
        values = rng.normal(0, 1, n)
        values[:40] = 60.0  # 1 in 10,000: clipping them costs more than it saves
    else:
        values = rng.normal(0, 1, n)
        values[0] = 400.0  # 1 in 400,000 and far out: worth clipping
    values = values.astype(np.float32)
    hist = AbsHistogram.empty()
    for chunk in np.array_split(values, 8):  # frame by frame
        hist.add(chunk, max_values=n)
    t = mse_threshold(hist)
    peak = float(np.abs(values).max())
    grid = np.linspace(peak / 200, peak, 400)
    best = min(_qdq_error(values, g) for g in grid)
    assert 0 < t <= peak
    assert _qdq_error(values, t) <= 1.03 * best
    assert _qdq_error(values, t) <= _qdq_error(values, peak)
    if kind == "one_in_a_million":
        assert t < 0.5 * peak
    if kind == "laplace":
        assert t < 0.9 * peak


def test_mse_range_keeps_the_peak_of_a_uniform_tensor():
    values = np.random.default_rng(0).uniform(-2, 2, 100_000).astype(np.float32)
    hist = AbsHistogram.empty()
    hist.add(values)
    assert mse_threshold(hist) == pytest.approx(2.0, rel=0.05)


def _two_convs() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (4, 3, 1, 1)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.5, (2, 4, 1, 1)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["mid"], name="a"),
        helper.make_node("Relu", ["mid"], ["act"], name="r"),
        helper.make_node("Conv", ["act", "w2"], ["out"], name="b"),
    ]
    graph = helper.make_graph(
        nodes,
        "two",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 8, 8])],
        [w1, w2],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_mse_method_ranges_every_tensor_the_quantizer_asks_for(tmp_path):
    model = _two_convs()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert quantized_tensors(model) == ["input", "mid", "act", "out"]
    rng = np.random.default_rng(1)
    inputs = [rng.normal(0, 1, (1, 3, 8, 8)).astype(np.float32) for _ in range(3)]
    ranges = compute_ranges(path, "input", iter(inputs), CalibrationSettings("mse"))
    assert set(ranges) == {"input", "mid", "act", "out"}
    minmax = compute_ranges(path, "input", iter(inputs), CalibrationSettings("minmax"))
    for name, (lo, hi) in ranges.items():
        assert lo == -hi and hi > 0  # symmetric, as TensorRT's Q/DQ
        assert hi <= max(-minmax[name][0], minmax[name][1]) * 1.0001


def test_mse_is_the_default_method_and_its_cache_settings_name_it():
    settings = CalibrationSettings()
    assert settings.method == "mse"
    assert settings.to_dict() == {"method": "mse", "num_bins": 2048, "symmetric": True}
