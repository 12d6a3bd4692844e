"""TensorRT backend logic, run against FAKES (tests/support/fake_tensorrt.py).

These tests prove the backend's own bookkeeping (sidecar checks, binding by name, buffer reuse,
shape changes, CUDA-graph replay). They do NOT prove that real TensorRT, pycuda or cuda-python
calls work; the `gpu`-marked test at the end does, where a GPU and TensorRT exist.
"""

from __future__ import annotations

import numpy as np
import pytest

from runtime import trt_compat
from runtime.backends import BackendOptions, open_backend
from runtime.backends.trt_backend import (
    EngineMismatchError,
    RunningEnv,
    TrtBackend,
    check_engine_provenance,
)
from runtime.deps import MissingDependencyError, available
from runtime.meta import MetaError, read_meta, write_meta
from runtime.segmenter import Segmenter
from tests.support.fake_cuda import FakeCuda
from tests.support.fake_engine import BUILD, PROVENANCE, K, make_engine
from tests.support.fake_tensorrt import FakeTrt, fake_forward


def open_fake(path, meta, cuda_graph=False, version="10.3.0.30", cuda=None):
    cuda = cuda or FakeCuda()
    trt = FakeTrt(version, cuda=cuda)
    backend = TrtBackend(path, meta, BackendOptions(cuda_graph=cuda_graph), tensorrt=trt, cuda=cuda)
    return backend, cuda


def batch(n=1, h=64, w=64, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, h, w)).astype(np.float32)


# --- sidecar provenance -------------------------------------------------------------------------

RUNNING = RunningEnv("10.3.0.30", "Fake GPU", "8.7")


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"tensorrt_version": "8.6.1"}, "TensorRT 8.6.1 (this device runs 10.3.0.30)"),
        ({"compute_capability": "8.9"}, "compute capability 8.9 (this GPU is 8.7)"),
        ({"gpu_name": "NVIDIA GeForce RTX 4090"}, "GPU 'NVIDIA GeForce RTX 4090'"),
    ],
)
def test_engine_for_another_device_is_refused_with_the_rebuild_command(tmp_path, change, expect):
    with pytest.raises(EngineMismatchError) as err:
        check_engine_provenance({**PROVENANCE, **change}, RUNNING, tmp_path / "m.engine")
    message = str(err.value)
    assert expect in message
    assert message.endswith(f"rebuild on this device: {BUILD}") and "\n" not in message


@pytest.mark.parametrize("built", ["10.3.1.0", "10.3.0.26", "10.3", "unknown"])
def test_any_other_tensorrt_build_is_refused_patch_and_build_number_included(tmp_path, built):
    """TensorRT deserializes plans of its own library version only, so a patch or build-number
    difference is refused too, in one line, before the engine is deserialized."""
    with pytest.raises(EngineMismatchError) as err:
        check_engine_provenance(
            {**PROVENANCE, "tensorrt_version": built}, RUNNING, tmp_path / "m.engine"
        )
    message = str(err.value)
    assert f"TensorRT {built} (this device runs 10.3.0.30)" in message and "\n" not in message
    assert "rebuild on this device" in message
    path, meta = make_engine(tmp_path, engine={**PROVENANCE, "tensorrt_version": built})
    cuda = FakeCuda()
    trt = FakeTrt("10.3.0.30", cuda=cuda)
    with pytest.raises(EngineMismatchError, match="rebuild on this device"):
        TrtBackend(path, meta, BackendOptions(), tensorrt=trt, cuda=cuda)
    assert trt.fake.runtimes == []  # never deserialized


def test_the_same_tensorrt_version_is_accepted(tmp_path):
    check_engine_provenance({**PROVENANCE}, RUNNING, tmp_path / "m.engine")
    assert trt_compat.same_library_version("10.3.0.30", "10.3.0.30.post1")
    assert not trt_compat.same_library_version("", "")


def test_engine_without_provenance_is_refused(tmp_path):
    with pytest.raises(
        EngineMismatchError, match=r"records no engine provenance.*rebuild on this device"
    ):
        check_engine_provenance(None, RUNNING, tmp_path / "m.engine")


