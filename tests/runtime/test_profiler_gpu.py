"""The real TensorRT profiling path: stream-synchronised H2D/compute/D2H, IProfiler layers and
the engine's device memory. Needs TensorRT and a CUDA GPU; skipped (with the reason) elsewhere.
These are the tests that prove what the FAKE-based ones cannot."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def engine(model_dir):
    from export.trt_build import EngineOptions, build_engine, engine_unavailable_reason

    reason = engine_unavailable_reason()
    if reason is not None:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {reason}")
    from tests.support.tiny_onnx import build_tiny_model as build_model

    onnx = build_model(model_dir / "gpu_tiny.fp32.onnx")
    return build_engine(onnx, EngineOptions(force=True)).path


def test_profile_of_a_real_engine_has_gpu_stages_layers_and_memory(tmp_path, engine):
    from runtime.profiling.cli import app

    out = tmp_path / "prof"
    result = CliRunner().invoke(app, [str(engine), "--frames", "20", "--warmup", "5", "--layers",
                                      "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "profile.json").read_text())
    assert {"h2d", "infer", "d2h"} <= set(report["stages"])
    assert report["layers"]["source"].startswith("tensorrt") and report["layers"]["layers"]
    assert report["memory"]["engine_device_memory_mb"] is not None
    gpu = report["environment"]["gpu"]
    assert gpu["name"] and gpu["compute_capability"]
