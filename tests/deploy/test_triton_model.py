"""model.py's Triton entry points against a FAKE `triton_python_backend_utils` (a stand-in for
the module Triton's stub provides; the real one is exercised by test_triton_server.py)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from export import triton_model
from export.triton_model import TritonPythonModel
from runtime.segmenter import Segmenter
from tests.support.deploy_models import build_model
from tests.support.fake_triton import fake_pb_utils, image_tensor


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake_pb_utils())
    onnx = build_model(tmp_path / "m.fp32.onnx")
    # model.py looks for the artifact next to itself, as in a generated repository.
    monkeypatch.setattr(triton_model, "_HERE", tmp_path)
    config = {"name": "m", "parameters": {"artifact": {"string_value": onnx.name}}}
    m = TritonPythonModel()
    m.initialize({"model_config": json.dumps(config), "model_instance_kind": "CPU"})
    yield m, onnx
    m.finalize()


def test_requests_get_labels_at_their_frame_size(model):
    m, onnx = model
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (n, 40, 56, 3), np.uint8) for n in (1, 3)]
    responses = m.execute([{"image": image_tensor(b)} for b in batches])
    with Segmenter(onnx, provider="cpu") as seg:
        for batch, response in zip(batches, responses):
            assert response.error is None
            (out,) = response.output_tensors
            assert out.name == "labels" and out.as_numpy().shape == batch.shape[:3]
            np.testing.assert_array_equal(out.as_numpy(), np.stack([seg(f) for f in batch]))


def test_a_failure_answers_every_request_with_the_reason(model, monkeypatch):
    m, _ = model

    def out_of_memory(batch):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(m.server.segmenter.backend, "infer", out_of_memory)
    frames = np.zeros((1, 8, 8, 3), np.uint8)
    responses = m.execute([{"image": image_tensor(frames)}, {"image": image_tensor(frames)}])
    assert [r.error for r in responses] == ["scaseg: RuntimeError: CUDA out of memory"] * 2


def test_missing_artifact_parameter_says_how_to_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake_pb_utils())
    with pytest.raises(ValueError, match="regenerate the repository"):
        TritonPythonModel().initialize({"model_config": json.dumps({"name": "m"})})


def test_slide_artifact_is_served_frame_by_frame(tmp_path, monkeypatch):
    """A slide sidecar through Triton's entry points: requests of two frame sizes in one
    execute() each get the labels local slide inference gives."""
    from tests.support.deploy_models import build_slide_model

    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake_pb_utils())
    onnx = build_slide_model(tmp_path / "slide.fp32.onnx")
    monkeypatch.setattr(triton_model, "_HERE", tmp_path)
    config = {"name": "s", "parameters": {"artifact": {"string_value": onnx.name}}}
    m = TritonPythonModel()
    m.initialize({"model_config": json.dumps(config), "model_instance_kind": "CPU"})
    rng = np.random.default_rng(5)
    batches = [
        rng.integers(0, 256, shape, np.uint8) for shape in [(2, 90, 150, 3), (1, 30, 300, 3)]
    ]
    try:
        responses = m.execute([{"image": image_tensor(b)} for b in batches])
    finally:
        m.finalize()
    with Segmenter(onnx, provider="cpu") as seg:
        for batch, response in zip(batches, responses):
            assert response.error is None
            (out,) = response.output_tensors
            np.testing.assert_array_equal(out.as_numpy(), np.stack([seg(f) for f in batch]))
