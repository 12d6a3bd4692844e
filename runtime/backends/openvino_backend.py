"""OpenVINO backend: the same .onnx artifacts on Intel CPUs (and iGPU/NPU), with what really ran.

OpenVINO reads our explicit Q/DQ graph as it is and runs the quantized Conv/MatMul in int8; the
float remainder, and whole FP16 graphs, run at the device's inference precision, which on CPUs
with AMX/AVX512-BF16 is bf16 unless asked otherwise. So the precision is chosen per artifact
(fp32, int8 -> f32; fp16 -> the device default) or by `ov_precision`, and then read back from the
compiled model together with the devices it executes on and, for INT8, the number of layers that
really run in i8/u8 (`get_runtime_model()` rt_info), so the description states what ran.

One InferRequest is reused: runtime.pipeline infers one frame at a time on one thread (decode and
encode overlap on their own threads), so an AsyncInferQueue would never hold a second frame.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from runtime.backends import BackendOptions
from runtime.deps import require
from runtime.errors import RunError, UserInputError
from runtime.meta import MetaError, ModelMeta, check_graph_io
from runtime.onnx_guard import check_external_data
from runtime.text import printable

# What each artifact precision asks of OpenVINO under ov_precision "auto"; None: device default.
# INT8's float remainder (attention products, softmax, norms) runs in f32 as on ONNX Runtime, so
# both engines run the graph the gate verified: in bf16 it lost 0.3-0.8 mIoU points more on real
# frames, for about 6% less latency (Xeon with AMX, SCASeg-T 512x512; BENCHMARKS.md).
AUTO_HINTS = {"fp32": "f32", "fp16": None, "int8": "f32"}
# OPTIMIZATION_CAPABILITIES entry a device lists when it can run a hint.
CAPABILITY = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}
VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")
# Runtime-model layers that move or hold data rather than compute it.
_NOT_COMPUTE = {"Input", "Output", "Parameter", "Result", "Const", "Reorder"}


class OvPrecisionWarning(UserWarning):
    """OpenVINO runs an artifact at another precision than the artifact was made for."""


def short_version(ov) -> str:
    """'2026.4.1' from '2026.4.1-22982-e213a147257-releases/2026/4'."""
    return str(ov.__version__).split("-")[0]


def check_device(device: str, available: list[str]) -> None:
    """UserInputError unless `device` (or every device a virtual one names) exists here."""
    base, _, listed = device.partition(":")
    names = [base] if base not in VIRTUAL_DEVICES else [d for d in listed.split(",") if d]
    for name in names:
        plain = name.split(".")[0]
        if name in available or (
            name == plain and any(a.split(".")[0] == plain for a in available)
        ):
            continue
        raise UserInputError(
            f"device='{device}': OpenVINO has no device {name} here; available: "
            f"{', '.join(available) or 'none'} (and AUTO); use one of those, e.g. device='CPU'"
        )


def precision_hint(meta: ModelMeta, ov_precision: str) -> str | None:
    """The INFERENCE_PRECISION_HINT to compile with; None leaves the device's default."""
    if ov_precision != "auto":
        return ov_precision
    return AUTO_HINTS[meta.precision]


