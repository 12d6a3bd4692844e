"""TensorRT backend: a plain serialized engine, checked against its sidecar before it is loaded.

Engines are not portable across TensorRT versions or GPUs, and TensorRT's own errors for that are
opaque ("magic tag", "serialization version"). So the sidecar's provenance is compared with the
running TensorRT and GPU first, and a mismatch is refused with the command that rebuilds it.

Buffers (pinned host + device) are allocated on the first `infer` and again only when the input
shape changes; `infer` returns after the stream is synchronised. Before the execution context takes
the engine's activation memory, TensorRT's figure for it is checked against the GPU's free memory
(runtime/memory_estimate.py): a warning with little to spare, DeviceMemoryError when it cannot fit.

Status: the logic here is tested against fakes (tests/support/fake_tensorrt.py); the calls into real
TensorRT, pycuda and cuda-python have only the `gpu`-marked test, which needs a GPU machine.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from runtime import trt_compat
from runtime.backends import BackendOptions
from runtime.cuda_mem import CudaApi, open_cuda
from runtime.errors import RunError, UserInputError
from runtime.memory_estimate import DeviceMemoryWarning, check_device_memory
from runtime.meta import MetaError, ModelMeta


class EngineMismatchError(MetaError):
    """The engine was built for another TensorRT version or GPU, its provenance is unknown, or
    TensorRT cannot load it: the wrong artifact for this device, so bad input (CLI exit code 2),
    and the message ends with the command that rebuilds it here."""


@dataclass(frozen=True)
class RunningEnv:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"


def rebuild_command(engine_info: dict | None, artifact: Path) -> str:
    command = (engine_info or {}).get("build_command")
    if command:
        return str(command)
    onnx = artifact.with_suffix(".onnx").name
    return f"build it again from {onnx} with scaseg-export (the sidecar records no build_command)"


def check_engine_provenance(engine_info: dict | None, running: RunningEnv, artifact: Path) -> None:
    """Refuse an engine whose sidecar TensorRT version (all of it: TensorRT loads plans from its
    own library version only), GPU name or compute capability differ."""
    command = rebuild_command(engine_info, artifact)
    if not engine_info:
        raise EngineMismatchError(
            f"{artifact.name}: the sidecar records no engine provenance (TensorRT version, GPU), "
            f"so it cannot be checked; rebuild on this device: {command}"
        )
    built_trt = str(engine_info.get("tensorrt_version") or "unknown")
    problems = []
    if not trt_compat.same_library_version(built_trt, running.tensorrt_version):
        problems.append(f"TensorRT {built_trt} (this device runs {running.tensorrt_version})")
    built_cc = str(engine_info.get("compute_capability") or "unknown")
    if built_cc != running.compute_capability:
        problems.append(f"compute capability {built_cc} (this GPU is {running.compute_capability})")
    built_gpu = str(engine_info.get("gpu_name") or "unknown")
    if built_gpu.strip().casefold() != running.gpu_name.strip().casefold():
        problems.append(f"GPU {built_gpu!r} (this GPU is {running.gpu_name!r})")
    if problems:
        raise EngineMismatchError(
            f"{artifact.name} was built for {'; '.join(problems)}: rebuild on this device: {command}"
        )


@dataclass
class _Buffer:
    shape: tuple[int, ...]
    host: np.ndarray  # pinned
    device: object  # int(device) is the pointer


class TrtBackend:
    """A TensorRT engine with its own buffers and stream; see `runtime.backends.Backend`.

    `tensorrt` and `cuda` exist for tests, which pass fakes; None imports the real modules.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        meta: ModelMeta,
        options: BackendOptions,
        *,
        tensorrt: ModuleType | None = None,
        cuda: CudaApi | None = None,
    ):
        self.path = Path(path)
        self.meta = meta
        self.allocations = 0  # buffer (re)allocations so far; reallocation means a shape change
        self._buffers: dict[str, _Buffer] = {}
        self._graph = None
        self._context = self._engine = self._runtime = None
        self._input_shape: tuple[int, ...] | None = None
        self._use_graph = options.cuda_graph
        self._trt = tensorrt or trt_compat.import_tensorrt()
        trt_compat.check_version(self._trt.__version__)
        self._cuda = cuda or open_cuda(options.cuda_device, need_graphs=options.cuda_graph)
        try:
            info = self._cuda.device_info()
            running = RunningEnv(self._trt.__version__, info.name, info.compute_capability)
            check_engine_provenance(meta.engine, running, self.path)
            with self._cuda.active():
                self._load_engine()
        except BaseException:
            self.close()
            raise
        self.description = f"TensorRT {self._trt.__version__} on {info.name} ({self._cuda.name})"

    def _load_engine(self) -> None:
        trt = self._trt
        self._logger = trt_compat.make_logger(trt)
        self._runtime = trt.Runtime(self._logger)  # must outlive the engine
        trt_compat.set_dla_core(self._runtime, (self.meta.engine or {}).get("dla_core"))
        mark = self._logger.mark()
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            errors = self._logger.errors_since(mark)
            detail = errors[-1] if errors else "no detail"
            raise EngineMismatchError(
                f"TensorRT could not load {self.path.name} ({detail}); rebuild on this device: "
                f"{rebuild_command(self.meta.engine, self.path)}"
            )
        self._check_device_memory()
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise RunError(
                f"TensorRT could not create a context for {self.path.name} (GPU memory?)"
            )
        self._tensors = {t.name: t for t in trt_compat.io_tensors(trt, self._engine)}
        self._check_io()

    def _check_device_memory(self) -> None:
        """Before the execution context allocates the engine's activation memory: refuse
        (DeviceMemoryError) when TensorRT's own figure for it exceeds the GPU's free memory, warn
        when it leaves little to spare. The engine's weights are already on the device by now, so
        the free figure has them taken out; the I/O buffers (allocated later) are not counted."""
        need = trt_compat.device_memory_bytes(self._trt, self._engine)
        free, total = self._cuda.free_memory()
        warning = check_device_memory(need, free, total, f"TensorRT engine {self.path.name}")
        if warning:
            warnings.warn(warning, DeviceMemoryWarning, stacklevel=2)

    def _check_io(self) -> None:
        inputs = [n for n, t in self._tensors.items() if t.is_input]
        outputs = [n for n, t in self._tensors.items() if not t.is_input]
        spec_in, spec_out = self.meta.input, self.meta.output
        if inputs != [spec_in.name] or spec_out.name not in outputs:
            raise MetaError(
                f"{self.path.name}: sidecar names input {spec_in.name!r} and output {spec_out.name!r} "
                f"but the engine has inputs {inputs} and outputs {outputs}; rebuild the engine and "
                "its sidecar together"
            )
        for spec in (spec_in, spec_out):
            actual = self._tensors[spec.name].dtype
            if actual != np.dtype(spec.dtype):
                raise MetaError(
                    f"{self.path.name}: tensor {spec.name!r} is {actual} in the engine but "
                    f"{spec.dtype} in the sidecar; rebuild the engine and its sidecar together"
                )

    def infer(self, batch: np.ndarray) -> np.ndarray:
        name_in, name_out = self.meta.input.name, self.meta.output.name
        if batch.dtype != self._tensors[name_in].dtype:
            raise TypeError(
                f"input {name_in!r} must be {self._tensors[name_in].dtype}, got {batch.dtype}"
            )
        with self._cuda.active():
            if batch.shape != self._input_shape:
                self._prepare(tuple(batch.shape))
            buf_in, buf_out = self._buffers[name_in], self._buffers[name_out]
            np.copyto(buf_in.host, batch)
            self._cuda.copy_htod_async(buf_in.device, buf_in.host)
            if self._graph is not None:
                self._cuda.launch_graph(self._graph)
            else:
                trt_compat.execute(self._context, self._cuda.stream_handle())
            self._cuda.copy_dtoh_async(buf_out.host, buf_out.device)
            self._cuda.synchronize()
            # A copy: the pinned buffer is overwritten by the next infer while a consumer thread
            # may still hold this result.
            return buf_out.host.copy()

    def _prepare(self, input_shape: tuple[int, ...]) -> None:
        """Set the input shape, (re)allocate buffers whose shape changed, bind them by name."""
        self._release_graph()
        self._input_shape = None  # until everything below, graph capture included, succeeded
        name_in = self.meta.input.name
        self._check_shape(input_shape)
        if any(d < 0 for d in self._tensors[name_in].shape):
            trt_compat.set_input_shape(self._context, name_in, input_shape)
        for name, tensor in self._tensors.items():
            shape = input_shape if tensor.is_input else trt_compat.tensor_shape(self._context, name)
            if any(d < 0 for d in shape):
                raise RunError(
                    f"TensorRT could not infer the shape of {name!r} for input {input_shape}"
                )
            old = self._buffers.get(name)
            if old is not None and old.shape == shape:
                continue
            if old is not None:
                self._free(old)
            nbytes = int(np.prod(shape)) * tensor.dtype.itemsize
            buf = _Buffer(
                shape, self._cuda.alloc_pinned(shape, tensor.dtype), self._cuda.alloc_device(nbytes)
            )
            self._buffers[name] = buf
            self.allocations += 1
            trt_compat.set_tensor_address(self._context, name, int(buf.device))
        if self._use_graph:
            self._capture_graph()  # a failed capture raises again next time, never runs graph-less
        self._input_shape = input_shape

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        name = self.meta.input.name
        engine_shape = self._tensors[name].shape
        if all(d >= 0 for d in engine_shape):
            if shape != engine_shape:
                raise UserInputError(
                    f"{self.path.name} is built for input {engine_shape}, got {shape}; rebuild with "
                    "a dynamic profile or this input size"
                )
            return
        low, _, high = trt_compat.profile_shapes(self._engine, name)
        if len(shape) != len(low) or any(not lo <= d <= hi for d, lo, hi in zip(shape, low, high)):
            raise UserInputError(
                f"input {shape} is outside {self.path.name}'s optimization profile {low}..{high}; "
                "rebuild the engine with a profile that covers it"
            )

    def _capture_graph(self) -> None:
        stream = self._cuda.stream_handle()
        # Enqueue once outside the capture: after a shape change TensorRT does deferred setup on
        # the first enqueue, which must not end up inside the graph.
        trt_compat.execute(self._context, stream)
        self._cuda.synchronize()
        self._cuda.begin_capture()
        try:
            trt_compat.execute(self._context, stream)
        except BaseException:
            with contextlib.suppress(Exception):
                self._cuda.destroy_graph(self._cuda.end_capture())
            raise
        self._graph = self._cuda.end_capture()

    def set_layer_profiler(self, on_layer: Callable[[str, float], None] | None) -> None:
        """Report per-layer times (ms) to on_layer on every infer; None turns it off."""
        if on_layer is not None and self._use_graph:
            raise UserInputError(
                "per-layer profiling does not work inside a CUDA graph; drop cuda_graph=True"
            )
        self._profiler = trt_compat.make_profiler(self._trt, on_layer) if on_layer else None
        self._context.profiler = self._profiler

    def _release_graph(self) -> None:
        if self._graph is not None:
            graph, self._graph = self._graph, None
            self._cuda.destroy_graph(graph)

    def _free(self, buf: _Buffer) -> None:
        self._cuda.free_pinned(buf.host)
        self._cuda.free_device(buf.device)

    def close(self) -> None:
        if self._cuda is None:
            return
        with self._cuda.active():
            self._release_graph()
            for buf in self._buffers.values():
                self._free(buf)
            self._buffers.clear()
            # Context before engine before runtime: each depends on the next.
            self._context = self._engine = self._runtime = None
        self._cuda.close()
        self._cuda = None

    def __enter__(self) -> TrtBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