def test_mismatch_is_refused_before_deserializing(tmp_path):
    path, meta = make_engine(tmp_path, engine={**PROVENANCE, "tensorrt_version": "8.6.1"})
    cuda = FakeCuda()
    trt = FakeTrt(cuda=cuda)
    with pytest.raises(EngineMismatchError, match="rebuild on this device"):
        TrtBackend(path, meta, BackendOptions(), tensorrt=trt, cuda=cuda)
    assert trt.fake.runtimes == [] and cuda.closed


def test_engine_without_sidecar_is_refused_before_importing_tensorrt(tmp_path):
    path, _ = make_engine(tmp_path, sidecar=False)
    with pytest.raises(MetaError, match="has no sidecar"):
        open_backend(path)


def test_missing_tensorrt_names_the_fix(tmp_path):
    if available("tensorrt"):
        pytest.skip("tensorrt is installed here")
    path, _ = make_engine(tmp_path)
    with pytest.raises(MissingDependencyError, match=r"tensorrt is needed to run .engine files"):
        open_backend(path)


def test_unreadable_engine_reports_tensorrt_error_and_rebuild(tmp_path):
    path, meta = make_engine(tmp_path)
    path.write_bytes(b"not an engine")
    with pytest.raises(
        EngineMismatchError, match=r"magicTag.*rebuild on this device: scaseg-export"
    ):
        open_fake(path, meta)


def test_old_tensorrt_is_refused(tmp_path):
    path, meta = make_engine(tmp_path, engine={**PROVENANCE, "tensorrt_version": "8.2.1"})
    with pytest.raises(RuntimeError, match=r"TensorRT 8\.2\.1 is too old"):
        open_fake(path, meta, version="8.2.1")


def test_sidecar_and_engine_dtypes_must_agree(tmp_path):
    path, meta = make_engine(tmp_path, input_dtype="uint8")
    with pytest.raises(
        MetaError, match="'input' is uint8 in the engine but float32 in the sidecar"
    ):
        open_fake(path, meta)


# --- inference bookkeeping ----------------------------------------------------------------------


def test_every_tensor_is_bound_by_name_and_output_is_correct(tmp_path):
    path, meta = make_engine(tmp_path)
    backend, cuda = open_fake(path, meta)
    x = batch()
    out = backend.infer(x)
    np.testing.assert_allclose(out, fake_forward(x, K), rtol=1e-6)
    bound = {c[1] for c in backend._context.fake_calls if c[0] == "set_tensor_address"}
    assert bound == {"input", "logits", "aux"}
    assert cuda.device.log[-1] == ("sync",)  # infer returns after the stream is synchronised
    backend.close()


def test_buffers_are_reused_until_the_shape_changes(tmp_path):
    path, meta = make_engine(tmp_path, dynamic=True)
    backend, cuda = open_fake(path, meta)
    backend.infer(batch())
    first = backend.allocations
    assert first == 3  # input, logits, aux
    backend.infer(batch(seed=1))
    assert backend.allocations == first  # same shape: nothing reallocated
    out = backend.infer(batch(n=2, h=96, w=128))
    assert out.shape == (2, K, 24, 32)
    assert backend.allocations == first + 3
    assert ("set_input_shape", "input", (2, 3, 96, 128)) in backend._context.fake_calls
    backend.close()
    assert cuda.device.memory == {} and cuda.pinned_live == 0 and cuda.closed


def test_results_are_copies_not_the_reused_buffer(tmp_path):
    path, meta = make_engine(tmp_path)
    backend, _ = open_fake(path, meta)
    first = backend.infer(batch(seed=0))
    kept = first.copy()
    backend.infer(batch(seed=1))
    np.testing.assert_array_equal(first, kept)


def test_shapes_outside_the_engine_are_refused(tmp_path):
    path, meta = make_engine(tmp_path, dynamic=True)
    backend, _ = open_fake(path, meta)
    with pytest.raises(ValueError, match=r"outside .*optimization profile"):
        backend.infer(batch(h=256, w=256))
    static_path, static_meta = make_engine(tmp_path / "..", dynamic=False)
    static, _ = open_fake(static_path, static_meta)
    with pytest.raises(ValueError, match=r"built for input \(1, 3, 64, 64\)"):
        static.infer(batch(h=32, w=32))


def test_failed_execution_raises(tmp_path):
    path, meta = make_engine(tmp_path)
    backend, _ = open_fake(path, meta)
    backend._context.fake_fail_execute = True
    with pytest.raises(RuntimeError, match="execute_async_v3 failed"):
        backend.infer(batch())


