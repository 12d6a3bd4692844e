"""A FAKE `tensorrt` module for testing the engine builder's logic without TensorRT or a GPU.

It records what the builder asked for (flags, profiles, layer precisions, DLA settings, timing
cache bytes) and returns canned bytes. Passing tests with it prove our branching, never that a
real TensorRT accepts the calls: every path exercised here is listed as never executed on real
TensorRT in the issue note.
"""

from __future__ import annotations

from enum import IntEnum
from types import SimpleNamespace


class FakeLogger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self) -> None:
        pass


class FakeLayer:
    """Layer "name:int32" has one int32 output (a Shape or ArgMax); others one float16 output."""

    def __init__(self, name: str, num_outputs: int = 1) -> None:
        self.name, _, kind = name.partition(":")
        self.num_outputs = num_outputs
        self.precision = None
        self.output_types: dict[int, object] = {}
        self._built_types = {i: kind or "float16" for i in range(num_outputs)}

    def get_output_type(self, index: int):
        return self.output_types.get(index, self._built_types[index])

    def set_output_type(self, index: int, dtype) -> None:
        self.output_types[index] = dtype


class FakeNetwork:
    def __init__(self, flags: int, layer_names: list[str]) -> None:
        self.flags = flags
        self.layers = [FakeLayer(n) for n in layer_names]

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, i: int) -> FakeLayer:
        return self.layers[i]


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, name, lo, opt, hi) -> None:
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class FakeTimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return self.data or b"fake-timing-cache"


class FakeConfig:
    def __init__(self, tensorrt) -> None:
        self.trt = tensorrt
        self.flags: set = set()
        self.pool_limits: dict = {}
        self.profiles: list[FakeProfile] = []
        self.timing_cache = None
        self.default_device_type = None
        self.DLA_core = -1
        self.int8_calibrator = None
        self.calibration_profile = None
        self.cleared: set = set()
        self.logger = None  # set by FakeBuilder: the builder's logger

    def set_flag(self, flag) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag) -> None:
        self.cleared.add(flag)
        self.flags.discard(flag)

    def set_memory_pool_limit(self, pool, size: int) -> None:
        self.pool_limits[pool] = size

    def add_optimization_profile(self, profile) -> int:
        lo, opt, hi = next(iter(profile.shapes.values()))
        if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
            return -1  # what TensorRT returns for an invalid profile
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile) -> bool:
        self.calibration_profile = profile
        return True

    def create_timing_cache(self, data: bytes) -> FakeTimingCache | None:
        if data and data == self.trt.corrupt_cache:
            # What TensorRT does with a cache from another version: log, then None.
            self.logger.log(
                FakeLogger.ERROR, "Serialization assertion magicTagRead == kMAGIC_TAG failed"
            )
            self.logger.log(FakeLogger.ERROR, "The timing cache will not be used!")
            return None
        return FakeTimingCache(bytes(data))

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
        if cache.data and cache.data == self.trt.rejected_cache:
            return False
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> FakeTimingCache:
        return self.timing_cache


class FakeParser:
    def __init__(self, network, logger, tensorrt) -> None:
        self.trt = tensorrt
        self.errors: list[str] = []

    def parse_from_file(self, path: str) -> bool:
        self.trt.parsed.append(path)
        self.errors = list(self.trt.parse_errors)
        return not self.errors

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> str:
        return self.errors[i]


class FakeBuilder:
    def __init__(self, logger, tensorrt) -> None:
        self.logger = logger
        self.trt = tensorrt
        self.num_DLA_cores = tensorrt.dla_cores

    def create_network(self, flags: int) -> FakeNetwork:
        net = FakeNetwork(flags, self.trt.layer_names)
        self.trt.networks.append(net)
        return net

    def create_builder_config(self) -> FakeConfig:
        cfg = FakeConfig(self.trt)
        cfg.logger = self.logger
        self.trt.configs.append(cfg)
        return cfg

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile()

    def build_serialized_network(self, network, config):
        if self.trt.build_error:
            self.logger.log(FakeLogger.ERROR, self.trt.build_error)
            return None
        if config.int8_calibrator is not None:
            self._calibrate(config.int8_calibrator)
        return b"FAKE-ENGINE"

    def _calibrate(self, calibrator) -> None:
        """What TensorRT does with an implicit calibrator during the build: the cache if there
        is one, else every batch (pointers read back from FakeCuda), then the cache written."""
        if calibrator.read_calibration_cache() is not None:
            self.trt.calibration.append("cache")
            return
        while (pointers := calibrator.get_batch(["input"])) is not None:
            self.trt.calibration.append(tuple(pointers))
        calibrator.write_calibration_cache(b"fake-calibration-table")


