"""ORT calibrators as we drive them: real histogram bins, one sample per collect call."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from calibration.ranges import CalibrationSettings, compute_ranges


def _conv_model(path):
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 64, 64])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def _inputs(n=4):
    rng = np.random.default_rng(0)
    out = [rng.standard_normal((1, 1, 64, 64)).astype(np.float32) for _ in range(n)]
    out[0][0, 0, 0, 0] = 40.0  # one outlier pixel: min-max keeps it, entropy/percentile clip it
    return out


def test_entropy_with_real_bins_clips_outliers_minmax_does_not(tmp_path):
    path = _conv_model(tmp_path / "m.onnx")
    minmax = compute_ranges(path, "x", _inputs(), CalibrationSettings("minmax"))
    entropy = compute_ranges(path, "x", _inputs(), CalibrationSettings("entropy"))
    assert minmax["x"][1] == pytest.approx(40.0)
    assert entropy["x"][1] < 20.0  # quantize_static's default (128 bins) would return ~40


def test_percentile_clips_the_outlier(tmp_path):
    path = _conv_model(tmp_path / "m.onnx")
    _, hi = compute_ranges(path, "x", _inputs(), CalibrationSettings("percentile"))["x"]
    assert hi < 10.0


def test_one_sample_per_collect_call(tmp_path, monkeypatch):
    """Histogram calibrators free a sample's activations after each call: bounded memory."""
    from onnxruntime.quantization.calibrate import HistogramCalibrater

    calls = []
    real = HistogramCalibrater.collect_data

    def counting(self, reader):
        calls.append(len(reader))
        return real(self, reader)

    monkeypatch.setattr(HistogramCalibrater, "collect_data", counting)
    compute_ranges(
        _conv_model(tmp_path / "m.onnx"), "x", _inputs(5), CalibrationSettings("entropy")
    )
    assert calls == [1, 1, 1, 1, 1]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="method"):
        CalibrationSettings("kl")
    with pytest.raises(ValueError, match="num_bins"):
        CalibrationSettings("entropy", num_bins=64)
