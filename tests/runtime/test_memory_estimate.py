"""The activation-memory estimate (runtime/memory_estimate.py) on hand-built ONNX graphs whose
peak is worked out by hand, on the bundled demo model, and the free-memory checks it feeds: in
the TensorRT backend and the CUDA wrappers, driven by FAKES (tests/support/fake_tensorrt.py,
fake_cuda.py). The fakes prove our bookkeeping, never that a real GPU reports these numbers.
"""

from __future__ import annotations

import warnings
from enum import IntEnum
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime import cuda_mem, memory_estimate
from runtime.backends import BackendOptions
from runtime.backends.trt_backend import TrtBackend
from runtime.cuda_mem import CudartApi, PycudaApi, shared_memory_free
from runtime.errors import BudgetError, RunError, UserInputError
from runtime.memory_estimate import (
    MIB,
    DeviceMemoryError,
    DeviceMemoryWarning,
    MemoryEstimate,
    check_device_memory,
    estimate_for_file,
    estimate_peak_activation,
)
from tests.support.fake_cuda import FakeCuda, FakeCudaContextError, FakePycuda
from tests.support.fake_engine import PROVENANCE, make_engine
from tests.support.fake_tensorrt import FakeCudaEngine, FakeTrt
from tests.support.tiny_onnx import build_tiny_model

DEMO = Path(__file__).resolve().parents[2] / "runtime" / "models" / "scaseg_t_demo.fp32.onnx"
F = TensorProto.FLOAT
ROW = 256 * 4  # bytes of one (1, 256) float32 tensor


def _model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _x(shape=(1, 256), name="x", elem=F):
    return helper.make_tensor_value_info(name, elem, list(shape))


def _out(name: str, elem=F):
    return helper.make_tensor_value_info(name, elem, None)  # shape left to inference


# --- the liveness pass, on graphs whose peak is known by hand --------------------------------


def test_chain_peak_is_the_largest_step_with_its_input_still_live():
    # x (1 KiB) -> c1 = concat(x, x) (2 KiB) -> c2 = concat(c1, c1) (4 KiB) -> y = relu(c2) (4 KiB)
    nodes = [
        helper.make_node("Concat", ["x", "x"], ["c1"], name="cat1", axis=1),
        helper.make_node("Concat", ["c1", "c1"], ["c2"], name="cat2", axis=1),
        helper.make_node("Relu", ["c2"], ["y"], name="relu"),
    ]
    est = estimate_peak_activation(_model(nodes, [_x()], [_out("y")]))
    # steps: x+c1 = 3 KiB (x freed), c1+c2 = 6 KiB (c1 freed), c2+y = 8 KiB
    assert est.peak_bytes == 8 * ROW and est.peak_node == "relu (Relu)"
    assert est.largest_tensor.name == "c2" and est.largest_tensor.shape == (1, 1024)
    assert est.largest_tensor.bytes == 4 * ROW
    assert (est.unknown_tensors, est.weights_bytes, est.activation_tensors) == (0, 0, 4)
    assert est.notes == ()


def test_a_tensor_read_again_later_stays_live_across_the_branch():
    # a is read by the last node, so it is live while b and c are computed
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Sigmoid", ["a"], ["b"], name="sigmoid"),
        helper.make_node("Tanh", ["b"], ["c"], name="tanh"),
        helper.make_node("Add", ["a", "c"], ["y"], name="add"),
    ]
    est = estimate_peak_activation(_model(nodes, [_x()], [_out("y")]))
    # x | a+x -> a | a+b | a+b+c -> a+c | a+c+y: 3 rows, first reached at tanh
    assert est.peak_bytes == 3 * ROW and est.peak_node == "tanh (Tanh)"


def test_a_graph_output_stays_live_to_the_end():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Sigmoid", ["a"], ["b"], name="sigmoid"),
        helper.make_node("Tanh", ["b"], ["y"], name="tanh"),
    ]
    kept = estimate_peak_activation(_model(nodes, [_x()], [_out("a"), _out("y")]))
    dropped = estimate_peak_activation(_model(nodes, [_x()], [_out("y")]))
    assert kept.peak_bytes == 3 * ROW  # a (an output) + b + y at the last step
    assert dropped.peak_bytes == 2 * ROW  # a freed once sigmoid has read it