class OvBackend:
    """An OpenVINO compiled model for one .onnx artifact; see `runtime.backends.Backend`.

    After opening: `device` (what executes, e.g. "CPU"), `inference_precision` (f32, bf16, f16),
    `int8_layers` (layers running in i8/u8; None for float artifacts), `version`.
    """

    choice: str | None = None  # set by open_backend when --backend auto picked it

    def __init__(self, path: str | os.PathLike, meta: ModelMeta, options: BackendOptions):
        ov = require("openvino", "to run .onnx models on OpenVINO (kind='openvino')")
        self.path = Path(path)
        self.meta = meta
        self.version = short_version(ov)
        self._core = ov.Core()
        device = options.ov_device
        check_device(device, list(self._core.available_devices))
        self._model = _read_onnx(self.path)
        self._check_io()
        hint = precision_hint(meta, options.ov_precision)
        if hint is not None:
            self._check_capability(device, hint, options.ov_precision != "auto")
        self.config = {"PERFORMANCE_HINT": "LATENCY"}  # one frame in flight: see the module doc
        if hint is not None:
            self.config["INFERENCE_PRECISION_HINT"] = hint
        if options.intra_op_threads:
            self.config["INFERENCE_NUM_THREADS"] = options.intra_op_threads
        self._compiled = self._compile(device, self.config)
        self.device = ",".join(_read(self._compiled, "EXECUTION_DEVICES") or [device])
        self.inference_precision = _type_name(_read(self._compiled, "INFERENCE_PRECISION_HINT"))
        self._check_precision(hint, options.ov_precision)
        self.int8_layers = self._count_int8() if meta.precision == "int8" else None
        self._request = self._compiled.create_infer_request()
        self._input = self._compiled.input(meta.input.name)
        self._output = self._compiled.output(meta.output.name)
        n = self.int8_layers
        int8 = f"; {n} int8 layer{'' if n == 1 else 's'}" if n is not None else ""
        self.description = (
            f"openvino {self.version} {self.device} "
            f"(inference precision {self.inference_precision}{int8})"
        )

    def _check_io(self) -> None:
        inputs = [n for i in self._model.inputs for n in sorted(i.get_names())]
        outputs = [n for o in self._model.outputs for n in sorted(o.get_names())]
        check_graph_io(
            self.path,
            self.meta,
            inputs,
            outputs,
            _shape(self._model.inputs, self.meta.input.name),
            _shape(self._model.outputs, self.meta.output.name),
        )

    def _check_capability(self, device: str, hint: str, explicit: bool) -> None:
        caps = _read_device(self._core, device, "OPTIMIZATION_CAPABILITIES")
        if caps is None or CAPABILITY[hint] in caps:
            return  # virtual devices (AUTO) list none: the read-back after compiling decides
        if explicit:
            raise UserInputError(
                f"ov_precision='{hint}': OpenVINO device {device} cannot run {hint} (it "
                f"supports {', '.join(caps)}); use ov_precision='auto' or ov_precision='f32'"
            )

    def _compile(self, device: str, config: dict):
        try:
            return self._core.compile_model(self._model, device, config)
        except RuntimeError as err:
            # The CPU plugin ships inside OpenVINO: a failure there is the model's; on GPU/NPU
            # it may be the device's driver.
            kind = MetaError if device == "CPU" else RunError
            raise kind(
                f"OpenVINO {self.version} cannot compile {self.path.name} for {device} "
                f"({_detail(err, self.path)}); use kind='onnxruntime' for it"
            ) from err

    def _check_precision(self, hint: str | None, ov_precision: str) -> None:
        ran = self.inference_precision
        if hint is not None and ran not in (hint, "unknown"):
            raise (UserInputError if ov_precision != "auto" else RunError)(
                f"ov_precision='{hint}' was requested but OpenVINO compiled {self.path.name} "
                f"for {ran} on {self.device}; use ov_precision='auto'"
                if ov_precision != "auto"
                else f"OpenVINO compiled the fp32 artifact {self.path.name} for {ran}, not f32, "
                f"on {self.device}; pass ov_precision='{ran}' to accept that"
            )
        if self.meta.precision == "fp16" and ran == "f32":
            warnings.warn(
                f"{self.path.name} is an fp16 artifact but OpenVINO runs it in f32 on "
                f"{self.device} (no bf16/f16 support there): fp32 speed, fp32 accuracy",
                OvPrecisionWarning,
                stacklevel=3,
            )

    def _count_int8(self) -> int:
        count = 0
        for op in self._compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if "runtimePrecision" not in info or "layerType" not in info:
                continue
            kind, precision = info["layerType"].astype(str), info["runtimePrecision"].astype(str)
            count += kind not in _NOT_COMPUTE and precision in ("i8", "u8")
        if count == 0:
            warnings.warn(
                f"{self.path.name} is an INT8 (Q/DQ) artifact but OpenVINO runs no layer in int8 "
                f"on {self.device} (inference precision {self.inference_precision}): it runs as "
                "float, without int8's speed-up",
                OvPrecisionWarning,
                stacklevel=3,
            )
        return count

    def compile_for_profiling(self):
        """A second compiled model with OpenVINO's performance counters on (same settings)."""
        return self._compile(self.device.split(",")[0], {**self.config, "PERF_COUNT": True})

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self._request.infer({self._input: batch})
        # The request reuses its output buffer on the next call, and the pipeline postprocesses
        # this output on another thread while the next frame runs: hand out a copy.
        return self._request.get_tensor(self._output).data.copy()

    def close(self) -> None:
        self._request = self._compiled = self._model = None

    def __enter__(self) -> OvBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_onnx(path: Path):
    """The ONNX frontend directly: Core.read_model tries every frontend on bad bytes, and the
    TensorFlow one prints parse errors to stderr before all of them fail."""
    import openvino.frontend as fe

    check_external_data(path)  # the same guard as ONNX Runtime: weights only from beside the model
    frontend = fe.FrontEndManager().load_by_framework("onnx")
    # What the ONNX frontend raises for a file it cannot read or convert (unknown or custom
    # operators, inconsistent initializers, missing inputs: the last as a plain RuntimeError).
    not_a_model = (fe.GeneralFailure, fe.OpConversionFailure, fe.OpValidationFailure,
                   fe.NotImplementedFailure, RuntimeError)  # fmt: skip
    try:
        return frontend.convert(frontend.load(str(path)))
    except fe.InitializationFailure as err:
        raise RunError(f"OpenVINO's ONNX reader failed to start ({_detail(err, path)})") from err
    except not_a_model as err:
        raise MetaError(
            f"cannot load {path}: not a valid ONNX model for OpenVINO ({_detail(err, path)}); "
            "is it truncated, mislabelled or made with custom operators? Re-export it with "
            "scaseg-export, or use kind='onnxruntime'"
        ) from err


def _detail(err: BaseException, path: Path) -> str:
    """OpenVINO's message on one line, without the path we already name, the end kept (its
    first lines are the C++ check that failed, the cause comes last)."""
    text = " ".join(str(err).split()).replace(str(path), path.name) or type(err).__name__
    return printable(text[-200:], markup=False)


def _shape(ports, name: str) -> list | None:
    port = next((p for p in ports if name in p.get_names()), None)
    if port is None:
        return None
    return [d.get_length() if d.is_static else "?" for d in port.get_partial_shape()]


def _read(compiled, key: str):
    try:
        return compiled.get_property(key)
    except RuntimeError:  # AUTO and other virtual devices do not report every property
        return None


def _read_device(core, device: str, key: str):
    try:
        return list(core.get_property(device, key))
    except RuntimeError:
        return None


def _type_name(value) -> str:
    """'bf16' from an openvino Type (or a string such as 'bf16'); 'unknown' when unreadable."""
    if value is None:
        return "unknown"
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)
