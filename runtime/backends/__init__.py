"""Inference backends: one small protocol, two implementations picked by the artifact's file type.

`open_backend` imports a backend module (and with it onnxruntime or tensorrt) only when that
backend is chosen, so `import runtime` stays light on a device that has only one of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from runtime.meta import ModelMeta, check_artifact_hash, read_meta

PROVIDERS = ("auto", "tensorrt", "cuda", "cpu")
KINDS = ("auto", "onnxruntime", "tensorrt")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


class ProviderFallbackWarning(UserWarning):
    """An accelerator that `--provider auto` tried did not load; a slower one runs instead."""


@dataclass(frozen=True)
class BackendOptions:
    """How to run an artifact. None means "use the default"."""

    provider: str = "auto"  # ONNX Runtime only: auto | tensorrt | cuda | cpu
    device: int = 0  # CUDA device index
    trt_cache_dir: str | None = None  # ONNX Runtime TensorRT EP engine/timing cache folder
    cuda_graph: bool = False  # TensorRT backend: capture inference in a CUDA graph
    intra_op_threads: int | None = None  # ONNX Runtime CPU threads (None: all cores)
    # ONNX Runtime's CPU threads spin between ops by default, which takes the cores a video
    # pipeline's decode/encode threads need; off unless asked (measured in benchmarks/).
    allow_spinning: bool = False

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}, got {self.provider!r}")
        if self.device < 0:
            raise ValueError(f"device must be >= 0, got {self.device}")
        if self.intra_op_threads is not None and self.intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1, got {self.intra_op_threads}")


@runtime_checkable
class Backend(Protocol):
    """Runs one artifact. `infer` takes the exact model input the sidecar describes
    ((N,3,H,W) float32, or (N,H,W,3) uint8 with fused preprocessing) and returns the output
    ((N,K,H/s,W/s) float32 logits, or (N,H,W) labels with fused argmax) once it is complete."""

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
    raise ValueError(
        f"{path}: unknown model type {suffix or '(no suffix)'!r}; expected .onnx (ONNX Runtime) "
        f"or {'/'.join(ENGINE_SUFFIXES)} (TensorRT engine)"
    )


def open_backend(
    path: str | os.PathLike,
    kind: str = "auto",
    options: BackendOptions | None = None,
) -> Backend:
    """Open an artifact with its sidecar; `kind` auto picks by file type."""
    options = options or BackendOptions()
    if kind not in KINDS:
        raise ValueError(f"backend kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model {path} not found; pass --model with an .onnx or .engine file"
        )
    detected = backend_kind(path)
    if kind != "auto" and kind != detected:
        raise ValueError(
            f"{path} is a {detected} artifact, not {kind}; drop --backend or fix --model"
        )
    meta = read_meta(path)  # before the heavy import: a missing sidecar fails fast and cheaply
    check_artifact_hash(path, meta)
    if detected == "onnxruntime":
        if options.cuda_graph:
            raise ValueError(
                f"--cuda-graph applies to TensorRT engines; {path.name} runs on ONNX Runtime "
                "(build an engine with scaseg-export, or drop --cuda-graph)"
            )
        from runtime.backends.ort_backend import OrtBackend

        return OrtBackend(path, meta, options)
    if options.provider not in ("auto", "tensorrt") or options.trt_cache_dir:
        flag = "--trt-cache" if options.trt_cache_dir else f"--provider {options.provider}"
        raise ValueError(f"{flag} applies to .onnx models; {path.name} is a TensorRT engine")
    from runtime.backends.trt_backend import TrtBackend

    return TrtBackend(path, meta, options)
