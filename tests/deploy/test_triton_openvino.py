"""The Triton Python-backend model serving an .onnx through OpenVINO (parameter `backend`), against
a FAKE `triton_python_backend_utils`; generated configs stay as they were unless asked."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("openvino")
from export import triton_model
from export.triton_config import python_config
from export.triton_model import TritonPythonModel
from runtime.meta import read_meta
from runtime.segmenter import Segmenter
from tests.support.deploy_models import build_model
from tests.support.fake_triton import fake_pb_utils, image_tensor


def _serve(tmp_path, monkeypatch, params: dict) -> tuple[TritonPythonModel, object]:
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake_pb_utils())
    onnx = build_model(tmp_path / "m.fp32.onnx")
    monkeypatch.setattr(triton_model, "_HERE", tmp_path)
    params = {"artifact": onnx.name, **params}
    config = {"name": "m", "parameters": {k: {"string_value": v} for k, v in params.items()}}
    m = TritonPythonModel()
    m.initialize({"model_config": json.dumps(config), "model_instance_kind": "CPU"})
    return m, onnx


def test_serves_through_openvino_with_the_labels_of_local_inference(tmp_path, monkeypatch):
    m, onnx = _serve(tmp_path, monkeypatch, {"backend": "openvino", "ov_device": "CPU"})
    try:
        assert m.server.segmenter.description.startswith("openvino ")
        frames = np.random.default_rng(0).integers(0, 256, (2, 40, 56, 3), np.uint8)
        (response,) = m.execute([{"image": image_tensor(frames)}])
        assert response.error is None
        with Segmenter(onnx, provider="cpu") as seg:
            want = np.stack([seg(f) for f in frames])
        assert (response.output_tensors[0].as_numpy() == want).mean() > 0.99
    finally:
        m.finalize()


def test_unknown_backend_parameter_says_how_to_fix(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="parameter backend 'openvin' is not one of"):
        _serve(tmp_path, monkeypatch, {"backend": "openvin"})


def test_default_config_is_unchanged_and_openvino_is_opt_in(tmp_path):
    onnx = build_model(tmp_path / "m.fp32.onnx")
    meta = read_meta(onnx)
    default = python_config("m", meta, onnx.name, max_batch_size=None, dynamic_batching=None)
    assert default.parameters == {"artifact": onnx.name, "provider": "auto"}
    assert default.instance_kind == "KIND_AUTO"
    ov = python_config(
        "m", meta, onnx.name, max_batch_size=None, dynamic_batching=None, openvino_device="CPU"
    )
    assert ov.parameters["backend"] == "openvino" and ov.parameters["ov_device"] == "CPU"
    assert ov.instance_kind == "KIND_CPU"
    assert 'key: "backend" value { string_value: "openvino" }' in ov.to_pbtxt()


def test_export_cli_writes_an_openvino_serving_repository(tmp_path):
    """scaseg-export --triton-repo R --triton-openvino CPU: the Python model's config asks for
    OpenVINO on the CPU; the native models are as without the flag."""
    from typer.testing import CliRunner

    from export import cli
    from export.triton_repo import write_triton_repo

    onnx = build_model(tmp_path / "m.fp32.onnx")
    plain = write_triton_repo([onnx], tmp_path / "plain")
    ov = write_triton_repo([onnx], tmp_path / "ov", openvino_device="CPU")
    text = (ov / "m_fp32" / "config.pbtxt").read_text()
    assert 'key: "backend"' in text and 'string_value: "openvino"' in text
    assert 'string_value: "CPU"' in text and "KIND_CPU" in text
    assert (ov / "m_fp32_onnx" / "config.pbtxt").read_text() == (
        plain / "m_fp32_onnx" / "config.pbtxt"
    ).read_text()
    result = CliRunner().invoke(cli.app, ["--help"], prog_name="scaseg-export")
    assert "--triton-openvino" in result.output
