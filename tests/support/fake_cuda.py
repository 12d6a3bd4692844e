"""A FAKE CUDA API standing in for runtime.cuda_mem's pycuda / cuda-python wrappers.

It proves nothing about real CUDA: "device memory" is numpy bytes on the host, "async" copies are
synchronous and a "graph" is a list of Python callables. It is strict where the real one is:
every call that touches the GPU raises outside `active()`, as pycuda does ("no currently active
context?"), so code that allocates or frees outside its CUDA context fails here too.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import numpy as np

from runtime.cuda_mem import DeviceInfo


class FakeCudaContextError(RuntimeError):
    """What pycuda raises (as a LogicError) for a GPU call without an active context."""


@dataclass
class FakeDevice:
    """Host-side stand-in for GPU memory, a stream and graph capture."""

    memory: dict = field(default_factory=dict)  # ptr -> np.ndarray of uint8
    next_ptr: int = 0x1000
    capturing: list | None = None  # ops recorded during capture
    log: list = field(default_factory=list)  # ("execute",) / ("launch",) / ("sync",) ...
    htod: list = field(default_factory=list)  # (device ptr, host shape) of each upload


class FakeCuda:
    """A FAKE runtime.cuda_mem.CudaApi: numpy buffers, synchronous 'async' copies."""

    name = "fake-cuda"

    def __init__(
        self,
        gpu_name: str = "Fake GPU",
        compute_capability: str = "8.7",
        free_bytes: int = 6 << 30,
        total_bytes: int = 8 << 30,
    ) -> None:
        self.device = FakeDevice()
        self.info = DeviceInfo(gpu_name, compute_capability, "12.2")
        self.free_bytes, self.total_bytes = free_bytes, total_bytes  # what free_memory reports
        self.pinned_live = 0
        self.closed = False
        self.active_depth = 0

    @property
    def allocated(self) -> set[int]:
        """Device pointers not yet freed."""
        return set(self.device.memory)

    @contextlib.contextmanager
    def active(self):
        self.active_depth += 1
        try:
            yield
        finally:
            self.active_depth -= 1

    def _need_context(self, what: str) -> None:
        if self.active_depth <= 0:
            raise FakeCudaContextError(
                f"FakeCuda: {what} without an active CUDA context (pycuda: 'cuMemAlloc failed: "
                "invalid device context' / 'no currently active context?'); wrap it in active()"
            )

    def device_info(self) -> DeviceInfo:
        return self.info

    def free_memory(self) -> tuple[int, int]:
        """The knobs free_bytes / total_bytes; like cuMemGetInfo, only inside active()."""
        self._need_context("free_memory")
        return self.free_bytes, self.total_bytes

    def alloc_device(self, nbytes: int) -> int:
        self._need_context("alloc_device")
        ptr = self.device.next_ptr
        self.device.next_ptr += max(nbytes, 1) + 256
        self.device.memory[ptr] = np.zeros(max(nbytes, 1), np.uint8)
        return ptr

    def free_device(self, buf: int) -> None:
        self._need_context("free_device")
        del self.device.memory[int(buf)]

    def alloc_pinned(self, shape, dtype) -> np.ndarray:
        self._need_context("alloc_pinned")
        self.pinned_live += 1
        return np.zeros(shape, dtype)

    def free_pinned(self, array: np.ndarray) -> None:
        self._need_context("free_pinned")
        self.pinned_live -= 1

    def stream_handle(self) -> int:
        return 0xBEEF

    def copy_htod_async(self, dst, src: np.ndarray) -> None:
        self._need_context("copy_htod_async")
        self.device.htod.append((int(dst), src.shape))
        self.device.memory[int(dst)][: src.nbytes] = src.reshape(-1).view(np.uint8)

    def copy_dtoh_async(self, dst: np.ndarray, src) -> None:
        self._need_context("copy_dtoh_async")
        dst.reshape(-1).view(np.uint8)[:] = self.device.memory[int(src)][: dst.nbytes]

    def synchronize(self) -> None:
        self._need_context("synchronize")
        self.device.log.append(("sync",))

    def begin_capture(self) -> None:
        self._need_context("begin_capture")
        self.device.capturing = []

    def end_capture(self) -> list:
        self._need_context("end_capture")
        ops, self.device.capturing = self.device.capturing, None
        return ops

    def launch_graph(self, graph: list) -> None:
        self._need_context("launch_graph")
        self.device.log.append(("launch",))
        for op in graph:
            op()

    def destroy_graph(self, graph: list) -> None:
        self._need_context("destroy_graph")
        self.device.log.append(("destroy_graph",))

    def close(self) -> None:
        self.closed = True


# --- a FAKE `pycuda.driver`, for runtime.cuda_mem.PycudaApi's context handling -----------------


class FakeCudaDriver:
    """The CUDA driver's context state as pycuda sees it: one context stack per thread and a
    reference count per device's primary context. Handles are ints, as pycuda's `handle`."""

    def __init__(self) -> None:
        self.stacks: dict[int, list[int]] = {}  # thread id -> driver context stack, top last
        self.primary_refs: dict[int, int] = {}  # device -> cuDevicePrimaryCtxRetain count
        self.log: list[tuple] = []

    def stack(self) -> list[int]:
        return self.stacks.setdefault(threading.get_ident(), [])

    def push(self, handle: int) -> None:  # cuCtxPushCurrent
        self.stack().append(handle)

    def pop(self) -> int:  # cuCtxPopCurrent
        if not self.stack():
            raise FakeCudaContextError("cuCtxPopCurrent: CUDA_ERROR_INVALID_CONTEXT (no context)")
        return self.stack().pop()

    def current(self) -> int | None:
        return self.stack()[-1] if self.stack() else None

    def release_primary(self, device: int) -> None:  # cuDevicePrimaryCtxRelease: never pops
        if self.primary_refs.get(device, 0) <= 0:
            raise FakeCudaContextError("cuDevicePrimaryCtxRelease of a context never retained")
        self.primary_refs[device] -= 1
        self.log.append(("release", device))


class FakeLibCuda:
    """The two raw driver calls PycudaApi makes itself (libcuda's cuCtxPop/PushCurrent)."""

    def __init__(self, driver: FakeCudaDriver) -> None:
        self._driver = driver

    def pop_current(self) -> int:
        return self._driver.pop()

    def push_current(self, handle: int) -> None:
        self._driver.push(handle)


def _primary_handle(device: int) -> int:
    return 0xC0 + device


class FakePycuda:
    """A FAKE `pycuda.driver` module, with pycuda's own semantics (its src/cpp/cuda.hpp):

    - Context.push(): pops the driver's top if pycuda's stack is non-empty, pushes the context
      on both stacks (pycuda keeps one driver entry for its whole stack).
    - Context.pop(): the same switch, pops pycuda's stack, pushes the new top on the driver's.
    - Context.detach() of a primary context (retain_primary_context): if it is pycuda's current
      context, cuDevicePrimaryCtxRelease and forget it (the driver entry stays: the release
      never pops); else, on the thread that created it, cuCtxPushCurrent + release (so it is left
      current on the thread); on any other thread nothing at all (the retain leaks).
    - Stream(): needs a current context; the stream is destroyed in its context, which pycuda
      can switch to only on the thread that created the context.
    """

    fake_free_bytes, fake_total_bytes = 6 << 30, 8 << 30  # what mem_get_info reports

    def __init__(self) -> None:
        driver = self.fake_driver = FakeCudaDriver()
        self.fake_libcuda = FakeLibCuda(driver)
        pystacks: dict[int, list] = {}

        def pystack() -> list:
            return pystacks.setdefault(threading.get_ident(), [])

        def current_context(except_=None):
            stack = pystack()
            while stack:
                top = stack[-1]
                if top is not except_ and top.valid:
                    return top
                stack.pop()
            return None

        def prepare_context_switch() -> None:
            if pystack():
                driver.pop()

        class Context:
            def __init__(self, device: int) -> None:
                self.device = device
                self.handle = _primary_handle(device)
                self.valid = True
                self.use_count = 1
                self.thread = threading.get_ident()

            def push(self) -> None:
                prepare_context_switch()
                driver.push(self.handle)
                pystack().append(self)
                self.use_count += 1

            @staticmethod
            def pop() -> None:
                prepare_context_switch()
                if not pystack():
                    raise FakeCudaContextError("context::pop: cannot pop non-current context")
                current = current_context()
                if current is not None:
                    current.use_count -= 1
                pystack().pop()
                current = current_context()
                if current is not None:
                    driver.push(current.handle)

            @staticmethod
            def get_current():
                return current_context()

            def detach(self) -> None:
                if not self.valid:
                    raise FakeCudaContextError("context::detach: cannot detach invalid context")
                active = current_context() is self
                if active:
                    driver.release_primary(self.device)
                elif self.thread == threading.get_ident():
                    driver.push(self.handle)
                    driver.release_primary(self.device)
                else:
                    driver.log.append(("leaked-out-of-thread", self.device))
                self.valid = False
                if active:
                    new_active = current_context(self)
                    if new_active is not None:
                        driver.push(new_active.handle)

        class Device:
            def __init__(self, index: int) -> None:
                self.index = index

            def retain_primary_context(self) -> Context:
                driver.primary_refs[self.index] = driver.primary_refs.get(self.index, 0) + 1
                return Context(self.index)

            def name(self) -> str:
                return "Fake GPU"

            def compute_capability(self) -> tuple[int, int]:
                return (8, 7)

        class Stream:
            def __init__(self) -> None:
                ctx = current_context()
                if ctx is None:
                    raise FakeCudaContextError(
                        "explicit_context_dependent failed: invalid device context - no "
                        "currently active context?"
                    )
                self.context = ctx
                self.handle = 0x5000

            def __del__(self) -> None:
                ctx = getattr(self, "context", None)
                if ctx is None:
                    return  # never created
                ok = ctx.valid and (current_context() is ctx or ctx.thread == threading.get_ident())
                driver.log.append(("stream-destroyed", ok))

        self.Context = Context
        self.Device = Device
        self.Stream = Stream

    def init(self) -> None:
        pass

    def mem_get_info(self) -> tuple[int, int]:
        """(free, total) bytes, as cuMemGetInfo: it needs a current context."""
        if self.fake_driver.current() is None:
            raise FakeCudaContextError("cuMemGetInfo failed: invalid device context")
        return self.fake_free_bytes, self.fake_total_bytes

    def get_version(self) -> tuple[int, int, int]:
        return (12, 2, 0)
