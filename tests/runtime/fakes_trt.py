"""FAKES standing in for TensorRT and CUDA, to test the TensorRT backend's own logic.

Nothing here proves that the real TensorRT or pycuda/cuda-python paths work: these classes only
mimic the parts of their APIs the backend calls (names taken from the TensorRT 10/11 Python
bindings), so that binding by name, buffer reuse, shape changes, CUDA-graph bookkeeping and the
sidecar checks can run on a machine without a GPU.

FakeTensorRT "engines" are files starting with FAKE_ENGINE_MAGIC followed by JSON naming the I/O
tensors. Their "inference" is a stride-4 average pool of the input's channels into K logits
(logits[k] = mean of channel k % 3), computed with numpy on FakeCudaApi's host-side "device"
memory, so results can be checked exactly.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

import numpy as np

from runtime.cuda_mem import DeviceInfo

FAKE_ENGINE_MAGIC = b"FAKE-TRT-ENGINE\n"


def write_fake_engine(path, tensors: list[dict]) -> None:
    """tensors: [{"name", "mode": "input"|"output", "dtype", "shape", "profile"?}] in engine order."""
    path.write_bytes(FAKE_ENGINE_MAGIC + json.dumps(tensors).encode())


def fake_forward(x_nchw: np.ndarray, num_classes: int) -> np.ndarray:
    """The fake engine's computation: (N,3,H,W) -> (N,K,H/4,W/4) float32."""
    n, c, h, w = x_nchw.shape
    pooled = x_nchw.reshape(n, c, h // 4, 4, w // 4, 4).mean(axis=(3, 5))
    return np.stack([pooled[:, k % 3] for k in range(num_classes)], axis=1).astype(np.float32)


@dataclass
class FakeDevice:
    """Host-side stand-in for GPU memory, a stream and graph capture."""

    memory: dict = field(default_factory=dict)  # ptr -> np.ndarray of uint8
    next_ptr: int = 0x1000
    capturing: list | None = None  # ops recorded during capture
    log: list = field(default_factory=list)  # ("execute",) / ("launch",) / ("sync",) ...


class FakeCudaApi:
    """A FAKE runtime.cuda_mem.CudaApi: numpy buffers, synchronous 'async' copies."""

    name = "fake-cuda"

    def __init__(self, gpu_name: str = "Fake GPU", compute_capability: str = "8.7") -> None:
        self.device = FakeDevice()
        self.info = DeviceInfo(gpu_name, compute_capability, "12.2")
        self.pinned_live = 0
        self.closed = False
        self.active_depth = 0

    @contextlib.contextmanager
    def active(self):
        self.active_depth += 1
        try:
            yield
        finally:
            self.active_depth -= 1

    def device_info(self) -> DeviceInfo:
        return self.info

    def alloc_device(self, nbytes: int) -> int:
        ptr = self.device.next_ptr
        self.device.next_ptr += max(nbytes, 1) + 256
        self.device.memory[ptr] = np.zeros(max(nbytes, 1), np.uint8)
        return ptr

    def free_device(self, buf: int) -> None:
        del self.device.memory[int(buf)]

    def alloc_pinned(self, shape, dtype) -> np.ndarray:
        self.pinned_live += 1
        return np.zeros(shape, dtype)

    def free_pinned(self, array: np.ndarray) -> None:
        self.pinned_live -= 1

    def stream_handle(self) -> int:
        return 0xBEEF

    def copy_htod_async(self, dst, src: np.ndarray) -> None:
        self.device.memory[int(dst)][: src.nbytes] = src.reshape(-1).view(np.uint8)

    def copy_dtoh_async(self, dst: np.ndarray, src) -> None:
        dst.reshape(-1).view(np.uint8)[:] = self.device.memory[int(src)][: dst.nbytes]

    def synchronize(self) -> None:
        self.device.log.append(("sync",))

    def begin_capture(self) -> None:
        self.device.capturing = []

    def end_capture(self) -> list:
        ops, self.device.capturing = self.device.capturing, None
        return ops

    def launch_graph(self, graph: list) -> None:
        self.device.log.append(("launch",))
        for op in graph:
            op()

    def destroy_graph(self, graph: list) -> None:
        self.device.log.append(("destroy_graph",))

    def close(self) -> None:
        self.closed = True


class FakeILogger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self) -> None:
        pass


class FakeIProfiler:
    def __init__(self) -> None:
        pass


class FakeTensorIOMode:
    INPUT = "input"
    OUTPUT = "output"


