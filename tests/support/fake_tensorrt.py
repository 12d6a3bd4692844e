"""A FAKE `tensorrt` module, for the engine builder's and the TensorRT backend's own logic.

Passing tests with it prove our branching and bookkeeping, never that a real TensorRT accepts the
calls. It mimics only the parts of the TensorRT 8.6/10/11 Python bindings that export/ and
runtime/ call, under their real names; anything the real module lacks does not exist here (a
`gpu` test checks the names against an installed tensorrt). What the fake records for the tests
(parsed files, networks, configs, calibration batches, runtimes) lives under `FakeTrt.fake`.

Engines: the builder returns canned bytes; the runtime loads files written by write_fake_engine
(FAKE_ENGINE_MAGIC + JSON naming the I/O tensors). Their "inference" is fake_forward, computed
with numpy on FakeCuda's host-side "device" memory, so results can be checked exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from tests.support.fake_cuda import FakeCuda, FakeDevice

FAKE_ENGINE_MAGIC = b"FAKE-TRT-ENGINE\n"


def write_fake_engine(path, tensors: list[dict]) -> None:
    """tensors: [{"name", "mode": "input"|"output", "dtype", "shape", "profile"?}] in engine order."""
    path.write_bytes(FAKE_ENGINE_MAGIC + json.dumps(tensors).encode())


def fake_forward(x_nchw: np.ndarray, num_classes: int) -> np.ndarray:
    """The fake engine's computation: (N,3,H,W) -> (N,K,H/4,W/4) float32, logits[k] = channel k%3."""
    n, c, h, w = x_nchw.shape
    pooled = x_nchw.reshape(n, c, h // 4, 4, w // 4, 4).mean(axis=(3, 5))
    return np.stack([pooled[:, k % 3] for k in range(num_classes)], axis=1).astype(np.float32)


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


# --- runtime side: Runtime -> ICudaEngine -> IExecutionContext ---------------------------------


class FakeExecutionContext:
    def __init__(self, engine: FakeCudaEngine) -> None:
        self.engine = engine
        self.profiler = None
        # bookkeeping for the tests, not TensorRT API:
        self.fake_input_shapes: dict[str, tuple] = {}
        self.fake_addresses: dict[str, int] = {}
        self.fake_calls: list = []
        self.fake_fail_execute = False

    def set_input_shape(self, name: str, shape) -> bool:
        self.fake_calls.append(("set_input_shape", name, tuple(shape)))
        low, _, high = self.engine.get_tensor_profile_shape(name, 0)
        if not all(lo <= d <= hi for d, lo, hi in zip(shape, low, high)):
            return False
        self.fake_input_shapes[name] = tuple(shape)
        return True

    def _input_shape(self) -> tuple | None:
        name = self.engine._input_name
        static = self.engine.get_tensor_shape(name)
        return tuple(static) if all(d >= 0 for d in static) else self.fake_input_shapes.get(name)

    def get_tensor_shape(self, name: str) -> tuple:
        spec = self.engine._spec(name)
        if spec["mode"] == "input":
            return self._input_shape() or tuple(spec["shape"])
        x = self._input_shape()
        if x is None:
            return tuple(spec["shape"])
        n, _, h, w = x
        return (n, spec["shape"][1], h // 4, w // 4) if name == "logits" else (n, 1)

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.fake_calls.append(("set_tensor_address", name, ptr))
        self.fake_addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.fake_calls.append(("execute_async_v3", stream_handle))
        if self.fake_fail_execute:
            return False
        device = self.engine._device
        if device.capturing is not None:
            device.capturing.append(self._run)
        else:
            self._run()
        return True

    def _run(self) -> None:
        device = self.engine._device
        device.log.append(("execute",))
        missing = [t["name"] for t in self.engine._tensors if t["name"] not in self.fake_addresses]
        assert not missing, f"FakeTrt: tensors without an address: {missing}"
        x_shape = self._input_shape()
        nbytes = int(np.prod(x_shape)) * 4
        x_ptr = self.fake_addresses[self.engine._input_name]
        x = device.memory[x_ptr][:nbytes].view(np.float32).reshape(x_shape)
        logits = fake_forward(x, self.engine._spec("logits")["shape"][1])
        device.memory[self.fake_addresses["logits"]][: logits.nbytes] = logits.reshape(-1).view(
            np.uint8
        )


class FakeCudaEngine:
    """ICudaEngine. Its activation memory is `fake_device_memory` bytes, read as TensorRT of
    `fake_version` exposes it: `device_memory_size` before 11, `device_memory_size_v2` from 10.1
    (served by __getattr__, so each version has exactly the attributes the real one has)."""

    def __init__(
        self,
        tensors: list[dict],
        device: FakeDevice,
        version: tuple[int, ...] = (10, 3),
        device_memory: int = 64 << 20,
    ) -> None:
        self._tensors = tensors
        self._device = device
        self._input_name = next(t["name"] for t in tensors if t["mode"] == "input")
        self.fake_context: FakeExecutionContext | None = None  # the last context made
        self.fake_version = tuple(version)
        self.fake_device_memory = device_memory

    def __getattr__(self, name: str):
        # Only reached for names the instance and class lack.
        version = self.__dict__.get("fake_version", (10, 3))
        if name == "device_memory_size" and version[:1] < (11,):
            return self.__dict__["fake_device_memory"]
        if name == "device_memory_size_v2" and version[:2] >= (10, 1):
            return self.__dict__["fake_device_memory"]
        raise AttributeError(f"FakeCudaEngine (TensorRT {version}) has no attribute {name!r}")

    def _spec(self, name: str) -> dict:
        return next(t for t in self._tensors if t["name"] == name)

    @property
    def num_io_tensors(self) -> int:
        return len(self._tensors)

    def get_tensor_name(self, index: int) -> str:
        return self._tensors[index]["name"]

    def get_tensor_mode(self, name: str) -> str:
        return self._spec(name)["mode"]

    def get_tensor_dtype(self, name: str) -> str:
        return self._spec(name)["dtype"]

    def get_tensor_shape(self, name: str) -> tuple:
        return tuple(self._spec(name)["shape"])

    def get_tensor_profile_shape(self, name: str, profile: int) -> list:
        return [tuple(s) for s in self._spec(name)["profile"]]

    def create_execution_context(self) -> FakeExecutionContext:
        self.fake_context = FakeExecutionContext(self)
        return self.fake_context


class FakeRuntime:
    def __init__(self, logger, device: FakeDevice, state: FakeTrtState | None = None) -> None:
        self._logger = logger
        self._device = device
        self._state = state
        self.DLA_core = -1

    def deserialize_cuda_engine(self, data: bytes) -> FakeCudaEngine | None:
        if not data.startswith(FAKE_ENGINE_MAGIC):
            self._logger.log(
                FakeILogger.ERROR, "Serialization assertion magicTagRead == kMAGIC_TAG failed"
            )
            return None
        tensors = json.loads(data[len(FAKE_ENGINE_MAGIC) :])
        if self._state is None:
            return FakeCudaEngine(tensors, self._device)
        state = self._state
        return FakeCudaEngine(tensors, self._device, state.version, state.engine_device_memory)


# --- builder side: Builder -> INetworkDefinition / IBuilderConfig / OnnxParser -----------------


class FakeTensor:
    """An ITensor: its `dtype` is the type the network inferred for it."""

    def __init__(self, dtype) -> None:
        self.dtype = dtype


class FakeLayer:
    """ILayer of TensorRT 11 (no per-layer precision: it is strongly typed only).

    Layer "name:int32" has one int32 output (a Shape or ArgMax); others one float16 output.
    """

    def __init__(self, name: str, num_outputs: int = 1) -> None:
        self.name, _, kind = name.partition(":")
        self.num_outputs = num_outputs
        self._outputs = [FakeTensor(kind or "float16") for _ in range(num_outputs)]

    def get_output(self, index: int) -> FakeTensor:
        return self._outputs[index]


class FakeLayerWithPrecision(FakeLayer):
    """ILayer of TensorRT < 11: per-layer precision and output types can be requested.

    As in the real bindings, get_output_type returns the *requested* type, FLOAT until
    set_output_type is called, whatever the output tensor's own type is.
    """

    def __init__(self, name: str, num_outputs: int = 1) -> None:
        super().__init__(name, num_outputs)
        self._precision = "float32"  # the real default reads DataType.FLOAT, not "unset"
        self.fake_precision_set = False
        self.fake_output_types: dict[int, object] = {}

    @property
    def precision(self):
        return self._precision

    @precision.setter
    def precision(self, dtype) -> None:
        self._precision = dtype
        self.fake_precision_set = True

    def get_output_type(self, index: int):
        return self.fake_output_types.get(index, "float32")

    def set_output_type(self, index: int, dtype) -> None:
        self.fake_output_types[index] = dtype


class FakeNetwork:
    def __init__(self, flags: int, layer_names: list[str], major: int) -> None:
        self.flags = flags
        layer_type = FakeLayer if major >= 11 else FakeLayerWithPrecision
        self.fake_layers = [layer_type(n) for n in layer_names]

    @property
    def num_layers(self) -> int:
        return len(self.fake_layers)

    def get_layer(self, i: int) -> FakeLayer:
        return self.fake_layers[i]


class FakeProfile:
    def __init__(self) -> None:
        self.fake_shapes: dict[str, tuple] = {}

    def set_shape(self, name, lo, opt, hi) -> None:
        self.fake_shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class FakeTimingCache:
    def __init__(self, data: bytes) -> None:
        self.fake_data = data

    def serialize(self) -> bytes:
        return self.fake_data or b"fake-timing-cache"


class FakeConfig:
    """IBuilderConfig of TensorRT 11 (no implicit INT8 calibration)."""

    def __init__(self, state: FakeTrtState, logger) -> None:
        self._state = state
        self._logger = logger
        self.default_device_type = None
        self.DLA_core = -1
        self.fake_flags: set = set()
        self.fake_cleared: set = set()
        self.fake_pool_limits: dict = {}
        self.fake_profiles: list[FakeProfile] = []
        self.fake_timing_cache: FakeTimingCache | None = None

    def set_flag(self, flag) -> None:
        self.fake_flags.add(flag)

    def clear_flag(self, flag) -> None:
        self.fake_cleared.add(flag)
        self.fake_flags.discard(flag)

    def set_memory_pool_limit(self, pool, size: int) -> None:
        self.fake_pool_limits[pool] = size

    def add_optimization_profile(self, profile) -> int:
        lo, opt, hi = next(iter(profile.fake_shapes.values()))
        if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
            return -1  # what TensorRT returns for an invalid profile
        self.fake_profiles.append(profile)
        return len(self.fake_profiles) - 1

    def create_timing_cache(self, data: bytes) -> FakeTimingCache | None:
        if data and data == self._state.corrupt_cache:
            # What TensorRT does with a cache from another version: log, then None.
            self._logger.log(
                FakeILogger.ERROR, "Serialization assertion magicTagRead == kMAGIC_TAG failed"
            )
            self._logger.log(FakeILogger.ERROR, "The timing cache will not be used!")
            return None
        return FakeTimingCache(bytes(data))

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
        if cache.fake_data and cache.fake_data == self._state.rejected_cache:
            return False
        self.fake_timing_cache = cache
        return True

    def get_timing_cache(self) -> FakeTimingCache | None:
        return self.fake_timing_cache

    def get_device_type(self, layer):
        return self.default_device_type or FakeTrt.DeviceType.GPU

    def can_run_on_DLA(self, layer) -> bool:  # noqa: N802 - the real name
        return layer.name not in self._state.dla_incapable


class FakeConfigWithInt8(FakeConfig):
    """IBuilderConfig of TensorRT < 11: implicit INT8 calibration still exists."""

    def __init__(self, state: FakeTrtState, logger) -> None:
        super().__init__(state, logger)
        self.int8_calibrator = None
        self.fake_calibration_profile = None

    def set_calibration_profile(self, profile) -> bool:
        self.fake_calibration_profile = profile
        return True


class FakeParser:
    def __init__(self, network, logger, state: FakeTrtState) -> None:
        self._state = state
        self._errors: list[str] = []

    def parse_from_file(self, path: str) -> bool:
        self._state.parsed.append(path)
        self._errors = list(self._state.parse_errors)
        return not self._errors

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, i: int) -> str:
        return self._errors[i]


class FakeBuilder:
    def __init__(self, logger, state: FakeTrtState) -> None:
        self._logger = logger
        self._state = state
        self.num_DLA_cores = state.dla_cores

    def create_network(self, flags: int) -> FakeNetwork:
        net = FakeNetwork(flags, self._state.layer_names, self._state.major)
        self._state.networks.append(net)
        return net

    def create_builder_config(self) -> FakeConfig:
        config_type = FakeConfig if self._state.major >= 11 else FakeConfigWithInt8
        cfg = config_type(self._state, self._logger)
        self._state.configs.append(cfg)
        return cfg

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile()

    def build_serialized_network(self, network, config):
        if self._state.build_error:
            self._logger.log(FakeILogger.ERROR, self._state.build_error)
            return None
        if "OBEY_PRECISION_CONSTRAINTS" in {getattr(f, "name", f) for f in config.fake_flags}:
            for layer in network.fake_layers:
                outputs = [layer.get_output(k).dtype for k in range(layer.num_outputs)]
                if layer.fake_precision_set and any(
                    t not in ("float32", "float16") for t in outputs
                ):
                    # What TensorRT 8.6 does with a float precision on an integer-output layer
                    # under OBEY_PRECISION_CONSTRAINTS: no implementation obeys it.
                    self._logger.log(
                        FakeILogger.ERROR,
                        f"{layer.name}: could not find any implementation for node "
                        "obeying the precision constraints",
                    )
                    return None
        if getattr(config, "int8_calibrator", None) is not None:
            self._calibrate(config.int8_calibrator)
        return b"FAKE-ENGINE"

    def _calibrate(self, calibrator) -> None:
        """What TensorRT does with an implicit calibrator during the build: the cache if there
        is one, else every batch (pointers read back from FakeCuda), then the cache written."""
        if calibrator.read_calibration_cache() is not None:
            self._state.calibration.append("cache")
            return
        while (pointers := calibrator.get_batch(["input"])) is not None:
            self._state.calibration.append(tuple(pointers))
        calibrator.write_calibration_cache(b"fake-calibration-table")


class FakeEntropyCalibrator2:
    def __init__(self) -> None:
        pass


@dataclass
class FakeTrtState:
    """What the fake is told to do (knobs) and what it records; not part of the TensorRT API."""

    major: int
    device: FakeDevice
    version: tuple = (10, 3)  # the whole version, as numbers
    engine_device_memory: int = 64 << 20  # what loaded engines report as their activation need
    layer_names: list = field(default_factory=list)
    dla_cores: int = 0
    dla_incapable: set = field(default_factory=set)  # layer names DLA cannot run
    build_error: str | None = None
    parse_errors: list = field(default_factory=list)
    rejected_cache: bytes | None = None
    corrupt_cache: bytes | None = None
    parsed: list = field(default_factory=list)
    calibration: list = field(default_factory=list)  # per batch: device pointers, or "cache"
    networks: list = field(default_factory=list)
    configs: list = field(default_factory=list)
    runtimes: list = field(default_factory=list)


def _builder_flags(major: int) -> type[IntEnum]:
    names = ["GPU_FALLBACK", "TF32", "STRICT_TYPES"] if major < 10 else ["GPU_FALLBACK", "TF32"]
    if major < 11:  # TensorRT 11 is strongly typed only: no FP16/INT8 flags
        names += ["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"]
    return IntEnum("BuilderFlag", names)


def _network_flags(major: int) -> type[IntEnum]:
    # Values as in the real bindings: 8.6 EXPLICIT_BATCH=0; 10.x EXPLICIT_BATCH=0,
    # STRONGLY_TYPED=1; 11.x STRONGLY_TYPED=0 (deprecated: 11 is always strongly typed), no
    # EXPLICIT_BATCH.
    names = {8: ["EXPLICIT_BATCH"], 10: ["EXPLICIT_BATCH", "STRONGLY_TYPED"]}.get(
        major, ["STRONGLY_TYPED", "PREFER_JIT_PYTHON_PLUGINS", "PREFER_AOT_PYTHON_PLUGINS"]
    )
    return IntEnum("NetworkDefinitionCreationFlag", names, start=0)


class FakeTrt:
    """A FAKE `tensorrt` module of `version`; its public attributes are real tensorrt names."""

    ILogger = FakeILogger
    IProfiler = FakeIProfiler
    TensorIOMode = FakeTensorIOMode
    MemoryPoolType = IntEnum("MemoryPoolType", ["WORKSPACE", "DLA_LOCAL_DRAM"])
    DeviceType = IntEnum("DeviceType", ["GPU", "DLA"])
    float32 = "float32"
    float16 = "float16"

    def __init__(
        self,
        version: str = "10.3.0.30",  # fake_engine.PROVENANCE: a full trt.__version__
        cuda: FakeCuda | None = None,
        layer_names=(),
        dla_cores: int = 0,
        dla_incapable=(),
        build_error: str | None = None,
        parse_errors=(),
        rejected_cache: bytes | None = None,
        corrupt_cache: bytes | None = None,
        engine_device_memory: int = 64 << 20,
    ) -> None:
        major = int(version.split(".")[0])
        self.__version__ = version
        self.BuilderFlag = _builder_flags(major)
        self.NetworkDefinitionCreationFlag = _network_flags(major)
        if major < 11:  # removed in TensorRT 11 with the other implicit-quantization APIs
            self.IInt8EntropyCalibrator2 = FakeEntropyCalibrator2
        self.fake = FakeTrtState(
            major=major,
            device=(cuda or FakeCuda()).device,
            version=tuple(int(p) for p in version.split(".") if p.isdigit()),
            engine_device_memory=engine_device_memory,
            layer_names=list(layer_names),
            dla_cores=dla_cores,
            dla_incapable=set(dla_incapable),
            build_error=build_error,
            parse_errors=list(parse_errors),
            rejected_cache=rejected_cache,
            corrupt_cache=corrupt_cache,
        )

    def Runtime(self, logger) -> FakeRuntime:  # noqa: N802 - the real name
        runtime = FakeRuntime(logger, self.fake.device, self.fake)
        self.fake.runtimes.append(runtime)
        return runtime

    def Builder(self, logger) -> FakeBuilder:  # noqa: N802 - the real name
        return FakeBuilder(logger, self.fake)

    def OnnxParser(self, network, logger) -> FakeParser:  # noqa: N802 - the real name
        return FakeParser(network, logger, self.fake)

    @staticmethod
    def nptype(trt_dtype: str):
        if trt_dtype == "bfloat16":
            raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
        return np.dtype(trt_dtype).type


# Each fake class and the real tensorrt class it stands in for (checked by a `gpu` test).
REAL_COUNTERPARTS = {
    FakeILogger: "ILogger",
    FakeIProfiler: "IProfiler",
    FakeTensorIOMode: "TensorIOMode",
    FakeRuntime: "Runtime",
    FakeCudaEngine: "ICudaEngine",
    FakeExecutionContext: "IExecutionContext",
    FakeBuilder: "Builder",
    FakeNetwork: "INetworkDefinition",
    FakeTensor: "ITensor",
    FakeLayer: "ILayer",
    FakeLayerWithPrecision: "ILayer",
    FakeProfile: "IOptimizationProfile",
    FakeTimingCache: "ITimingCache",
    FakeConfig: "IBuilderConfig",
    FakeConfigWithInt8: "IBuilderConfig",
    FakeParser: "OnnxParser",
    FakeEntropyCalibrator2: "IInt8EntropyCalibrator2",
}
