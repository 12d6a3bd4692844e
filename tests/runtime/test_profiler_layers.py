"""Per-layer timings: ONNX Runtime profiling for real on a tiny model; TensorRT's IProfiler path and
the engine-memory version branch against FAKES (they prove our aggregation, not TensorRT)."""

from __future__ import annotations

import numpy as np
import pytest

from runtime import trt_compat
from runtime.backends import BackendOptions, open_backend
from runtime.backends.trt_backend import TrtBackend
from runtime.errors import RunError
from runtime.profiling.envinfo import engine_device_memory_mb
from runtime.profiling.layer_profile import aggregate, parse_ort_trace, profile_layers, trt_op_type
from tests.support.fake_cuda import FakeCuda
from tests.support.fake_engine import make_engine
from tests.support.fake_tensorrt import FakeTrt


def _node(name: str, op: str, ts: int, dur: int) -> dict:
    return {
        "cat": "Node",
        "name": f"{name}_kernel_time",
        "ts": ts,
        "dur": dur,
        "args": {"op_name": op},
    }


def _run(ts: int, dur: int) -> dict:
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}


def test_ort_trace_drops_the_first_run_and_sums_per_node():
    events = [
        _run(0, 100), _node("conv1", "Conv", 10, 90),  # warm-up run: dropped
        _run(200, 100), _node("conv1", "Conv", 210, 40), _node("mm", "MatMul", 260, 20),
        _run(400, 100), _node("conv1", "Conv", 410, 60), _node("mm", "MatMul", 470, 20),
        {"cat": "Node", "name": "conv1_fence_before", "ts": 405, "dur": 5},  # older ORT: ignored
    ]  # fmt: skip
    total_ms, op_type, runs = parse_ort_trace(events, skip_runs=1)
    assert runs == 2 and total_ms == {"conv1": 0.1, "mm": 0.04}
    profile = aggregate(total_ms, op_type, runs, "test")
    assert [t.name for t in profile.layers] == ["conv1", "mm"]
    assert profile.layers[0].mean_ms == pytest.approx(0.05)
    assert profile.total_ms == pytest.approx(0.07)
    assert sum(t.share for t in profile.op_types) == pytest.approx(1.0)


def test_no_timings_is_an_error():
    with pytest.raises(RunError, match="no per-layer timings"):
        aggregate({}, {}, 3, "onnxruntime")


def test_onnxruntime_layers_of_a_real_model(plain_model):
    backend = open_backend(plain_model, options=BackendOptions(provider="cpu"))
    batch = np.zeros((1, 3, 64, 64), np.float32)
    profile = profile_layers(backend, BackendOptions(provider="cpu"), batch, runs=3)
    assert profile.runs == 3 and profile.source.startswith("onnxruntime")
    assert "CPUExecutionProvider" in profile.source
    assert any(t.op_type == "Conv" for t in profile.op_types)
    assert all(t.mean_ms >= 0 for t in profile.layers)
    data = profile.to_dict()
    assert set(data) == {"source", "runs", "total_ms", "layers", "op_types"}


@pytest.mark.parametrize(
    ("name", "op"),
    [
        ("/decode_head/blocks.0/attn/MatMul_1", "MatMul"),
        ("/backbone/patch_embed1/proj/Conv + /backbone/patch_embed1/act/Relu", "Conv+Relu"),
        ("Reformatting CopyNode for Input Tensor 0 to /head/Conv", "Reformat"),
        ("{ForeignNode[/decode_head/Transpose.../decode_head/Softmax]}", "ForeignNode (Myelin)"),
        ("PWN(/backbone/act/Mul, /backbone/act/Add)", "Pointwise (fused)"),
    ],
)
def test_trt_layer_names_give_op_types(name, op):
    assert trt_op_type(name) == op


FAKE_LAYERS = (("/backbone/Conv", 0.5), ("/decode_head/MatMul", 0.25))


def _fake_backend(tmp_path):
    path, meta = make_engine(tmp_path)
    cuda = FakeCuda()
    backend = TrtBackend(path, meta, BackendOptions(), tensorrt=FakeTrt(cuda=cuda), cuda=cuda)
    context = backend._context
    execute = context.execute_async_v3

    def execute_and_report(stream):  # what TensorRT does with enqueue_emits_profile (default)
        ok = execute(stream)
        if context.profiler is not None:
            for name, ms in FAKE_LAYERS:
                context.profiler.report_layer_time(name, ms)
        return ok

    context.execute_async_v3 = execute_and_report
    return backend


def test_fake_trt_iprofiler_layers_are_averaged_and_detached(tmp_path):
    backend = _fake_backend(tmp_path)
    batch = np.zeros((1, 3, 64, 64), np.float32)
    profile = profile_layers(backend, BackendOptions(), batch, runs=4)
    assert profile.runs == 4 and profile.source == "tensorrt 10.3.0.30 IProfiler"
    assert [(t.name, t.mean_ms) for t in profile.layers] == list(FAKE_LAYERS)  # warm-up excluded
    assert [t.op_type for t in profile.layers] == ["Conv", "MatMul"]
    assert backend._context.profiler is None  # detached: later inferences run unprofiled
    backend.close()


class _Engine:
    device_memory_size = 1 << 20
    device_memory_size_v2 = 3 << 20


class _Trt:
    def __init__(self, version: str) -> None:
        self.__version__ = version


@pytest.mark.parametrize(
    ("version", "expected"),
    [("8.6.1", 1 << 20), ("10.0.1", 1 << 20), ("10.1.0", 3 << 20), ("11.4.0", 3 << 20)],
)
def test_engine_device_memory_uses_the_v2_property_from_tensorrt_10_1(version, expected):
    assert trt_compat.device_memory_bytes(_Trt(version), _Engine()) == expected


def test_engine_memory_is_none_for_non_trt_backends_and_read_from_fake_engines(tmp_path):
    assert engine_device_memory_mb(object()) is None
    backend = _fake_backend(tmp_path)
    backend._engine.device_memory_size_v2 = 8 << 20  # FAKE engine: set what TensorRT would report
    assert engine_device_memory_mb(backend) == pytest.approx(8.0)
    backend.close()