def fake_tensorrt(
    version: str = "10.3.0",
    layer_names=(),
    dla_cores: int = 0,
    build_error: str | None = None,
    parse_errors=(),
    rejected_cache: bytes | None = None,
    corrupt_cache: bytes | None = None,
):
    """A fake tensorrt module of `version`; TensorRT 11 lacks the FP16/INT8 flags and calibrators."""
    major = int(version.split(".")[0])
    flag_names = (
        ["GPU_FALLBACK", "TF32", "STRICT_TYPES"] if major < 10 else ["GPU_FALLBACK", "TF32"]
    )
    if major < 11:
        flag_names += ["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"]
    # Values as in the real bindings: 8.6 EXPLICIT_BATCH=0; 10.x EXPLICIT_BATCH=0,
    # STRONGLY_TYPED=1; 11.x STRONGLY_TYPED=0 (deprecated: 11 is always strongly typed), no
    # EXPLICIT_BATCH.
    net_flags = {8: ["EXPLICIT_BATCH"], 10: ["EXPLICIT_BATCH", "STRONGLY_TYPED"]}.get(
        major, ["STRONGLY_TYPED", "PREFER_JIT_PYTHON_PLUGINS", "PREFER_AOT_PYTHON_PLUGINS"]
    )
    trt = SimpleNamespace(
        __version__=version,
        ILogger=FakeLogger,
        BuilderFlag=IntEnum("BuilderFlag", flag_names),
        NetworkDefinitionCreationFlag=IntEnum("NetworkDefinitionCreationFlag", net_flags, start=0),
        MemoryPoolType=IntEnum("MemoryPoolType", ["WORKSPACE", "DLA_LOCAL_DRAM"]),
        DeviceType=IntEnum("DeviceType", ["GPU", "DLA"]),
        float32="float32",
        float16="float16",
        layer_names=list(layer_names),
        dla_cores=dla_cores,
        parse_errors=list(parse_errors),
        build_error=build_error,
        rejected_cache=rejected_cache,
        corrupt_cache=corrupt_cache,
        parsed=[],
        calibration=[],  # per build: device pointers of each batch fed, or "cache"
        networks=[],
        configs=[],
    )
    trt.Builder = lambda logger: FakeBuilder(logger, trt)
    trt.OnnxParser = lambda network, logger: FakeParser(network, logger, trt)
    if major < 11:

        class FakeEntropyCalibrator2:
            def __init__(self) -> None:
                pass

        trt.IInt8EntropyCalibrator2 = FakeEntropyCalibrator2
    return trt


class FakeCuda:
    """Stands in for runtime.cuda_mem's API; "device memory" is a dict of numpy copies."""

    name = "fake-cuda"

    def __init__(self) -> None:
        self.memory: dict[int, object] = {}
        self.depth = 0  # active() nesting: like pycuda, memory calls need an active context
        self.allocated: set[int] = set()
        self.closed = False
        self._next_ptr = 0x1000

    def active(self):
        import contextlib

        @contextlib.contextmanager
        def push():
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1

        return push()

    def _need_context(self, what: str) -> None:
        if self.depth <= 0:  # pycuda: LogicError "... no currently active context?"
            raise RuntimeError(f"FakeCuda: {what} without an active CUDA context")

    def alloc_device(self, nbytes: int) -> int:
        self._need_context("alloc_device")
        ptr, self._next_ptr = self._next_ptr, self._next_ptr + 0x100
        self.allocated.add(ptr)
        return ptr

    def free_device(self, ptr: int) -> None:
        self._need_context("free_device")
        self.allocated.remove(int(ptr))

    def close(self) -> None:
        self.closed = True

    def copy_htod_async(self, dst, src) -> None:
        self.memory[int(dst)] = src.copy()

    def synchronize(self) -> None:
        pass

    def device_info(self):
        return SimpleNamespace(name="Fake GPU", compute_capability="8.7", cuda_version="12.2")
