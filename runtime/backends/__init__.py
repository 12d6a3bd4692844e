"""Inference backends: one small protocol; ONNX Runtime or OpenVINO for .onnx, TensorRT for engines.

`open_backend` imports a backend module (and with it onnxruntime, openvino or tensorrt) only when
that backend is chosen, so `import runtime` stays light on a device that has only one of them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from runtime.backends.choice import BackendChoice, auto_onnx_choice, choose_onnx_backend
from runtime.errors import UserInputError
from runtime.meta import ModelMeta, check_artifact_hash, read_meta

__all__ = [
    "ENGINE_SUFFIXES",
    "KINDS",
    "OV_PRECISIONS",
    "PROVIDERS",
    "Backend",
    "BackendChoice",
    "BackendOptions",
    "ProviderFallbackWarning",
    "auto_onnx_choice",
    "backend_kind",
    "choose_onnx_backend",
    "open_backend",
    "parse_device",
]

PROVIDERS = ("auto", "tensorrt", "cuda", "cpu")
KINDS = ("auto", "onnxruntime", "tensorrt", "openvino")
OV_PRECISIONS = ("auto", "f32", "bf16", "f16")
# An OpenVINO device: CPU, GPU, GPU.1, NPU, AUTO, AUTO:GPU,CPU, HETERO:GPU,CPU ...
_OV_DEVICE = re.compile(
    r"^[A-Z][A-Z0-9_]*(\.\d+)?(:[A-Z][A-Z0-9_]*(\.\d+)?(,[A-Z][A-Z0-9_]*(\.\d+)?)*)?$"
)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


class ProviderFallbackWarning(UserWarning):
    """An accelerator that `--provider auto` tried did not load; a slower one runs instead."""


@dataclass(frozen=True)
class BackendOptions:
    """How to run an artifact. None means "use the default"."""

    provider: str = "auto"  # ONNX Runtime only: auto | tensorrt | cuda | cpu
    # A CUDA device index (ONNX Runtime CUDA/TensorRT EP, TensorRT engines) or an OpenVINO device
    # name (CPU, GPU, GPU.1, NPU, AUTO). None: GPU 0 for CUDA, CPU for OpenVINO.
    device: int | str | None = None
    trt_cache_dir: str | None = None  # ONNX Runtime TensorRT EP engine/timing cache folder
    cuda_graph: bool = False  # TensorRT backend: capture inference in a CUDA graph
    intra_op_threads: int | None = None  # ONNX Runtime CPU threads (None: all cores)
    # ONNX Runtime's CPU threads spin between ops by default, which takes the cores a video
    # pipeline's decode/encode threads need; off unless asked (measured in benchmarks/).
    allow_spinning: bool = False
    # OpenVINO's inference precision: auto follows the artifact (fp32 -> f32; fp16 and the float
    # remainder of int8 -> the device's default, bf16/f16 where it has them).
    ov_precision: str = "auto"

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise UserInputError(f"provider must be one of {PROVIDERS}, got {self.provider!r}")
        if isinstance(self.device, bool) or not isinstance(self.device, (int, str, type(None))):
            raise UserInputError(
                f"device must be a CUDA index or an OpenVINO device name, got {self.device!r}"
            )
        if isinstance(self.device, int) and self.device < 0:
            raise UserInputError(f"device must be >= 0, got {self.device}")
        if isinstance(self.device, str) and not _OV_DEVICE.match(self.device):
            raise UserInputError(
                f"device {self.device!r} is neither a CUDA index (0, 1, ...) nor an OpenVINO "
                "device name (CPU, GPU, GPU.1, NPU, AUTO); pass e.g. device=0 or device='CPU'"
            )
        if self.ov_precision not in OV_PRECISIONS:
            raise UserInputError(
                f"ov_precision must be one of {OV_PRECISIONS}, got {self.ov_precision!r}"
            )
        if self.intra_op_threads is not None and self.intra_op_threads < 1:
            raise UserInputError(f"intra_op_threads must be >= 1, got {self.intra_op_threads}")

    @property
    def cuda_device(self) -> int:
        """The CUDA device index; ValueError for an OpenVINO device name."""
        if isinstance(self.device, str):
            raise UserInputError(
                f"device={self.device!r} names an OpenVINO device; ONNX Runtime and TensorRT "
                "take a CUDA GPU index: use device=0, or kind='openvino'"
            )
        return 0 if self.device is None else self.device

    @property
    def ov_device(self) -> str:
        """The OpenVINO device name; ValueError for a CUDA index."""
        if isinstance(self.device, int):
            raise UserInputError(
                f"device={self.device} is a CUDA GPU index; OpenVINO takes a device name: use "
                "device='CPU' (or GPU, GPU.1, NPU, AUTO)"
            )
        return self.device or "CPU"


@runtime_checkable
class Backend(Protocol):
    """Runs one artifact. `infer` takes the exact model input the sidecar describes
    ((N,3,H,W) float32, or (N,H,W,3) uint8 with fused preprocessing) and returns the output
    ((N,K,H/s,W/s) float32 logits, or (N,H,W) labels with fused argmax) once it is complete.

    Backends opened by `open_backend` also carry `choice`: why `--backend auto` picked them for an
    .onnx model, or None where nothing was picked."""

    meta: ModelMeta
    description: str  # what really runs, e.g. "onnxruntime 1.19 CUDAExecutionProvider"

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...


def backend_kind(path: str | os.PathLike) -> str:
    """'onnxruntime' for .onnx, 'tensorrt' for serialized engines; ValueError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return "onnxruntime"
    if suffix in ENGINE_SUFFIXES:
        return "tensorrt"
    raise UserInputError(
        f"{path}: unknown model type {suffix or '(no suffix)'!r}; expected .onnx (ONNX Runtime "
        f"or OpenVINO) or {'/'.join(ENGINE_SUFFIXES)} (TensorRT engine)"
    )