def test_cuda_graph_is_captured_once_per_shape_and_replayed(tmp_path):
    path, meta = make_engine(tmp_path, dynamic=True)
    backend, cuda = open_fake(path, meta, cuda_graph=True)
    log = cuda.device.log
    x = batch()
    np.testing.assert_allclose(backend.infer(x), fake_forward(x, K), rtol=1e-6)
    x2 = batch(seed=3)
    np.testing.assert_allclose(backend.infer(x2), fake_forward(x2, K), rtol=1e-6)
    # one warm-up enqueue outside the capture, then every infer replays the graph
    assert [e[0] for e in log if e[0] in ("execute", "launch")] == [
        "execute", "launch", "execute", "launch", "execute",
    ]  # fmt: skip
    backend.infer(batch(n=2, h=32, w=32))
    assert ("destroy_graph",) in log  # the old shape's graph is dropped
    backend.close()


def test_a_failed_graph_capture_fails_again_instead_of_running_without_the_graph(tmp_path):
    path, meta = make_engine(tmp_path)
    backend, cuda = open_fake(path, meta, cuda_graph=True)
    real_begin, calls = cuda.begin_capture, []

    def failing_begin():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("cudaErrorStreamCaptureUnsupported (fake)")
        real_begin()

    cuda.begin_capture = failing_begin
    with pytest.raises(RuntimeError, match="StreamCaptureUnsupported"):
        backend.infer(batch())
    backend.infer(batch())  # captured now: the shape was not taken as prepared after the failure
    assert len(calls) == 2 and backend._graph is not None
    backend.close()


def test_segmenter_runs_on_the_trt_backend(tmp_path):
    path, _ = make_engine(tmp_path)
    backend, _ = open_fake(path, read_meta(path))
    seg = Segmenter(backend)
    labels = seg(np.full((37, 53), 200, np.uint8))  # odd-size grayscale frame
    assert labels.shape == (37, 53) and labels.max() < K


def test_scaseg_run_drives_an_engine_end_to_end_on_fakes(tmp_path):
    """The real scaseg-run CLI in a subprocess, its TensorRT and CUDA replaced by FAKES
    (tests/runtime/fake_trt_cli.py): source -> TrtBackend -> overlay video and label PNGs, with
    the same labels as the backend in-process. Proves the wiring, not real TensorRT."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import cv2

    from scenes import write_scene_video

    path, _ = make_engine(tmp_path)
    video = tmp_path / "clip.mp4"
    write_scene_video(video, 0, 48, 80, 5)
    repo = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-m", "tests.runtime.fake_trt_cli", str(video), "--model", str(path),
         "--out", str(tmp_path / "out.mp4"), "--labels-out", str(tmp_path / "labels")],
        capture_output=True, text=True, timeout=60, cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "on TensorRT 10.3.0.30 on Fake GPU (fake-cuda)" in run.stderr + run.stdout
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    backend, _ = open_fake(path, read_meta(path))
    seg = Segmenter(backend)
    src = cv2.VideoCapture(str(video))
    for i in range(5):
        frame_bgr = src.read()[1]
        written = cv2.imread(str(tmp_path / "labels" / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        expected = seg(frame_bgr)
        assert written.shape[:2] == expected.shape == (48, 80)
        if written.ndim == 2:  # single-channel PNG: class ids as they are
            assert np.array_equal(written, expected)
        else:  # palettised PNG expanded by OpenCV: compare colours
            assert np.array_equal(written[..., :3], seg.colorize(expected))


def test_trt_versions_parse():
    assert trt_compat.parse_version("10.3.0.30") == (10, 3, 0, 30)
    assert trt_compat.parse_version("8.6.1.post1") == (8, 6, 1)
    assert trt_compat.parse_version("10.0.0rc2") == (10, 0, 0)
    assert trt_compat.major_minor("11.4.0.106") == "11.4"


def _build_real_engine(trt, onnx_path, engine_path) -> None:
    """Test scaffolding: build an engine with the real TensorRT builder (scaseg-export does this
    for real artifacts)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    from export.trt_compat import network_flags  # the builder's one version branch

    network = builder.create_network(network_flags(trt, strongly_typed=False))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes()), [
        parser.get_error(i) for i in range(parser.num_errors)
    ]
    serialized = builder.build_serialized_network(network, builder.create_builder_config())
    assert serialized is not None
    engine_path.write_bytes(bytes(serialized))


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_real_tensorrt_engine_matches_onnxruntime(tmp_path, plain_model, cuda_graph):
    """The only test here that touches real TensorRT and CUDA; skipped without them."""
    trt = pytest.importorskip("tensorrt", reason="needs TensorRT and a CUDA GPU")
    if not (
        available("pycuda.driver") or available("cuda.bindings.runtime") or available("cuda.cudart")
    ):
        pytest.skip("needs pycuda or cuda-python")
    if cuda_graph and not (available("cuda.bindings.runtime") or available("cuda.cudart")):
        pytest.skip("CUDA graphs need cuda-python")
    from runtime.cuda_mem import open_cuda

    cuda = open_cuda(0, need_graphs=cuda_graph)
    info = cuda.device_info()
    cuda.close()
    engine_path = tmp_path / "tiny.fp32.engine"
    _build_real_engine(trt, plain_model, engine_path)
    meta = read_meta(plain_model)
    provenance = {**PROVENANCE, "tensorrt_version": trt.__version__, "gpu_name": info.name,
                  "compute_capability": info.compute_capability}  # fmt: skip
    write_meta(engine_path, type(meta)(**{**meta.__dict__, "engine": provenance}))
    frame = np.random.default_rng(0).integers(0, 256, (48, 70, 3), np.uint8)
    reference = Segmenter(plain_model, provider="cpu")(frame)
    with Segmenter(engine_path, options=BackendOptions(cuda_graph=cuda_graph)) as seg:
        assert seg.description.startswith("TensorRT")
        for _ in range(3):  # buffers reused (and the graph replayed) on later frames
            labels = seg(frame)
        assert float((labels == reference).mean()) > 0.99


