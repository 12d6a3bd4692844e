"""Build a TensorRT engine from an exported ONNX and its sidecar, on the target device.

The precision comes from the ONNX: FP16/INT8 graphs are built strongly typed on TensorRT >= 10,
with builder flags + per-layer FP32 constraints (the sidecar's fp32_nodes) on 8.6. FP32 engines
are built without TF32 (on by default on Ampere/Orin), so "fp32" means FP32. Optimization
profiles come from the sidecar's (min, opt, max) shapes. Engines stay plain TensorRT files; the
provenance goes into `<engine>.json`. Version differences live in export/trt_compat.py.
"""

from __future__ import annotations

import shlex
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from export import trt_compat as tc
from export.artifacts import engine_path_for, preflight, sidecar_path
from runtime.atomic import atomic_path, atomic_write_bytes, remove_durably
from runtime.errors import RunError, UserInputError
from runtime.meta import ModelMeta, read_meta, sha256_file, write_meta
from runtime.onnx_guard import check_external_data


class EngineBuildError(RunError):
    """TensorRT could not parse or build the network; the message carries TensorRT's errors."""


@dataclass(frozen=True)
class EngineOptions:
    workspace_gib: float = 2.0  # Jetson shares RAM with the GPU: keep the builder's scratch capped
    dla_core: int | None = None
    timing_cache: Path | None = None  # default: tensorrt.timing.cache next to the ONNX
    implicit_int8: bool = False  # TensorRT < 10 only: entropy calibrator on the FP32 ONNX
    calib_data: str | None = None  # None: generated scenes for the bundled demo model only
    calib_samples: int = 32
    force: bool = False
    device: int = 0  # CUDA GPU index: TensorRT builds (and tunes tactics) for this GPU

    def __post_init__(self) -> None:
        if self.workspace_gib <= 0:
            raise UserInputError(f"--workspace-gib must be > 0, got {self.workspace_gib}")
        if isinstance(self.device, bool) or not isinstance(self.device, int) or self.device < 0:
            raise UserInputError(f"--device must be a CUDA GPU index >= 0, got {self.device!r}")


@dataclass(frozen=True)
class EngineResult:
    path: Path
    precision: str
    mode: str  # strongly-typed | builder-flags | fp32 | implicit-int8
    timing_cache: Path
    timing_cache_reused: bool
    pinned_fp32_layers: tuple[str, ...]


def build_command(onnx_file: Path, options: EngineOptions) -> str:
    """The exact command that builds this engine on the target."""
    parts = ["scaseg-export", "build-engine", str(onnx_file)]
    parts += ["--workspace-gib", f"{options.workspace_gib:g}"]
    if options.dla_core is not None:
        parts += ["--dla-core", str(options.dla_core)]
    if options.device:
        parts += ["--device", str(options.device)]
    if options.implicit_int8:
        parts += ["--implicit-int8"]
        if options.calib_data is not None:
            parts += ["--calib-data", options.calib_data]
        parts += ["--calib-samples", str(options.calib_samples)]
    return shlex.join(parts)