def test_an_unread_output_of_a_node_is_freed_after_its_step():
    nodes = [
        helper.make_node("Split", ["x"], ["h1", "h2"], name="split", axis=1, num_outputs=2),
        helper.make_node("Relu", ["h1"], ["y"], name="relu"),
    ]
    est = estimate_peak_activation(_model(nodes, [_x()], [_out("y")], opset=18))
    # x + h1 + h2 = 2 rows at split; h2 (never read) and x are freed; then h1 + y = 1 row
    assert est.peak_bytes == 2 * ROW and est.peak_node == "split (Split)"


def test_initializers_are_weights_not_activations():
    bias = numpy_helper.from_array(np.zeros((1, 256), np.float32), "bias")  # kept for inference
    big = numpy_helper.from_array(np.zeros((256, 256), np.float32), "w")  # passed as a typed input
    nodes = [
        helper.make_node("Add", ["x", "bias"], ["a"], name="add"),
        helper.make_node("MatMul", ["a", "w"], ["y"], name="matmul"),
    ]
    est = estimate_peak_activation(_model(nodes, [_x()], [_out("y")], [bias, big]))
    assert est.peak_bytes == 2 * ROW and est.unknown_tensors == 0  # y's shape came through w
    assert est.weights_bytes == ROW + 256 * 256 * 4


def test_an_initializer_also_listed_as_a_graph_input_is_still_a_weight():
    w = numpy_helper.from_array(np.zeros((1, 256), np.float32), "w")
    nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="add")]
    model = _model(nodes, [_x(), _x(name="w")], [_out("y")], [w])  # IR < 4 style
    est = estimate_peak_activation(model)
    assert est.peak_bytes == 2 * ROW and est.weights_bytes == ROW


def test_constant_outputs_are_weights_and_feed_shape_inference():
    value = helper.make_tensor("c", F, [1, 256], np.ones(256, np.float32))
    shape = helper.make_tensor("s", TensorProto.INT64, [2], [16, 16])
    nodes = [
        helper.make_node("Constant", [], ["c"], name="const", value=value),
        helper.make_node("Constant", [], ["s"], name="shape", value=shape),
        helper.make_node("Add", ["x", "c"], ["a"], name="add"),
        helper.make_node("Reshape", ["a", "s"], ["y"], name="reshape"),
    ]
    est = estimate_peak_activation(_model(nodes, [_x()], [_out("y")]))
    assert est.weights_bytes == ROW + 16
    assert est.peak_bytes == 2 * ROW and est.unknown_tensors == 0


def test_dynamic_input_is_bound_by_input_shapes_and_data_propagation_sizes_reshape():
    x = helper.make_tensor_value_info("x", F, ["n", 3, "h", "w"])
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Reshape", ["a", "s"], ["y"], name="reshape"),  # needs s's values
    ]
    model = _model(nodes, [x], [_out("y")])
    est = estimate_peak_activation(model, {"x": (2, 3, 8, 16)})
    one = 2 * 3 * 8 * 16 * 4
    assert est.unknown_tensors == 0 and est.input_shapes == {"x": (2, 3, 8, 16)}
    assert est.peak_bytes == 2 * one + 4 * 8  # x + a + s (4 int64) at the shape step
    bigger = estimate_peak_activation(model, {"x": (2, 3, 16, 16)})
    assert bigger.peak_bytes > est.peak_bytes

    unbound = estimate_peak_activation(model)
    assert unbound.unknown_tensors == 3 and unbound.peak_bytes == 32  # only s: rank 4 is known
    assert any("'x' has dynamic dimensions (n, h, w)" in n for n in unbound.notes)
    assert any("lower bound" in n for n in unbound.notes)


def test_shapes_stored_in_the_model_never_override_the_bound_input_size():
    x = helper.make_tensor_value_info("x", F, ["n", 256])
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])]
    model = _model(nodes, [x], [_out("y")])
    model.graph.value_info.append(_x((1, 256), name="a"))  # stored when exported at batch 1
    assert estimate_peak_activation(model, {"x": (4, 256)}).peak_bytes == 2 * 4 * ROW


