"""The DeepStream output: an nvinfer config that matches the sidecar, and a Softmax ONNX whose
class map is the artifact's (checked by running both with ONNX Runtime; DeepStream itself needs
a GPU and is not run here)."""

from __future__ import annotations

import configparser

import numpy as np
import onnxruntime as ort
import pytest

from export.deepstream import (
    DeepStreamApproximationWarning,
    DeepStreamConfigError,
    write_deepstream_config,
)
from runtime.meta import read_meta
from tests.support.deploy_models import ORIN_ENGINE, build_model


def read_config(path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text())  # nvinfer reads a GLib key file: INI syntax
    return parser["property"]


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_nvinfer_config_matches_sidecar(tmp_path, dynamic):
    onnx = build_model(tmp_path / "tiny.int8.onnx", dynamic=dynamic, precision="int8")
    meta = read_meta(onnx)
    with pytest.warns(DeepStreamApproximationWarning, match="one scale to all channels"):
        path = write_deepstream_config(onnx, tmp_path / "ds")
    cfg = read_config(path)
    assert cfg["network-type"] == "2" and cfg["network-mode"] == "1"  # segmentation, INT8
    assert cfg["infer-dims"] == f"3;{meta.preprocess.height};{meta.preprocess.width}"
    assert cfg["num-detected-classes"] == str(meta.num_classes)
    assert cfg["output-blob-names"] == "probs"
    assert cfg["model-color-format"] == "0"  # RGB, as the sidecar's preprocessing
    assert [float(v) for v in cfg["offsets"].split(";")] == pytest.approx(meta.preprocess.mean)
    assert float(cfg["net-scale-factor"]) == pytest.approx(3 / sum(meta.preprocess.std))
    assert cfg["model-engine-file"] == "tiny.int8.deepstream.onnx_b1_gpu0_int8.engine"
    labels = (tmp_path / "ds" / cfg["labelfile-path"]).read_text().splitlines()
    assert labels == list(meta.class_names)
    assert "nvinfer config-file-path=" + path.name in (tmp_path / "ds" / "pipeline.txt").read_text()


def test_softmax_onnx_keeps_the_class_map(tmp_path):
    onnx = build_model(tmp_path / "tiny.fp32.onnx")
    with pytest.warns(DeepStreamApproximationWarning):
        cfg = read_config(write_deepstream_config(onnx, tmp_path / "ds"))
    x = np.random.default_rng(0).normal(0, 2, (1, 3, 64, 64)).astype(np.float32)
    (logits,) = ort.InferenceSession(str(onnx)).run(None, {"input": x})
    ds = ort.InferenceSession(str(tmp_path / "ds" / cfg["onnx-file"]))
    assert [o.name for o in ds.get_outputs()] == ["probs"]
    (probs,) = ds.run(None, {"input": x})
    assert probs.dtype == np.float32 and probs.shape == logits.shape
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probs.argmax(axis=1), logits.argmax(axis=1))


def test_artifacts_nvinfer_cannot_take_are_refused(tmp_path):
    fused = build_model(tmp_path / "fused.fp32.onnx", fused=True)
    with pytest.raises(DeepStreamConfigError, match="export a plain graph"):
        write_deepstream_config(fused, tmp_path / "ds")
    engine = build_model(tmp_path / "tiny.fp16.engine", precision="fp16", engine=ORIN_ENGINE)
    with pytest.raises(DeepStreamConfigError, match=r"pass the \.onnx"):
        write_deepstream_config(engine, tmp_path / "ds")
    plain = build_model(tmp_path / "tiny.fp32.onnx")
    with pytest.raises(DeepStreamConfigError, match="batch size 4"):
        write_deepstream_config(plain, tmp_path / "ds", batch_size=4)