def engine_unavailable_reason(device: int = 0) -> str | None:
    """None where TensorRT and CUDA GPU `device` are usable; otherwise what is missing."""
    from runtime.deps import available

    if not available("tensorrt"):
        return "TensorRT is not installed here"
    try:
        from runtime.cuda_mem import open_cuda

        open_cuda(device).close()
    except Exception as err:
        return (
            f"no usable CUDA GPU ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        )
    return None


def build_engine(onnx_file: Path, options: EngineOptions, trt=None, cuda=None) -> EngineResult:
    """Build `<onnx stem>.engine` next to the ONNX; trt/cuda are injectable (tests use fakes)."""
    onnx_file = Path(onnx_file)
    meta = read_meta(onnx_file)
    check_external_data(onnx_file)  # TensorRT's parser follows external paths unchecked
    out = engine_path_for(onnx_file)
    preflight([out], options.force)
    if options.dla_core is not None:
        check_dla_request(meta, options, onnx_file)  # needs only the sidecar: before TensorRT
    if options.implicit_int8:
        options = replace(options, calib_data=implicit_calib_data(meta, options, onnx_file))
    trt = trt or tc.import_tensorrt()
    own_cuda = cuda is None
    if own_cuda:
        from runtime.cuda_mem import open_cuda

        cuda = open_cuda(options.device)  # the builder targets the GPU of the current context
    calibrator = None
    dla_layers = None
    try:
        check_build_memory(onnx_file, meta, cuda)  # before TensorRT's builder allocates
        mode = _mode(trt, meta, options)
        if options.dla_core is not None:
            _check_dla_quantization(trt, meta, mode, onnx_file)
        logger = tc.new_logger(trt)
        builder = trt.Builder(logger)
        network = builder.create_network(tc.network_flags(trt, mode == "strongly-typed"))
        _parse(trt, network, logger, onnx_file)
        config = builder.create_builder_config()
        tc.set_workspace(trt, config, int(options.workspace_gib * 1024**3))
        pinned = _apply_precision(trt, config, network, meta, mode)
        profile = _add_profile(builder, config, meta)
        if mode == "implicit-int8":
            calibrator = _calibrator(trt, meta, options, onnx_file, cuda)
            config.int8_calibrator = calibrator
            if profile is not None and config.set_calibration_profile(profile) is False:
                raise EngineBuildError(
                    f"TensorRT refused the calibration profile {meta.input.profile}"
                )
        if options.dla_core is not None:
            tc.use_dla(trt, builder, config, options.dla_core)
            dla_layers = _dla_layers(trt, network, config, options.dla_core)
        cache_path = options.timing_cache or onnx_file.parent / "tensorrt.timing.cache"
        cached = cache_path.read_bytes() if cache_path.is_file() else None
        reused = tc.load_timing_cache(config, cached, logger)
        engine_bytes = _build(builder, network, config, logger, options)
        engine_env = tc.provenance(trt, cuda)  # while the CUDA handle is open
    finally:
        if calibrator is not None:
            calibrator.free()
        if own_cuda:
            cuda.close()
    precision = "int8" if mode == "implicit-int8" else meta.precision
    # As for ONNX artifacts (export.artifacts.place): the old sidecar goes once the new engine
    # is written and before it lands, so a kill never leaves a new engine under an old sidecar.
    with atomic_path(out, overwrite=options.force) as tmp:
        tmp.write_bytes(engine_bytes)
        remove_durably(sidecar_path(out))
    atomic_write_bytes(cache_path, tc.serialize_timing_cache(config), overwrite=True)
    try:
        write_meta(
            out,
            _engine_meta(
                meta, trt, engine_env, onnx_file, out, options, precision, mode, dla_layers
            ),
        )
    except BaseException:
        out.unlink(missing_ok=True)  # never an engine without its sidecar
        raise
    return EngineResult(out, precision, mode, cache_path, reused, tuple(pinned))


def check_build_memory(onnx_file: Path, meta: ModelMeta, cuda) -> None:
    """Warn (DeviceMemoryWarning) before the builder runs when the ONNX's estimated peak
    activations plus its weights crowd or exceed the GPU's free memory; refuse (DeviceMemoryError)
    when they exceed the GPU's total memory.

    Activations are estimated from the graph at the largest shape the engine must take (the
    profile's max for a dynamic export). The workspace limit is not added: it caps the scratch
    TensorRT may use when timing tactics, and tactics that do not fit are skipped, not failed."""
    from runtime.memory_estimate import (
        DeviceMemoryError,
        DeviceMemoryWarning,
        check_device_memory,
        estimate_for_file,
    )

    spec = meta.input
    shapes = {spec.name: tuple(int(d) for d in spec.profile[2])} if spec.profile else None
    estimate = estimate_for_file(onnx_file, shapes)
    with cuda.active():
        free, total = cuda.free_memory()
    try:
        warning = check_device_memory(
            estimate.peak_bytes,
            free,
            total,
            f"building {onnx_file.name}",
            extra_bytes=estimate.weights_bytes,
        )
    except DeviceMemoryError as err:
        # TensorRT fuses layers and need not hold every tensor the ONNX graph's liveness counts
        # (the engine's own need is checked exactly before it runs): past the free memory is a
        # warning, past the GPU's whole memory a refusal.
        if estimate.peak_bytes + estimate.weights_bytes > total:
            raise
        warning = f"{err} (building anyway: TensorRT often needs less than the graph estimate)"
    if warning:
        warnings.warn(warning, DeviceMemoryWarning, stacklevel=3)


def _mode(trt, meta: ModelMeta, options: EngineOptions) -> str:
    if options.implicit_int8:
        if meta.precision != "fp32":
            raise UserInputError(
                "--implicit-int8 calibrates the FP32 ONNX; pass the .fp32.onnx (the INT8 ONNX "
                "already carries its Q/DQ scales)"
            )
        if not tc.has_implicit_calibrator(trt):
            raise RunError(
                f"TensorRT {trt.__version__} has no implicit INT8 calibrator (removed in TensorRT "
                "11); build the Q/DQ .int8.onnx instead (the default INT8 path)"
            )
        return "implicit-int8"
    if meta.precision == "fp32":
        return "fp32"
    if options.dla_core is not None and tc.has_precision_flags(trt):
        # DLA takes its precision from the FP16/INT8 builder flags; use them where they exist
        # (TensorRT < 11) even on 10.x, with the same per-layer FP32 constraints.
        return "builder-flags"
    return "strongly-typed" if tc.can_strongly_type(trt) else "builder-flags"


def _parse(trt, network, logger, onnx_file: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(
            f"TensorRT {trt.__version__} could not parse {onnx_file}: {'; '.join(errors) or 'no details'}"
        )


def _apply_precision(trt, config, network, meta: ModelMeta, mode: str) -> list[str]:
    if mode == "builder-flags":
        tc.enable_weak_precision(trt, config, meta.precision)
        pinned = tc.constrain_fp32_layers(trt, network, meta.fp32_nodes)
        missing = tc.unpinned_nodes(meta.fp32_nodes, pinned)
        if missing:
            warnings.warn(
                f"{len(missing)} of the {len(meta.fp32_nodes)} nodes the export kept in FP32 have "
                f"no TensorRT layer of that name and may run in FP16: {', '.join(missing[:5])}"
                + (" ..." if len(missing) > 5 else ""),
                stacklevel=3,
            )
        return pinned
    if mode == "implicit-int8":
        config.set_flag(trt.BuilderFlag.INT8)
    if mode == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default: Ampere/Orin would run TF32
    return []


def _add_profile(builder, config, meta: ModelMeta):
    if meta.input.profile is None:
        return None  # static shapes: no profile needed
    profile = builder.create_optimization_profile()
    lo, opt, hi = (tuple(int(d) for d in s) for s in meta.input.profile)
    profile.set_shape(meta.input.name, lo, opt, hi)
    if config.add_optimization_profile(profile) < 0:
        raise EngineBuildError(
            f"TensorRT refused the optimization profile {lo} / {opt} / {hi} for "
            f"{meta.input.name!r}; re-export with min <= opt <= max"
        )
    return profile


def check_dla_request(meta: ModelMeta, options: EngineOptions, onnx_file: Path) -> None:
    """Refuse DLA builds that would run on the GPU instead, from the sidecar alone (so before
    TensorRT is imported): an FP32 graph (DLA runs FP16/INT8 only), and a dynamic shape (DLA
    needs one static shape, min = opt = max)."""
    if meta.precision == "fp32" and not options.implicit_int8:
        raise UserInputError(
            "DLA runs FP16 and INT8 only; build the .fp16.onnx or .int8.onnx with --dla-core"
        )
    spec = meta.input
    profile = spec.profile
    static = not spec.dynamic and profile is None
    if not static and not (profile is not None and profile[0] == profile[1] == profile[2]):
        shapes = " / ".join(str(tuple(s)) for s in profile) if profile else str(spec.shape)
        raise UserInputError(
            f"--dla-core needs a static input shape (min = opt = max), but {onnx_file.name} has "
            f"a dynamic {spec.name!r} ({shapes}); re-export without --dynamic for DLA, or build "
            "without --dla-core"
        )


def _check_dla_quantization(trt, meta: ModelMeta, mode: str, onnx_file: Path) -> None:
    qdq = meta.precision == "int8" and mode != "implicit-int8"
    if qdq and not tc.dla_takes_explicit_quantization(trt):
        raise UserInputError(
            f"DLA on TensorRT {trt.__version__} cannot run the Q/DQ (explicitly quantized) "
            f"{onnx_file.name}: every layer would fall back to the GPU; build the .fp16.onnx "
            "with --dla-core, or the .fp32.onnx with --dla-core --implicit-int8 --calib-data"
        )


def _dla_layers(trt, network, config, core: int) -> dict:
    on_dla, total = tc.count_dla_layers(trt, network, config)
    if on_dla == 0:
        raise EngineBuildError(
            f"none of the {total} layers can run on DLA core {core} (with GPU fallback they "
            "would all run on the GPU); build without --dla-core"
        )
    return {"on_dla": on_dla, "total": total, "counted_by": "IBuilderConfig.can_run_on_DLA"}


def implicit_calib_data(meta: ModelMeta, options: EngineOptions, onnx_file: Path) -> str:
    """--implicit-int8's frames: as given, else generated scenes for the bundled demo model only
    (any other model would be calibrated on data it never saw)."""
    if options.calib_data is not None:
        return options.calib_data
    from export.request import DEMO_CHECKPOINT

    demo = DEMO_CHECKPOINT.is_file() and meta.hashes.get("checkpoint") == sha256_file(
        DEMO_CHECKPOINT
    )
    if not demo:
        raise UserInputError(
            f"--implicit-int8 needs --calib-data for {onnx_file.name}: an image folder, glob, "
            "video or text file listing frames like the ones the model will see (generated "
            "street scenes are the bundled demo model's data; pass --calib-data generated to "
            "use them anyway)"
        )
    return "generated"


def _calibrator(trt, meta: ModelMeta, options: EngineOptions, onnx_file: Path, cuda):
    from calibration.sources import load_calibration_data, model_inputs

    pp = meta.preprocess
    data = load_calibration_data(options.calib_data, options.calib_samples, pp.height, pp.width)
    batches = list(model_inputs(data, pp, fused=meta.fused_preprocess))
    # Keyed by the ONNX's bytes and the data: weights re-exported under the same file name get
    # new scales, never the old model's cached ones.
    key = f"{sha256_file(onnx_file)[:12]}-{data.sha256[:12]}"
    cache_file = onnx_file.with_suffix(f".calib-{key}.cache")
    return tc.make_entropy_calibrator(trt, batches, cache_file, cuda)


def _build(builder, network, config, logger, options: EngineOptions) -> bytes:
    mark = logger.mark()
    raised = []
    try:
        serialized = builder.build_serialized_network(network, config)
    except (RuntimeError, MemoryError) as err:
        raised.append(str(err))
        serialized = None
    if serialized is not None:
        return bytes(memoryview(serialized))
    errors = logger.errors_since(mark) + raised
    if tc.is_out_of_memory(errors):
        raise EngineBuildError(
            f"the engine build ran out of memory (TensorRT: {errors[-1]}); lower --workspace-gib "
            f"(now {options.workspace_gib:g}), export static shapes or a smaller --max-size, "
            "close other GPU processes, and on Jetson add swap"
        )
    raise EngineBuildError(
        f"TensorRT failed to build the engine: {'; '.join(errors) or 'no details'}"
    )


def _engine_meta(
    meta, trt, engine_env, onnx_file, out, options, precision, mode, dla_layers=None
) -> ModelMeta:
    engine = {
        **engine_env,
        "dla_core": options.dla_core,
        # DLA builds: {"on_dla", "total", "counted_by"}: how much of the engine DLA runs
        **({"dla_layers": dla_layers} if dla_layers is not None else {}),
        "build_mode": mode,
        "workspace_gib": options.workspace_gib,
        "build_command": build_command(onnx_file, options),
    }
    hashes = {**meta.hashes, "source_onnx": sha256_file(onnx_file), "artifact": sha256_file(out)}
    calibration = meta.calibration
    if mode == "implicit-int8":
        calibration = {
            "method": "entropy",
            "samples": options.calib_samples,
            "library": f"TensorRT {trt.__version__} IInt8EntropyCalibrator2 (implicit)",
            "data": options.calib_data,
        }
    return replace(meta, precision=precision, engine=engine, hashes=hashes, calibration=calibration)
