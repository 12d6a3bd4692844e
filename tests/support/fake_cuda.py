"""A FAKE CUDA API standing in for runtime.cuda_mem's pycuda / cuda-python wrappers.

It proves nothing about real CUDA: "device memory" is numpy bytes on the host, "async" copies are
synchronous and a "graph" is a list of Python callables. It is strict where the real one is:
every call that touches the GPU raises outside `active()`, as pycuda does ("no currently active
context?"), so code that allocates or frees outside its CUDA context fails here too.
"""

from __future__ import annotations

import contextlib
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

    def __init__(self, gpu_name: str = "Fake GPU", compute_capability: str = "8.7") -> None:
        self.device = FakeDevice()
        self.info = DeviceInfo(gpu_name, compute_capability, "12.2")
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
