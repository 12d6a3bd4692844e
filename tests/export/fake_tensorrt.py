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
    def __init__(self, name: str, num_outputs: int = 1) -> None:
        self.name = name
        self.num_outputs = num_outputs
        self.precision = None
        self.output_types: dict[int, object] = {}

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

    def set_flag(self, flag) -> None:
        self.flags.add(flag)

    def set_memory_pool_limit(self, pool, size: int) -> None:
        self.pool_limits[pool] = size

    def add_optimization_profile(self, profile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile) -> None:
        self.calibration_profile = profile

    def create_timing_cache(self, data: bytes) -> FakeTimingCache:
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
        self.trt.configs.append(cfg)
        return cfg

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile()

    def build_serialized_network(self, network, config):
        if self.trt.build_error:
            self.logger.log(FakeLogger.ERROR, self.trt.build_error)
            return None
        return b"FAKE-ENGINE"


def fake_tensorrt(
    version: str = "10.3.0",
    layer_names=(),
    dla_cores: int = 0,
    build_error: str | None = None,
    parse_errors=(),
    rejected_cache: bytes | None = None,
):
    """A fake tensorrt module of `version`; TensorRT 11 lacks the FP16/INT8 flags and calibrators."""
    major = int(version.split(".")[0])
    flag_names = ["GPU_FALLBACK", "STRICT_TYPES"] if major < 10 else ["GPU_FALLBACK"]
    if major < 11:
        flag_names += ["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"]
    net_flags = ["EXPLICIT_BATCH"] + (["STRONGLY_TYPED"] if major >= 10 else [])
    trt = SimpleNamespace(
        __version__=version,
        ILogger=FakeLogger,
        BuilderFlag=IntEnum("BuilderFlag", flag_names),
        NetworkDefinitionCreationFlag=IntEnum("NetworkDefinitionCreationFlag", net_flags, start=0),
        MemoryPoolType=IntEnum("MemoryPoolType", ["WORKSPACE", "DLA_LOCAL_DRAM"]),
        DeviceType=IntEnum("DeviceType", ["GPU", "DLA"]),
        float32="float32",
        layer_names=list(layer_names),
        dla_cores=dla_cores,
        parse_errors=list(parse_errors),
        build_error=build_error,
        rejected_cache=rejected_cache,
        parsed=[],
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

    def active(self):
        import contextlib

        return contextlib.nullcontext()

    def alloc_device(self, nbytes: int) -> int:
        return 0x1000 + len(self.memory)

    def copy_htod_async(self, dst, src) -> None:
        self.memory[int(dst)] = src.copy()

    def synchronize(self) -> None:
        pass

    def device_info(self):
        return SimpleNamespace(name="Fake GPU", compute_capability="8.7", cuda_version="12.2")
