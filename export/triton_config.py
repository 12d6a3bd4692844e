"""Triton model configs from an artifact's sidecar: batch limits, dims and dtypes.

Hand-written Triton configs are where scale-out breaks: a `max_batch_size` of 8 on an engine whose
profile stops at batch 1 loads, then fails every batched request ("dim 0 between 1 and 1"). Here
every dim, dtype and batch limit comes from the sidecar, and anything Triton cannot serve as
asked is refused with the fix.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from export.triton_pbtxt import TritonModelConfig, TritonTensor
from runtime.backends import backend_kind
from runtime.errors import UserInputError
from runtime.meta import ModelMeta, TensorSpec

TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "uint8": "TYPE_UINT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
}
# Batch limit for graphs whose batch dim has no recorded upper bound (dynamic ONNX, no profile).
DEFAULT_MAX_BATCH = 8
PYTHON_INPUT = "image"  # (N,H,W,3) uint8 BGR, any H,W: the Segmenter contract
PYTHON_OUTPUT = "labels"  # (N,H,W) class ids at the frame's size


class TritonConfigError(UserInputError):
    """The artifacts cannot be served by Triton as asked; the message says how to fix it."""


class TritonBatchingWarning(UserWarning):
    """A native model cannot batch as asked; the Python-backend model beside it does."""


def batch_range(spec: TensorSpec) -> tuple[int, int | None]:
    """(min, max) batch the artifact accepts; max None = unbounded (dynamic, no profile)."""
    first = spec.shape[0]
    if isinstance(first, int):
        return first, first
    if spec.profile:
        return int(spec.profile[0][0]), int(spec.profile[2][0])
    return 1, None


def triton_dtype(spec: TensorSpec) -> str:
    return TRITON_DTYPES[spec.dtype]


def _dims(shape: Sequence) -> tuple[int, ...]:
    return tuple(-1 if isinstance(d, str) else int(d) for d in shape)


@dataclass(frozen=True)
class Batching:
    max_batch_size: int
    dynamic_batching: bool
    note: str


def plan_batching(
    meta: ModelMeta,
    max_batch_size: int | None,
    dynamic_batching: bool | None,
    artifact: str,
    *,
    python_batches: bool = False,
) -> Batching:
    """Triton batch settings the artifact can honour; refuses the ones it cannot.

    `python_batches`: a Python-backend model in the same repository honours the requested
    batching for this artifact, so a fixed batch here is a warning rather than an error.
    """
    lo, hi = batch_range(meta.input)
    if isinstance(meta.input.shape[0], int):
        # A fixed batch dim is part of the model's shape, not Triton's: max_batch_size 0.
        if (max_batch_size or 0) > 0 or dynamic_batching:
            message = (
                f"{artifact}: its batch dim is fixed at {lo} (input shape "
                f"{list(meta.input.shape)}), so its native Triton model cannot batch requests"
            )
            if not python_batches:
                raise TritonConfigError(
                    f"{message}; re-export it with a dynamic batch dimension, or drop "
                    "--max-batch-size / dynamic batching for this model"
                )
            # stacklevel 3: plan_batching <- triton_repo._plan_native <- write_triton_repo
            warnings.warn(
                f"{message}: it gets max_batch_size 0; the Python-backend model batches it "
                "(re-export with a dynamic batch dimension to batch natively)",
                TritonBatchingWarning,
                stacklevel=3,
            )
        return Batching(0, False, f"batch fixed at {lo} by the artifact: no Triton batching")
    if lo > 1:
        raise TritonConfigError(
            f"{artifact}: its profile's minimum batch is {lo}, but Triton sends batches of any "
            f"size from 1; re-export with a batch range starting at 1"
        )
    limit = max_batch_size or hi or DEFAULT_MAX_BATCH
    if hi is not None and limit > hi:
        raise TritonConfigError(
            f"{artifact}: --max-batch-size {limit} exceeds the batch range {lo}..{hi} the artifact "
            f"was built for (Triton would fail every larger batch with 'dim 0 between {lo} and "
            f"{hi}'); use --max-batch-size {hi} or less, or rebuild with a larger batch profile"
        )
    source = f"profile {lo}..{hi}" if hi else f"no upper bound recorded, default {limit}"
    return Batching(limit, dynamic_batching is not False, f"max_batch_size {limit} ({source})")


def _graph_tensors(spec: TensorSpec, batched: bool) -> TritonTensor:
    shape = spec.shape[1:] if batched else spec.shape
    return TritonTensor(spec.name, triton_dtype(spec), _dims(shape))


def native_config(
    name: str,
    backend: str,
    meta: ModelMeta,
    batching: Batching,
    *,
    instance_count: int = 1,
    cc_model_filenames: dict[str, str] | None = None,
) -> TritonModelConfig:
    """The config of a model that Triton runs itself (onnxruntime or tensorrt backend)."""
    batched = batching.max_batch_size > 0
    dla = (meta.engine or {}).get("dla_core") if backend == "tensorrt" else None
    return TritonModelConfig(
        name=name,
        backend=backend,
        max_batch_size=batching.max_batch_size,
        inputs=(_graph_tensors(meta.input, batched),),
        outputs=(_graph_tensors(meta.output, batched),),
        dynamic_batching=batching.dynamic_batching,
        # An engine needs a GPU; ONNX Runtime runs where Triton finds one, else on CPU.
        instance_kind="KIND_GPU" if backend == "tensorrt" else "KIND_AUTO",
        instance_count=instance_count,
        cc_model_filenames=dict(cc_model_filenames or {}),
        dla_core=None if dla is None else int(dla),
        notes=(f"Generated by scaseg from the artifact sidecar: {batching.note}.",),
    )


def python_config(
    name: str,
    meta: ModelMeta,
    artifact_name: str,
    *,
    max_batch_size: int | None,
    dynamic_batching: bool | None,
    instance_count: int = 1,
    openvino_device: str | None = None,
) -> TritonModelConfig:
    """The Python-backend model: (N,H,W,3) uint8 BGR frames of any size -> (N,H,W) labels.

    `openvino_device` (CPU, GPU, NPU, AUTO) serves an .onnx through OpenVINO on that device
    instead of ONNX Runtime; None leaves the config as it always was."""
    label_type = "TYPE_UINT8" if meta.num_classes <= 256 else "TYPE_INT32"
    engine = backend_kind(artifact_name) == "tensorrt"
    parameters = {"artifact": artifact_name, "provider": "auto"}
    if openvino_device is not None:
        if engine:
            raise TritonConfigError(
                f"{artifact_name} is a TensorRT engine; OpenVINO serves .onnx models"
            )
        parameters.update(backend="openvino", ov_device=openvino_device, ov_precision="auto")
    return TritonModelConfig(
        name=name,
        backend="python",
        # model.py splits and pads Triton's batch into what the artifact accepts, so the limit
        # here is the server's choice, not the artifact's.
        max_batch_size=max_batch_size or DEFAULT_MAX_BATCH,
        inputs=(TritonTensor(PYTHON_INPUT, "TYPE_UINT8", (-1, -1, 3)),),
        outputs=(TritonTensor(PYTHON_OUTPUT, label_type, (-1, -1)),),
        dynamic_batching=dynamic_batching is not False,
        # OpenVINO picks its own device (ov_device); Triton's GPU instances are CUDA ones.
        instance_kind="KIND_GPU" if engine else "KIND_CPU" if openvino_device else "KIND_AUTO",
        instance_count=instance_count,
        parameters=parameters,
        notes=(
            "Generated by scaseg: serves the artifact through scaseg's runtime (model.py).",
            "Input: BGR uint8 frames (N,H,W,3), any H,W; requests batch together only at equal H,W.",
            f"Output: class ids (N,H,W) at each frame's size; {meta.num_classes} classes.",
        ),
    )