def test_shapes_stored_in_the_model_fill_what_inference_cannot_size():
    nodes = [helper.make_node("Mystery", ["x"], ["y"], name="m", domain="com.example")]
    graph = helper.make_graph(nodes, "g", [_x()], [_x((1, 512), name="y")])
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
    )
    est = estimate_peak_activation(model)
    assert est.unknown_tensors == 0 and est.peak_bytes == 3 * ROW


def test_external_weights_are_sized_from_their_dims_and_never_read(tmp_path):
    w = numpy_helper.from_array(np.ones((256, 256), np.float32), "w")
    shape = numpy_helper.from_array(np.array([16, 16], np.int64), "s")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["a"]),
        helper.make_node("Reshape", ["a", "s"], ["y"]),
    ]
    model = _model(nodes, [_x()], [_out("y")], [w, shape])
    path = tmp_path / "m.onnx"
    # w (256 KiB) goes to the data file, s (16 bytes) stays in the model
    onnx.save_model(model, str(path), save_as_external_data=True, size_threshold=1024)
    data = [f for f in tmp_path.iterdir() if f != path]
    assert len(data) == 1
    data[0].unlink()  # the weights file is gone: nothing may need it
    est = estimate_for_file(path)
    assert est.weights_bytes == 256 * 256 * 4 + 16
    assert est.peak_bytes == 2 * ROW and est.unknown_tensors == 0  # y: (16, 16) from s's values
    assert not any("failed" in n for n in est.notes)


def test_a_data_dependent_shape_is_counted_as_unknown_not_as_zero():
    nodes = [
        helper.make_node("NonZero", ["x"], ["nz"], name="nonzero"),
        helper.make_node("Relu", ["x"], ["y"], name="relu"),
    ]
    model = _model(nodes, [_x()], [_out("nz", TensorProto.INT64), _out("y")])
    est = estimate_peak_activation(model)
    assert est.unknown_tensors == 1 and est.peak_bytes == 2 * ROW
    assert any("nz" in n and "unknown size" in n for n in est.notes)
    assert "1 tensor(s) of unknown size" in est.summary()


def test_custom_operators_leave_their_outputs_unknown_without_failing():
    nodes = [helper.make_node("Mystery", ["x"], ["y"], name="m", domain="com.example")]
    graph = helper.make_graph(nodes, "g", [_x()], [_out("y")])
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
    )
    est = estimate_peak_activation(model)
    assert est.unknown_tensors == 1 and est.peak_bytes == ROW


def test_tensors_read_inside_a_subgraph_stay_live_until_the_node_runs():
    then_g = helper.make_graph(
        [helper.make_node("Identity", ["a"], ["t"])], "then", [], [_x(name="t")]
    )
    else_g = helper.make_graph(
        [helper.make_node("Identity", ["b"], ["e"])], "else", [], [_x(name="e")]
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Sigmoid", ["x"], ["b"], name="sigmoid"),
        helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then_g, else_branch=else_g),
    ]
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    est = estimate_peak_activation(_model(nodes, [_x(), cond], [_out("y")]))
    # a is read only inside the If's branch, so it is live through sigmoid: x+a+b (+1 byte cond)
    assert est.peak_bytes == 3 * ROW + 1 and est.peak_node == "sigmoid (Sigmoid)"
    assert any("subgraphs (If)" in n for n in est.notes)


def test_bad_input_shapes_are_user_errors_and_an_unknown_name_is_noted():
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [_x()], [_out("y")])
    with pytest.raises(UserInputError, match="2 dimensions, but input_shapes gives 3"):
        estimate_peak_activation(model, {"x": (1, 256, 1)})
    with pytest.raises(UserInputError, match="fixed size 256 on axis 1"):
        estimate_peak_activation(model, {"x": (1, 512)})
    with pytest.raises(UserInputError, match="tuple of ints"):
        estimate_peak_activation(model, {"x": (1, 25.6)})
    with pytest.raises(UserInputError, match=r"every dimension must be 1\.\."):
        estimate_peak_activation(model, {"x": (1, 0)})
    est = estimate_peak_activation(model, {"image": (1, 256)})
    assert any("['image'], which are not graph inputs" in n for n in est.notes)
    assert est.peak_bytes == 2 * ROW


def test_a_graph_over_the_node_limit_is_refused(monkeypatch):
    monkeypatch.setattr(memory_estimate, "MAX_NODES", 3)
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(4)]
    model = _model(nodes, [_x(name="t0")], [_out("t4")])
    with pytest.raises(BudgetError, match="more than 3 nodes"):
        estimate_peak_activation(model)