def parse_device(text: str | None) -> int | str | None:
    """A --device value: digits are a CUDA index, anything else an OpenVINO device name."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    return int(text) if text.isdigit() else text.upper()


def open_backend(
    path: str | os.PathLike,
    kind: str = "auto",
    options: BackendOptions | None = None,
    *,
    tensorrt: object | None = None,
    cuda: object | None = None,
) -> Backend:
    """Open an artifact with its sidecar; `kind` auto picks by file type (and, for .onnx, by
    what is installed: see choose_onnx_backend). An auto-picked backend has `choice` set to the
    reason it was picked.

    `tensorrt` (the module) and `cuda` (a runtime.cuda_mem.CudaApi) are what a TensorRT engine
    runs on; None loads the real ones (tensorrt; pycuda or cuda-python). Tests pass fakes. ONNX
    models do not use them."""
    options = options or BackendOptions()
    if kind not in KINDS:
        raise UserInputError(f"backend kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model {path} not found; give the path of an .onnx or .engine file"
        )
    detected = backend_kind(path)
    if kind == "openvino" and detected != "onnxruntime":
        raise UserInputError(
            f"kind='openvino' runs .onnx models; {path.name} is a TensorRT engine: use the "
            ".onnx it was built from, or kind='auto'"
        )
    if kind not in ("auto", "openvino") and kind != detected:
        raise UserInputError(
            f"{path} is a {detected} artifact, not {kind}; use kind='auto' or another model"
        )
    meta = read_meta(path)  # before the heavy import: a missing sidecar fails fast and cheaply
    check_artifact_hash(path, meta)
    if detected == "onnxruntime":
        return _open_onnx(path, kind, meta, options)
    if options.provider not in ("auto", "tensorrt") or options.trt_cache_dir:
        raise UserInputError(
            f"{_ort_option(options)} applies to .onnx models; {path.name} is a TensorRT engine"
        )
    _refuse_ov_options(options, path, "is a TensorRT engine")
    options.cuda_device  # noqa: B018 -- raises its ValueError for an OpenVINO device name
    from runtime.backends.trt_backend import TrtBackend

    return TrtBackend(path, meta, options, tensorrt=tensorrt, cuda=cuda)


def _open_onnx(path: Path, kind: str, meta: ModelMeta, options: BackendOptions) -> Backend:
    if options.cuda_graph:
        raise UserInputError(
            f"cuda_graph=True applies to TensorRT engines; {path.name} runs on ONNX Runtime "
            "(build an engine with scaseg-export, or drop cuda_graph=True)"
        )
    choice = auto_onnx_choice(meta, options.provider, options.device) if kind == "auto" else None
    if kind == "openvino" or (choice is not None and choice.kind == "openvino"):
        if options.provider != "auto" or options.trt_cache_dir:
            raise UserInputError(
                f"{_ort_option(options)} applies to ONNX Runtime; drop it or use kind='onnxruntime'"
            )
        from runtime.backends.openvino_backend import OvBackend

        backend = OvBackend(path, meta, options)
    else:
        _refuse_ov_options(options, path, "runs on ONNX Runtime here")
        options.cuda_device  # noqa: B018 -- raises its ValueError for an OpenVINO device name
        from runtime.backends.ort_backend import OrtBackend

        backend = OrtBackend(path, meta, options)
    backend.choice = choice.reason if choice is not None else None
    return backend


def _refuse_ov_options(options: BackendOptions, path: Path, what: str) -> None:
    if options.ov_precision != "auto":
        raise UserInputError(
            f"`ov_precision` applies to OpenVINO; {path.name} {what} (use kind='openvino', "
            "or ov_precision='auto')"
        )


def _ort_option(options: BackendOptions) -> str:
    """The ONNX Runtime-only option that was set, as the API names it."""
    if options.trt_cache_dir:
        return f"trt_cache_dir={options.trt_cache_dir!r}"
    return f"provider={options.provider!r}"
