"""Device memory, pinned host buffers, a stream and CUDA graphs: pycuda, or cuda-python.

pycuda is preferred where installed (JetPack images build it); cuda-python (`cuda.bindings`) is the
alternative, and the only one that can capture CUDA graphs (pycuda has no stream-capture API).

Both use the device's *primary* context, the one the CUDA runtime API (and so TensorRT) uses; a
pycuda `make_context()` would create a second context that TensorRT's kernels cannot see. pycuda
makes contexts current per thread, so every call that touches the GPU runs inside `active()`,
which pushes the context on the calling thread (inference runs on a worker thread).
`pycuda.autoinit` is never imported: it would create a context at import time.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from runtime.deps import MissingDependencyError, require
from runtime.errors import RunError


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    compute_capability: str  # "8.7"
    cuda_version: str  # runtime/driver API version the binding reports, "12.2"


class CudaApi(Protocol):
    """The few CUDA calls the TensorRT backend makes; `ptr`s are plain ints."""

    name: str

    def active(self) -> contextlib.AbstractContextManager: ...
    def device_info(self) -> DeviceInfo: ...
    def free_memory(self) -> tuple[int, int]: ...  # (free, total) bytes, inside active()
    def alloc_device(self, nbytes: int) -> object: ...  # int(obj) is the device pointer
    def free_device(self, buf: object) -> None: ...
    def alloc_pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray: ...
    def free_pinned(self, array: np.ndarray) -> None: ...
    def stream_handle(self) -> int: ...
    def copy_htod_async(self, dst: object, src: np.ndarray) -> None: ...
    def copy_dtoh_async(self, dst: np.ndarray, src: object) -> None: ...
    def synchronize(self) -> None: ...
    def begin_capture(self) -> None: ...
    def end_capture(self) -> object: ...  # an instantiated graph
    def launch_graph(self, graph: object) -> None: ...
    def destroy_graph(self, graph: object) -> None: ...
    def close(self) -> None: ...


# A Jetson's GPU allocates from the system RAM it shares with the CPU. There CUDA's "free" leaves
# out what the kernel would reclaim on demand (page cache), so on a system that has run a while
# it reads far below what can still be allocated; the kernel's MemAvailable counts that too.
TEGRA_RELEASE = Path("/etc/nv_tegra_release")  # present on JetPack (L4T) systems and containers
MEMINFO = Path("/proc/meminfo")


def shared_memory_free(free: int) -> int:
    """`free` bytes as CUDA reports them; on a Jetson, the kernel's MemAvailable where larger.

    Only ever raises the figure (and only on Jetson), so a check built on it refuses less, never
    more; anything unreadable leaves CUDA's own figure."""
    if not TEGRA_RELEASE.exists():
        return free
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return max(free, int(line.split()[1]) * 1024)  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        pass
    return free


def open_cuda(device: int = 0, need_graphs: bool = False) -> CudaApi:
    """pycuda if importable (and graphs not needed), else cuda-python; error naming both."""
    if not need_graphs:
        try:
            return PycudaApi(device)
        except MissingDependencyError:
            pass
    try:
        return CudartApi(device)
    except MissingDependencyError as err:
        if need_graphs:
            raise MissingDependencyError(
                "CUDA graphs need cuda-python (pycuda cannot capture streams): pip install "
                "cuda-python, or drop --cuda-graph"
            ) from err
        raise MissingDependencyError(
            "the TensorRT backend needs pycuda (pip install 'scaseg[trt]' on the target, it "
            "compiles against the local CUDA) or cuda-python (pip install cuda-python)"
        ) from err


