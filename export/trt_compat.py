"""Every TensorRT version difference the engine BUILDER cares about, in one place.

- TensorRT 8.6 (JetPack 6.0 ships 8.6.2; desktops): EXPLICIT_BATCH network flag; precision from
  builder flags (FP16, INT8) plus per-layer FP32 constraints (OBEY_PRECISION_CONSTRAINTS);
  implicit INT8 calibrators. 8.6 is the oldest that builds our graphs: its ONNX parser is the
  first with LayerNormalization. JetPack 5.1.x ships 8.5.2 and cannot build them. Its DLA takes
  INT8 from calibration only, not from Q/DQ nodes (dla_takes_explicit_quantization).
- TensorRT 10.x (JetPack 6.1+ = 10.3): explicit batch is the only mode (the flag is deprecated);
  STRONGLY_TYPED networks take each tensor's type from the ONNX (our FP16/INT8 graphs); the
  FP16/INT8 flags and calibrators still exist but are deprecated.
- TensorRT 11: the FP16/INT8/OBEY_PRECISION_CONSTRAINTS flags and the implicit calibrators are
  gone (checked with hasattr, never with version numbers alone); strongly typed is the way.
TensorRT subclasses (the calibrator) are created inside factory functions, so importing this
module never needs TensorRT. Tested only with fakes here (tests/export/test_trt_build.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from types import ModuleType

import numpy as np

from runtime.deps import require
from runtime.errors import RunError
from runtime.trt_compat import make_logger, parse_version

MIN_BUILD_VERSION = (8, 6)  # the name-based API and ONNX LayerNormalization import
OOM_PATTERNS = re.compile(
    r"out of memory|outofmemory|cudaErrorMemoryAllocation|insufficient memory|"
    r"requested amount of gpu memory|failed to allocate|allocation failed|OOM",
    re.IGNORECASE,
)


def import_tensorrt() -> ModuleType:
    trt = require("tensorrt", "to build TensorRT engines")
    if version(trt)[:2] < MIN_BUILD_VERSION:
        raise RunError(
            f"TensorRT {trt.__version__} is too old to build these engines: they need >= 8.6, "
            "whose ONNX parser is the first with LayerNormalization (JetPack 6.0 ships 8.6, "
            "JetPack 6.1+ 10.3; JetPack 5 ships 8.5); upgrade JetPack, or run the .onnx with "
            "ONNX Runtime instead"
        )
    return trt


def version(trt: ModuleType) -> tuple[int, ...]:
    return parse_version(trt.__version__)


def new_logger(trt: ModuleType):
    return make_logger(trt)  # collects errors (for our messages), turns warnings into warnings


def can_strongly_type(trt: ModuleType) -> bool:
    return version(trt)[0] >= 10 and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")


def has_precision_flags(trt: ModuleType) -> bool:
    """FP16/INT8 builder flags exist (TensorRT < 11)."""
    return all(hasattr(trt.BuilderFlag, f) for f in ("FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"))


def has_implicit_calibrator(trt: ModuleType) -> bool:
    return hasattr(trt, "IInt8EntropyCalibrator2") and hasattr(trt.BuilderFlag, "INT8")


def network_flags(trt: ModuleType, strongly_typed: bool) -> int:
    flags = 0
    if version(trt)[0] < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


def set_workspace(trt: ModuleType, config, workspace_bytes: int) -> None:
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))


def enable_weak_precision(trt: ModuleType, config, precision: str) -> None:
    """TensorRT < 10 (or a weakly typed build): FP16/INT8 flags + obey per-layer constraints."""
    if not has_precision_flags(trt):
        raise RunError(
            f"TensorRT {trt.__version__} has no FP16/INT8 builder flags; build strongly typed "
            "(the FP16/INT8 ONNX already carry their precision)"
        )
    # INT8 Q/DQ graphs get INT8 only: their float layers (norms, softmax) then stay FP32.
    config.set_flag(trt.BuilderFlag.INT8 if precision == "int8" else trt.BuilderFlag.FP16)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)


def constrain_fp32_layers(trt: ModuleType, network, onnx_node_names: Iterable[str]) -> list[str]:
    """Pin the layers made from the given ONNX nodes to FP32; returns the layer names pinned.

    onnx-tensorrt names a node's first layer after the node and its further layers
    `<node>_<counter>` (one counter for the whole import), so a layer matches its node's name
    exactly or with a `_<digits>` suffix. That can also catch another node named like that
    (torch's "/attn/MatMul_1" next to "/attn/MatMul"): it errs towards more FP32, never less.

    Only layers whose outputs are all floating point are pinned: a float32 precision on a layer
    with an int32/bool/shape output (Shape, ArgMax, Cast, a comparison) can fail an 8.6 build
    under OBEY_PRECISION_CONSTRAINTS. The type is read from the output tensor
    (`layer.get_output(k).dtype`, what the network inferred): `layer.get_output_type(k)` is the
    *requested* type, FLOAT until set, so it says nothing about an integer output.
    """
    wanted = {n for n in onnx_node_names if n}
    floats = {trt.float32, trt.float16}
    pinned = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if _node_of(layer.name, wanted) is None:
            continue
        if not all(layer.get_output(k).dtype in floats for k in range(layer.num_outputs)):
            continue
        layer.precision = trt.float32
        for k in range(layer.num_outputs):
            layer.set_output_type(k, trt.float32)
        pinned.append(layer.name)
    return pinned


def _node_of(layer_name: str, nodes: set[str]) -> str | None:
    """The ONNX node a layer was made from, by onnx-tensorrt's naming; None if not in `nodes`."""
    if layer_name in nodes:
        return layer_name
    base, sep, counter = layer_name.rpartition("_")
    return base if sep and counter.isdigit() and base in nodes else None


def unpinned_nodes(onnx_node_names: Iterable[str], pinned_layers: Iterable[str]) -> list[str]:
    """FP32 nodes that no layer was pinned for (renamed or fused away by the parser)."""
    nodes = {n for n in onnx_node_names if n}
    found = {_node_of(name, nodes) for name in pinned_layers}
    return sorted(nodes - found)


def use_dla(trt: ModuleType, builder, config, core: int) -> None:
    """Run on DLA core `core`, falling back to the GPU for layers DLA cannot run."""
    available = int(getattr(builder, "num_DLA_cores", 0))
    if core < 0 or core >= available:
        raise RunError(
            f"--dla-core {core} requested but this device has {available} DLA core(s)"
            + ("; DLA exists only on Jetson Xavier/Orin" if available == 0 else "")
        )
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = int(core)
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def dla_takes_explicit_quantization(trt: ModuleType) -> bool:
    """Whether DLA builds a Q/DQ (explicitly quantized) INT8 network: not on TensorRT 8.x, whose
    DLA runs INT8 from calibration (implicit quantization) only; a Q/DQ graph with
    GPU_FALLBACK would silently run every layer on the GPU. TensorRT 10 builds Q/DQ on DLA."""
    return version(trt)[0] >= 10


def count_dla_layers(trt: ModuleType, network, config) -> tuple[int, int]:
    """(layers that will run on DLA, all layers) of the parsed network under a DLA config.

    Asked per layer before the build: `config.can_run_on_DLA(layer)` and
    `config.get_device_type(layer)` (IBuilderConfig, TensorRT 8.6-10.x). With GPU_FALLBACK a
    layer that cannot run on DLA goes to the GPU, so this counts what DLA can take; the builder
    can still move a few more to the GPU (DLA subgraph limits), which only the built engine's
    layer information (IEngineInspector, DETAILED profiling) would show.
    """
    on_dla = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if config.get_device_type(layer) == trt.DeviceType.DLA and config.can_run_on_DLA(layer):
            on_dla += 1
    return on_dla, int(network.num_layers)


def load_timing_cache(config, data: bytes | None, logger) -> bool:
    """Attach a timing cache made from `data`; returns False when it was refused and replaced
    by an empty one.

    Two ways to refuse: a cache from another TensorRT version (or a corrupt one) fails inside
    create_timing_cache, which logs "magicTagRead == kMAGIC_TAG" errors and may return None
    (NVIDIA/TensorRT#3566); one from another GPU makes set_timing_cache return False. The
    refused cache's log errors are forgotten: they are not the build's."""
    mark = logger.mark()
    cache = config.create_timing_cache(data or b"")
    accepted = cache is not None and not logger.errors_since(mark)
    if accepted and config.set_timing_cache(cache, ignore_mismatch=False):
        return bool(data)
    logger.forget_since(mark)
    config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    return False


def serialize_timing_cache(config) -> bytes:
    return bytes(memoryview(config.get_timing_cache().serialize()))


def is_out_of_memory(errors: Iterable[str]) -> bool:
    return any(OOM_PATTERNS.search(e) for e in errors)


def make_entropy_calibrator(trt: ModuleType, batches: list[np.ndarray], cache_file, cuda):
    """An IInt8EntropyCalibrator2 over preprocessed batches (TensorRT < 10 only, opt-in).

    `cuda` is runtime.cuda_mem's API (pycuda or cuda-python) for the device buffer; the cache
    file is read back when it exists, so TensorRT skips calibration on a rebuild.
    """
    if not has_implicit_calibrator(trt):
        raise RunError(
            f"TensorRT {trt.__version__} has no implicit INT8 calibrator (removed in TensorRT "
            "11); build the Q/DQ INT8 ONNX instead (the default)"
        )
    from pathlib import Path

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            # The base __init__ must be called explicitly or TensorRT crashes in get_batch.
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            # pycuda allocates only inside its own context stack ("no currently active
            # context" otherwise), even where TensorRT made the primary context current.
            with cuda.active():
                self.device = cuda.alloc_device(batches[0].nbytes)

        def free(self) -> None:
            """Release the device buffer (after the build; TensorRT holds no pointer to it)."""
            device, self.device = self.device, None
            if device is not None:
                with cuda.active():
                    cuda.free_device(device)

        def get_batch_size(self) -> int:
            return int(batches[0].shape[0])

        def get_batch(self, names):
            if self.index >= len(batches):
                return None
            batch = np.ascontiguousarray(batches[self.index])
            with cuda.active():
                cuda.copy_htod_async(self.device, batch)
                cuda.synchronize()
            self.index += 1
            return [int(self.device)] * len(names)

        def read_calibration_cache(self):
            path = Path(cache_file)
            return path.read_bytes() if path.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            from runtime.atomic import atomic_write_bytes

            atomic_write_bytes(cache_file, bytes(memoryview(cache)))

    return EntropyCalibrator()


def provenance(trt: ModuleType, cuda=None) -> dict:
    """TensorRT/CUDA versions, GPU, compute capability, JetPack: what an engine is tied to."""
    from runtime.profiling.envinfo import jetson_info

    info = {"tensorrt_version": trt.__version__}
    if cuda is not None:
        dev = cuda.device_info()
        info.update(
            gpu_name=dev.name,
            compute_capability=dev.compute_capability,
            cuda_version=dev.cuda_version,
        )
    jetson = jetson_info()
    info["jetpack"] = (jetson or {}).get("jetpack")
    return info
