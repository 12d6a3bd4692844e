"""The engine build checks the ONNX's estimated memory need against the GPU's free memory before
TensorRT's builder runs; driven by FAKE tensorrt and CUDA (tests/support/fake_tensorrt.py,
fake_cuda.py), so it proves our order of calls and arithmetic, not a real GPU's numbers.
"""

from __future__ import annotations

import warnings

import pytest

from export.trt_build import EngineOptions, build_engine
from runtime.memory_estimate import DeviceMemoryError, DeviceMemoryWarning, estimate_for_file
from tests.support.fake_cuda import FakeCuda
from tests.support.fake_tensorrt import FakeTrt
from tests.support.tiny_onnx import PROFILE_SIZES, build_tiny_model

MAX_INPUT = (2, 3, *PROFILE_SIZES[2])  # the tiny dynamic model's profile max (batch 2)


def _need(path, shape=MAX_INPUT) -> int:
    """What the build must find free: activations at `shape` (the profile's max by default)
    plus the weights."""
    est = estimate_for_file(path, {"input": shape})
    return est.peak_bytes + est.weights_bytes


def _build(tmp_path, free: int, total: int = 8 << 30):
    path = build_tiny_model(tmp_path / "tiny.fp32.onnx", dynamic=True)
    trt = FakeTrt("10.3.0")
    cuda = FakeCuda(free_bytes=free, total_bytes=total)
    return path, trt, lambda: build_engine(path, EngineOptions(), trt=trt, cuda=cuda)


def test_a_build_past_the_gpus_whole_memory_is_refused_before_tensorrt_parses(tmp_path):
    path = build_tiny_model(tmp_path / "probe.fp32.onnx", dynamic=True)
    need = _need(path)
    assert need > 4 * _need(path, (1, 3, *PROFILE_SIZES[1]))  # max, not opt, is what counts
    path, trt, build = _build(tmp_path, free=need - 1, total=need - 1)
    with pytest.raises(DeviceMemoryError, match=r"building tiny\.fp32\.onnx needs about"):
        build()
    assert trt.fake.parsed == [] and not path.with_suffix(".engine").exists()


def test_a_build_past_free_memory_warns_and_builds(tmp_path):
    # TensorRT fuses layers and may need less than the graph's liveness estimate; the engine's
    # own exact need is checked before it runs (runtime/backends/trt_backend.py).
    need = _need(build_tiny_model(tmp_path / "probe.fp32.onnx", dynamic=True))
    path, trt, build = _build(tmp_path, free=need - 1)
    with pytest.warns(DeviceMemoryWarning, match="it will not fit.*building anyway"):
        result = build()
    assert result.path.exists() and trt.fake.parsed == [str(path)]


def test_a_build_that_crowds_free_memory_warns_and_builds(tmp_path):
    need = _need(build_tiny_model(tmp_path / "probe.fp32.onnx", dynamic=True))
    path, trt, build = _build(tmp_path, free=need)  # fits, with nothing to spare
    with pytest.warns(DeviceMemoryWarning, match="--strip-attention grid"):
        result = build()
    assert result.path.exists() and trt.fake.parsed == [str(path)]


def test_a_build_with_room_to_spare_says_nothing(tmp_path):
    _, _, build = _build(tmp_path, free=6 << 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeviceMemoryWarning)
        assert build().path.exists()