def test_peak_mb_is_mebibytes_rounded_to_a_tenth():
    est = MemoryEstimate(
        peak_bytes=3 * MIB + 200_000,
        peak_node=None,
        largest_tensor=None,
        weights_bytes=0,
        unknown_tensors=0,
        activation_tensors=0,
    )
    assert est.peak_mb == 3.2


# --- real files ---------------------------------------------------------------------------------


def test_the_demo_model_needs_a_plausible_amount_of_activation_memory():
    """The demo is exported at a fixed 1x3x512x512 (its sidecar). A manual bound: its decode
    head concatenates four 128-channel maps at 1/4 resolution, 512x128x128 float32 = 32 MiB,
    and that concat is live with its inputs; the whole network's activations at 512x512 are
    far below 256 MiB."""
    est = estimate_for_file(DEMO)
    assert est.unknown_tensors == 0 and est.notes == ()
    assert est.largest_tensor.bytes >= 32 * MIB
    assert 2 * 32 * MIB <= est.peak_bytes <= 256 * MIB
    assert est.weights_bytes == pytest.approx(DEMO.stat().st_size, rel=0.1)
    assert estimate_for_file(DEMO, {"input": (1, 3, 512, 512)}).peak_bytes == est.peak_bytes
    with pytest.raises(UserInputError, match="fixed size 512"):
        estimate_for_file(DEMO, {"input": (1, 3, 1024, 1024)})


def test_a_dynamic_model_file_grows_with_the_input_size(tmp_path):
    path = build_tiny_model(tmp_path / "tiny.fp32.onnx", dynamic=True)
    small = estimate_for_file(path, {"input": (1, 3, 64, 64)})
    large = estimate_for_file(path, {"input": (2, 3, 128, 128)})
    conv = (4 * 3 * 4 * 4 + 4) * 4
    assert small.weights_bytes == large.weights_bytes == conv
    assert small.peak_bytes == 3 * 64 * 64 * 4 + 4 * 16 * 16 * 4  # input + logits
    assert large.peak_bytes == 8 * small.peak_bytes


# --- judging a need against free memory ----------------------------------------------------------


def test_a_need_that_fits_with_margin_passes_quietly():
    assert check_device_memory(100 * MIB, 1024 * MIB, 8192 * MIB, "model.onnx") is None


def test_a_need_above_80_percent_of_free_memory_warns_with_numbers_and_fixes():
    text = check_device_memory(900 * MIB, 1024 * MIB, 8192 * MIB, "model.onnx")
    assert text.startswith("model.onnx needs about 900 MB of GPU memory")
    assert "1,024 MB of the GPU's 8,192 MB are free" in text
    for fix in ("smaller input size", "--strip-attention grid", "FP16 or INT8", "other GPU"):
        assert fix in text


def test_a_need_above_free_memory_is_a_typed_one_line_error():
    with pytest.raises(DeviceMemoryError) as caught:
        check_device_memory(600 * MIB, 1024 * MIB, 8192 * MIB, "build", extra_bytes=500 * MIB)
    err = caught.value
    assert isinstance(err, RunError) and err.exit_code == 1 and "\n" not in str(err)
    assert "needs about 1,100 MB of GPU memory (600 MB activations + 500 MB weights" in str(err)
    assert "will not fit" in str(err) and "--strip-attention grid" in str(err)


# --- the CUDA wrappers' free_memory, against fakes --------------------------------------------


def test_pycuda_free_memory_is_read_inside_the_context():
    pycuda = FakePycuda()
    api = PycudaApi(0, driver=pycuda, libcuda=pycuda.fake_libcuda)
    pycuda.fake_free_bytes, pycuda.fake_total_bytes = 3 << 30, 8 << 30
    with api.active():
        assert api.free_memory() == (3 << 30, 8 << 30)
    with pytest.raises(FakeCudaContextError, match="cuMemGetInfo"):
        api.free_memory()  # the fake is as strict as the driver: no context, no answer
    api.close()


class FakeCudaError(IntEnum):
    """cuda-python's cudaError_t, the two members these tests need."""

    cudaSuccess = 0  # noqa: N815 - the real name
    cudaErrorInitializationError = 3  # noqa: N815 - the real name