class PycudaApi:
    """pycuda on the device's primary context. `driver` (the pycuda.driver module) and `libcuda`
    (raw cuCtxPop/PushCurrent) default to the real ones; tests pass fakes."""

    name = "pycuda"

    def __init__(self, device: int, driver: object = None, libcuda: object = None) -> None:
        self._cuda = driver or require("pycuda.driver", "for TensorRT device memory")
        self._libcuda = libcuda
        self._cuda.init()
        self._device = self._cuda.Device(device)
        self._context = self._device.retain_primary_context()
        with self.active():
            self._stream = self._cuda.Stream()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def device_info(self) -> DeviceInfo:
        major, minor = self._device.compute_capability()
        version = ".".join(str(v) for v in self._cuda.get_version()[:2])
        return DeviceInfo(self._device.name(), f"{major}.{minor}", version)

    def free_memory(self) -> tuple[int, int]:
        """(free, total) bytes of the device, by cuMemGetInfo; call it inside active()."""
        free, total = self._cuda.mem_get_info()
        return shared_memory_free(int(free)), int(total)

    def alloc_device(self, nbytes: int) -> object:
        return self._cuda.mem_alloc(max(int(nbytes), 1))

    def free_device(self, buf: object) -> None:
        buf.free()

    def alloc_pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self._cuda.pagelocked_empty(tuple(shape), np.dtype(dtype))

    def free_pinned(self, array: np.ndarray) -> None:
        base = getattr(array, "base", None)
        if base is not None and hasattr(base, "free"):
            base.free()

    def stream_handle(self) -> int:
        return int(self._stream.handle)

    def copy_htod_async(self, dst: object, src: np.ndarray) -> None:
        self._cuda.memcpy_htod_async(dst, src, self._stream)

    def copy_dtoh_async(self, dst: np.ndarray, src: object) -> None:
        self._cuda.memcpy_dtoh_async(dst, src, self._stream)

    def synchronize(self) -> None:
        self._stream.synchronize()

    # pycuda has no stream-capture API; open_cuda(need_graphs=True) never returns PycudaApi.
    def begin_capture(self) -> None:
        raise RunError("pycuda cannot capture CUDA graphs; install cuda-python")

    def end_capture(self) -> object:
        raise RunError("pycuda cannot capture CUDA graphs; install cuda-python")

    def launch_graph(self, graph: object) -> None:
        raise RunError("pycuda cannot launch CUDA graphs; install cuda-python")

    def destroy_graph(self, graph: object) -> None:
        raise RunError("pycuda cannot destroy CUDA graphs; install cuda-python")

    def close(self) -> None:
        """Free the stream and release our primary-context reference, on any thread.

        pycuda's Context.detach() (its src/cpp/cuda.hpp) releases a primary context only while
        the context is pycuda's current one, or on the thread that retained it, where it first
        pushes the context again; on any other thread it releases nothing. And the release
        (cuDevicePrimaryCtxRelease) never pops the driver's context stack, unlike cuCtxDetach.
        So: push (pycuda's current on this thread), free the stream inside it, detach while it
        is current (released, dropped from pycuda's stack, nothing pushed), then pop the
        driver's leftover entry, so the thread's context stack is as it was before close().
        """
        if self._context is None:
            return
        context, self._context = self._context, None
        handle = int(context.handle)
        context.push()
        try:
            self._stream = None  # destroyed now, in its context
        finally:
            context.detach()
            self._pop_leftover(handle)

    def _pop_leftover(self, handle: int) -> None:
        """Pop `handle`'s entry that detach() leaves on this thread's driver stack: the top, or
        just below the context pycuda made current again; anything else is left as it is."""
        try:
            libcuda = self._libcuda or _LibCuda()
            above = self._cuda.Context.get_current()
            saved = libcuda.pop_current() if above is not None else None
            try:
                top = libcuda.pop_current()
                if top != handle:
                    libcuda.push_current(top)  # not ours after all: put it back
            finally:
                if saved is not None:
                    libcuda.push_current(saved)  # pycuda's current context stays current
        except (OSError, AttributeError, RuntimeError):
            pass  # no libcuda here (or an empty stack): pycuda's own state stands


class _LibCuda:
    """cuCtxPopCurrent / cuCtxPushCurrent of the driver library pycuda already loaded."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("libcuda.so.1")  # Linux x86 and Jetson; other systems: OSError
        # cuda.h maps cuCtxPopCurrent/cuCtxPushCurrent to these _v2 entry points (CUDA >= 4).
        self._pop = lib.cuCtxPopCurrent_v2
        self._pop.argtypes, self._pop.restype = [ctypes.POINTER(ctypes.c_void_p)], ctypes.c_int
        self._push = lib.cuCtxPushCurrent_v2
        self._push.argtypes, self._push.restype = [ctypes.c_void_p], ctypes.c_int

    def pop_current(self) -> int:
        ctx = ctypes.c_void_p()
        err = self._pop(ctypes.byref(ctx))
        if err != 0:
            raise RunError(f"cuCtxPopCurrent failed (CUresult {err})")
        return int(ctx.value or 0)

    def push_current(self, handle: int) -> None:
        err = self._push(ctypes.c_void_p(handle))
        if err != 0:
            raise RunError(f"cuCtxPushCurrent failed (CUresult {err})")


def import_cudart() -> object:
    """cuda-python's runtime module: `cuda.bindings.runtime` (>= 12.6) or `cuda.cudart` (older)."""
    try:
        return require("cuda.bindings.runtime", "for TensorRT device memory")
    except MissingDependencyError:
        return require("cuda.cudart", "for TensorRT device memory")


