"""Every TensorRT version difference the runtime cares about, in one place.

Supported: TensorRT 8.5 (JetPack 5.1.x), 8.6 (JetPack 6.0), 10.x (JetPack 6.1+, desktop) and 11.x
for running engines; building needs 8.6+ (export/trt_compat.py). All of them have
the name-based tensor API (`num_io_tensors`, `set_tensor_address`, `execute_async_v3`); the
binding-index API (`get_binding_index`, `execute_async_v2`) was removed in TensorRT 10 and is
never used here. TensorRT < 8.5 (JetPack 4) is refused with a message rather than half-supported.

TensorRT subclasses (logger, profiler) are defined inside factory functions so that importing
this module never needs TensorRT.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from runtime.deps import require
from runtime.errors import RunError

MIN_VERSION = (8, 5)


class TensorRTLogWarning(UserWarning):
    """A warning logged by TensorRT itself."""


def parse_version(text: str) -> tuple[int, ...]:
    """'10.3.0.30' -> (10, 3, 0, 30); a part that does not start with a digit ends the tuple,
    a part like '0rc1' contributes its leading number."""
    parts = []
    for piece in str(text).split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() != len(piece):
            break
    return tuple(parts)


def major_minor(text: str) -> str:
    return ".".join(str(v) for v in parse_version(text)[:2])


def same_library_version(built: str, running: str) -> bool:
    """Whether an engine serialized by TensorRT `built` loads in TensorRT `running`.

    Plans are tied to the exact library build: TensorRT's deserializer refuses any other
    version, patch and build number included (the developer guide's serialized-engine
    compatibility rules; version-compatible engines are opt-in and never built here). Compared
    as parsed version numbers so "10.3.0.30" equals "10.3.0.30.post1"-style spellings; an
    unparseable or missing version never matches."""
    built_v, running_v = parse_version(built), parse_version(running)
    return bool(built_v) and built_v == running_v


def import_tensorrt() -> ModuleType:
    trt = require("tensorrt", "to run .engine files")
    check_version(trt.__version__)
    return trt


def check_version(version: str) -> None:
    if parse_version(version)[:2] < MIN_VERSION:
        raise RunError(
            f"TensorRT {version} is too old: the runtime needs the name-based tensor API of "
            f"TensorRT >= {'.'.join(map(str, MIN_VERSION))} (JetPack 5.1 or newer); run the .onnx "
            "model with ONNX Runtime instead"
        )


_LOGGERS: dict[int, tuple[ModuleType, object]] = {}  # id(trt module) -> (module, its logger)
MAX_KEPT_ERRORS = 200


def make_logger(trt: ModuleType) -> object:
    """The process's trt.ILogger for this TensorRT module: it keeps errors for our exception
    messages instead of printing them.

    One per process, not one per Runtime/Builder: TensorRT keeps a single logger pointer and
    ignores the logger of every later Runtime or Builder while an earlier one is alive, so a
    second logger would never see an error. Callers take `mark()` before an operation and read
    `errors_since(mark)` after it.
    """
    known = _LOGGERS.get(id(trt))
    if known is not None and known[0] is trt:
        return known[1]

    errors = frozenset((trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR))
    kept = errors | {trt.ILogger.WARNING}

    class CollectingLogger(trt.ILogger):
        def __init__(self) -> None:
            # The base __init__ must be called explicitly or TensorRT crashes on the first log.
            trt.ILogger.__init__(self)
            self.errors: list[str] = []  # the latest MAX_KEPT_ERRORS errors, oldest first
            self.total = 0  # errors logged so far, counting those no longer kept

        def log(self, severity, msg) -> None:
            # An ILogger subclass has no min_severity (only the built-in trt.Logger has): TensorRT
            # calls this for every INFO and VERBOSE message of a build, thousands of them. Drop
            # those first, with one set lookup, before anything touches `msg`.
            if severity not in kept:
                return
            try:  # called from TensorRT's C++ (noexcept): an exception here would terminate
                if severity in errors:
                    self.errors.append(str(msg))
                    self.total += 1
                    del self.errors[:-MAX_KEPT_ERRORS]
                else:
                    warnings.warn(f"TensorRT: {msg}", TensorRTLogWarning, stacklevel=2)
            except Exception:  # e.g. warnings turned into errors with -W error
                pass

        def mark(self) -> int:
            return self.total

        def errors_since(self, mark: int) -> list[str]:
            new = self.total - mark
            return self.errors[-new:] if new > 0 else []

        def forget_since(self, mark: int) -> None:
            new = self.total - mark
            if new > 0:
                del self.errors[len(self.errors) - min(new, len(self.errors)) :]
                self.total = mark

    logger = CollectingLogger()
    _LOGGERS[id(trt)] = (trt, logger)
    return logger


def make_profiler(trt: ModuleType, on_layer: Callable[[str, float], None]) -> object:
    """A trt.IProfiler calling on_layer(layer_name, ms) once per layer per inference."""

    class CallbackProfiler(trt.IProfiler):
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)  # explicit base init, as the TensorRT docs require

        def report_layer_time(self, layer_name, ms) -> None:
            on_layer(str(layer_name), float(ms))

    return CallbackProfiler()


@dataclass(frozen=True)
class TensorInfo:
    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]  # engine shape; -1 marks a dynamic dimension


def numpy_dtype(trt: ModuleType, trt_dtype: object, name: str) -> np.dtype:
    try:
        return np.dtype(trt.nptype(trt_dtype))
    except TypeError as err:  # bf16 / fp8 / int4 I/O has no numpy type
        raise RunError(
            f"engine tensor {name!r} has type {trt_dtype}, which has no numpy equivalent; "
            "export the model with float32, uint8 or int32 I/O"
        ) from err


def io_tensors(trt: ModuleType, engine: object) -> list[TensorInfo]:
    tensors = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        dtype = numpy_dtype(trt, engine.get_tensor_dtype(name), name)
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        tensors.append(TensorInfo(name, is_input, dtype, shape))
    return tensors


def profile_shapes(engine: object, name: str) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) of a dynamic input in optimization profile 0."""
    return tuple(tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(name, 0))


def set_input_shape(context: object, name: str, shape: tuple[int, ...]) -> None:
    if not context.set_input_shape(name, tuple(int(d) for d in shape)):
        raise RunError(f"TensorRT refused input shape {shape} for {name!r}")


def tensor_shape(context: object, name: str) -> tuple[int, ...]:
    return tuple(int(d) for d in context.get_tensor_shape(name))


def set_tensor_address(context: object, name: str, ptr: int) -> None:
    if context.set_tensor_address(name, int(ptr)) is False:  # returns None before 10.0
        raise RunError(f"TensorRT refused the device address for tensor {name!r}")


def execute(context: object, stream_handle: int) -> None:
    if not context.execute_async_v3(int(stream_handle)):
        raise RunError("TensorRT execute_async_v3 failed (see the TensorRT error above)")


def set_dla_core(runtime: object, core: int | None) -> None:
    if core is not None and core >= 0:
        runtime.DLA_core = int(core)


def device_memory_bytes(trt: ModuleType, engine: object) -> int:
    """Device memory one execution context needs for activations and scratch, in bytes.

    TensorRT 10.1 added `device_memory_size_v2` (which accounts for weight streaming) and
    deprecated `device_memory_size`; TensorRT 11 removed the old one, and 8.5/8.6/10.0 have only it.
    """
    if parse_version(trt.__version__)[:2] >= (10, 1):
        return int(engine.device_memory_size_v2)
    return int(engine.device_memory_size)