class FakeExecutionContext:
    def __init__(self, engine: FakeCudaEngine) -> None:
        self.engine = engine
        self.input_shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}
        self.calls: list = []
        self.fail_execute = False
        self.profiler = None

    def set_input_shape(self, name: str, shape) -> bool:
        self.calls.append(("set_input_shape", name, tuple(shape)))
        low, _, high = self.engine.get_tensor_profile_shape(name, 0)
        if not all(lo <= d <= hi for d, lo, hi in zip(shape, low, high)):
            return False
        self.input_shapes[name] = tuple(shape)
        return True

    def _input_shape(self) -> tuple | None:
        name = self.engine.input_name
        static = self.engine.get_tensor_shape(name)
        return tuple(static) if all(d >= 0 for d in static) else self.input_shapes.get(name)

    def get_tensor_shape(self, name: str) -> tuple:
        spec = self.engine.spec(name)
        if spec["mode"] == "input":
            return self._input_shape() or tuple(spec["shape"])
        x = self._input_shape()
        if x is None:
            return tuple(spec["shape"])
        n, _, h, w = x
        return (n, spec["shape"][1], h // 4, w // 4) if name == "logits" else (n, 1)

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.calls.append(("set_tensor_address", name, ptr))
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.calls.append(("execute_async_v3", stream_handle))
        if self.fail_execute:
            return False
        device = self.engine.device
        if device.capturing is not None:
            device.capturing.append(self._run)
        else:
            self._run()
        return True

    def _run(self) -> None:
        device = self.engine.device
        device.log.append(("execute",))
        missing = [t["name"] for t in self.engine.tensors if t["name"] not in self.addresses]
        assert not missing, f"FakeTensorRT: tensors without an address: {missing}"
        x_shape = self._input_shape()
        name_in = self.engine.input_name
        nbytes = int(np.prod(x_shape)) * 4
        x = device.memory[self.addresses[name_in]][:nbytes].view(np.float32).reshape(x_shape)
        logits = fake_forward(x, self.engine.spec("logits")["shape"][1])
        device.memory[self.addresses["logits"]][: logits.nbytes] = logits.reshape(-1).view(np.uint8)


class FakeCudaEngine:
    def __init__(self, tensors: list[dict], device: FakeDevice) -> None:
        self.tensors = tensors
        self.device = device
        self.input_name = next(t["name"] for t in tensors if t["mode"] == "input")

    def spec(self, name: str) -> dict:
        return next(t for t in self.tensors if t["name"] == name)

    @property
    def num_io_tensors(self) -> int:
        return len(self.tensors)

    def get_tensor_name(self, index: int) -> str:
        return self.tensors[index]["name"]

    def get_tensor_mode(self, name: str) -> str:
        return self.spec(name)["mode"]

    def get_tensor_dtype(self, name: str) -> str:
        return self.spec(name)["dtype"]

    def get_tensor_shape(self, name: str) -> tuple:
        return tuple(self.spec(name)["shape"])

    def get_tensor_profile_shape(self, name: str, profile: int) -> list:
        return [tuple(s) for s in self.spec(name)["profile"]]

    def create_execution_context(self) -> FakeExecutionContext:
        self.context = FakeExecutionContext(self)
        return self.context


class FakeRuntime:
    def __init__(self, logger, device: FakeDevice) -> None:
        self.logger = logger
        self.device = device
        self.DLA_core = -1

    def deserialize_cuda_engine(self, data: bytes) -> FakeCudaEngine | None:
        if not data.startswith(FAKE_ENGINE_MAGIC):
            self.logger.log(
                FakeILogger.ERROR, "Serialization assertion magicTagRead == kMAGIC_TAG failed"
            )
            return None
        return FakeCudaEngine(json.loads(data[len(FAKE_ENGINE_MAGIC) :]), self.device)


class FakeTensorRT:
    """A FAKE `tensorrt` module: only what runtime.trt_compat and TrtBackend touch."""

    ILogger = FakeILogger
    IProfiler = FakeIProfiler
    TensorIOMode = FakeTensorIOMode

    def __init__(self, cuda: FakeCudaApi, version: str = "10.3.0.30") -> None:
        self.__version__ = version
        self._device = cuda.device
        self.runtimes: list[FakeRuntime] = []

    def Runtime(self, logger) -> FakeRuntime:  # noqa: N802 - mirrors trt.Runtime
        runtime = FakeRuntime(logger, self._device)
        self.runtimes.append(runtime)
        return runtime

    @staticmethod
    def nptype(trt_dtype: str):
        if trt_dtype == "bfloat16":
            raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
        return np.dtype(trt_dtype).type