class FakeCudartModule:
    """A FAKE `cuda.bindings.runtime`: the calls CudartApi makes to open a stream and ask for
    memory. Every call returns (error, *values), as cuda-python's do."""

    cudaStreamNonBlocking = 1  # noqa: N815 - the real name

    def __init__(self, free: int, total: int, error: int = 0) -> None:
        self.free, self.total, self.error = free, total, FakeCudaError(error)
        self.device = None

    def cudaSetDevice(self, device: int):  # noqa: N802 - the real name
        self.device = device
        return (FakeCudaError.cudaSuccess,)

    def cudaStreamCreateWithFlags(self, flags: int):  # noqa: N802 - the real name
        return (FakeCudaError.cudaSuccess, 0x77)

    def cudaMemGetInfo(self):  # noqa: N802 - the real name
        return (self.error, self.free, self.total)

    def cudaStreamDestroy(self, stream):  # noqa: N802 - the real name
        return (FakeCudaError.cudaSuccess,)


def test_cuda_python_free_memory_unwraps_free_and_total_and_raises_on_an_error(monkeypatch):
    rt = FakeCudartModule(5 << 30, 16 << 30)
    monkeypatch.setattr(cuda_mem, "import_cudart", lambda: rt)
    api = CudartApi(1)
    with api.active():
        assert api.free_memory() == (5 << 30, 16 << 30) and rt.device == 1
    rt.error = FakeCudaError.cudaErrorInitializationError
    with pytest.raises(RunError, match="cudaErrorInitializationError"):
        api.free_memory()
    api.close()


def test_on_a_jetson_the_kernels_available_memory_counts_as_free(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 7999999 kB\nMemFree: 500000 kB\nMemAvailable: 6000000 kB\n")
    monkeypatch.setattr(cuda_mem, "MEMINFO", meminfo)
    monkeypatch.setattr(cuda_mem, "TEGRA_RELEASE", tmp_path / "absent")
    assert shared_memory_free(512 << 20) == 512 << 20  # not a Jetson: CUDA's figure
    (tmp_path / "nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    monkeypatch.setattr(cuda_mem, "TEGRA_RELEASE", tmp_path / "nv_tegra_release")
    assert shared_memory_free(512 << 20) == 6_000_000 * 1024
    assert shared_memory_free(7 << 30) == 7 << 30  # never lowered
    meminfo.write_text("garbage")
    assert shared_memory_free(512 << 20) == 512 << 20


# --- the TensorRT backend checks the engine's need before it creates a context ----------------


def _open_engine(tmp_path, version="10.3.0.30", need=64 << 20, free=6 << 30):
    cuda = FakeCuda(free_bytes=free, total_bytes=8 << 30)
    trt = FakeTrt(version, cuda=cuda, engine_device_memory=need)
    path, meta = make_engine(tmp_path, engine={**PROVENANCE, "tensorrt_version": version})
    return TrtBackend(path, meta, BackendOptions(), tensorrt=trt, cuda=cuda), cuda


def test_an_engine_that_fits_opens_without_a_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeviceMemoryWarning)
        backend, _ = _open_engine(tmp_path)
    assert backend.infer(np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 4, 16, 16)
    backend.close()


def test_an_engine_that_crowds_the_gpu_warns_and_still_runs(tmp_path):
    with pytest.warns(DeviceMemoryWarning, match="TensorRT engine tiny.fp32.engine needs about"):
        backend, _ = _open_engine(tmp_path, need=5 << 30, free=6 << 30)
    assert backend.infer(np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 4, 16, 16)
    backend.close()


@pytest.mark.parametrize("version", ["8.6.1", "10.0.1", "10.3.0.30", "11.4.0"])
def test_an_engine_over_free_memory_is_refused_before_its_context_exists(
    tmp_path, monkeypatch, version
):
    contexts = []
    real = FakeCudaEngine.create_execution_context
    monkeypatch.setattr(
        FakeCudaEngine,
        "create_execution_context",
        lambda self: contexts.append(1) or real(self),
    )
    with pytest.raises(DeviceMemoryError, match=r"needs about 7,168 MB .* 6,144 MB of the GPU's"):
        _open_engine(tmp_path, version, need=7 << 30, free=6 << 30)
    assert contexts == []  # refused before TensorRT would allocate