class CudartApi:
    name = "cuda-python"

    def __init__(self, device: int) -> None:
        self._rt = import_cudart()
        self._device = device
        self._pinned: dict[int, int] = {}  # id(array) -> host pointer
        with self.active():
            # cudaStreamNonBlocking is a C #define (0x01) that cuda-python exports as a constant.
            flags = getattr(self._rt, "cudaStreamNonBlocking", 1)
            self._stream = self._check(self._rt.cudaStreamCreateWithFlags(flags))

    def _check(self, result: tuple) -> object:
        """cuda-python returns (err, *values); raise on an error, unwrap a single value."""
        err, *values = result
        if int(err) != 0:
            name = getattr(err, "name", str(err))
            raise RunError(f"CUDA error {name} ({int(err)})")
        return values[0] if len(values) == 1 else tuple(values)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        # The runtime API keeps a current device per thread; setting it is cheap.
        self._check(self._rt.cudaSetDevice(self._device))
        yield

    def device_info(self) -> DeviceInfo:
        prop = self._check(self._rt.cudaGetDeviceProperties(self._device))
        name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
        version = int(self._check(self._rt.cudaRuntimeGetVersion()))  # 12020 -> "12.2"
        return DeviceInfo(
            name.strip("\x00 "),
            f"{prop.major}.{prop.minor}",
            f"{version // 1000}.{version % 1000 // 10}",
        )

    def free_memory(self) -> tuple[int, int]:
        """(free, total) bytes of the device, by cudaMemGetInfo; call it inside active(), which
        makes the device current (cudaMemGetInfo reports on the current one)."""
        free, total = self._check(self._rt.cudaMemGetInfo())
        return shared_memory_free(int(free)), int(total)

    def alloc_device(self, nbytes: int) -> object:
        return int(self._check(self._rt.cudaMalloc(max(int(nbytes), 1))))

    def free_device(self, buf: object) -> None:
        self._check(self._rt.cudaFree(int(buf)))

    def alloc_pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
        ptr = int(self._check(self._rt.cudaMallocHost(nbytes)))
        raw = (ctypes.c_uint8 * nbytes).from_address(ptr)
        array = np.frombuffer(raw, dtype=np.uint8)[: int(np.prod(shape)) * dtype.itemsize]
        array = array.view(dtype).reshape(shape)
        self._pinned[id(array)] = ptr
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        ptr = self._pinned.pop(id(array), None)
        if ptr is not None:
            self._check(self._rt.cudaFreeHost(ptr))

    def stream_handle(self) -> int:
        return int(self._stream)

    def copy_htod_async(self, dst: object, src: np.ndarray) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(
            self._rt.cudaMemcpyAsync(int(dst), src.ctypes.data, src.nbytes, kind, self._stream)
        )

    def copy_dtoh_async(self, dst: np.ndarray, src: object) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(
            self._rt.cudaMemcpyAsync(dst.ctypes.data, int(src), dst.nbytes, kind, self._stream)
        )

    def synchronize(self) -> None:
        self._check(self._rt.cudaStreamSynchronize(self._stream))

    def begin_capture(self) -> None:
        # Thread-local mode: other threads' CUDA calls (e.g. a decoder) do not break the capture.
        mode = self._rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self._rt.cudaStreamBeginCapture(self._stream, mode))

    def end_capture(self) -> object:
        graph = self._check(self._rt.cudaStreamEndCapture(self._stream))
        try:
            # cudaGraphInstantiateWithFlags has the same signature in cuda-python 11, 12 and 13;
            # cudaGraphInstantiate's changed between them.
            return self._check(self._rt.cudaGraphInstantiateWithFlags(graph, 0))
        finally:
            self._check(self._rt.cudaGraphDestroy(graph))

    def launch_graph(self, graph: object) -> None:
        self._check(self._rt.cudaGraphLaunch(graph, self._stream))

    def destroy_graph(self, graph: object) -> None:
        self._check(self._rt.cudaGraphExecDestroy(graph))

    def close(self) -> None:
        for ptr in self._pinned.values():
            self._rt.cudaFreeHost(ptr)
        self._pinned.clear()
        if self._stream is not None:
            self._rt.cudaStreamDestroy(self._stream)
            self._stream = None