def test_layer_profiler_is_attached_and_refused_with_cuda_graphs(tmp_path):
    path, meta = make_engine(tmp_path)
    backend, _ = open_fake(path, meta)
    calls = []
    backend.set_layer_profiler(lambda name, ms: calls.append((name, ms)))
    backend._context.profiler.report_layer_time("conv", 0.25)  # what TensorRT calls per layer
    assert calls == [("conv", 0.25)]
    graphed, _ = open_fake(path, meta, cuda_graph=True)
    with pytest.raises(ValueError, match="does not work inside a CUDA graph"):
        graphed.set_layer_profiler(lambda name, ms: None)


def test_no_cuda_binding_names_both_options():
    if available("pycuda.driver") or available("cuda.bindings.runtime") or available("cuda.cudart"):
        pytest.skip("a CUDA binding is installed here")
    from runtime.cuda_mem import open_cuda

    with pytest.raises(MissingDependencyError, match=r"pycuda.*cuda"):
        open_cuda(0)
    with pytest.raises(MissingDependencyError, match="CUDA graphs need cuda-python"):
        open_cuda(0, need_graphs=True)


def test_open_backend_and_scaseg_run_take_tensorrt_and_cuda_from_the_caller(tmp_path):
    """Dependency injection, not patching: open_backend(tensorrt=, cuda=) and scaseg-run's app
    called with EngineApis as its context object run the engine on the given fakes."""
    from runtime.cli import EngineApis, app
    from runtime.cli_app import run_app
    from scenes import write_scene_video

    path, _ = make_engine(tmp_path)
    cuda = FakeCuda()
    trt = FakeTrt("10.3.0.30", cuda=cuda)
    with open_backend(path, tensorrt=trt, cuda=cuda) as backend:
        assert backend.infer(batch()).shape == (1, K, 16, 16)
    assert cuda.closed and len(trt.fake.runtimes) == 1

    video = tmp_path / "clip.mp4"
    write_scene_video(video, 0, 48, 80, 2)
    cuda = FakeCuda()
    trt = FakeTrt("10.3.0.30", cuda=cuda)
    argv = [str(video), "--model", str(path), "--labels-out", str(tmp_path / "labels")]
    with pytest.raises(SystemExit) as done:
        run_app(app, "scaseg-run", argv, obj=EngineApis(tensorrt=trt, cuda=cuda))
    assert done.value.code == 0
    assert len(trt.fake.runtimes) == 1 and ("execute",) in cuda.device.log and cuda.closed
    assert len(list((tmp_path / "labels").glob("*.png"))) == 2
