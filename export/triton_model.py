"""Triton Python-backend model that serves a scaseg artifact through scaseg's own runtime.

`write_triton_repo` copies this file to `<model>/1/model.py`, next to the artifact, its sidecar
and (by default) the `runtime` package that wrote them. Contract (the `Segmenter` one, batched):

    input  "image":  (N,H,W,3) uint8 BGR frames, any H,W (resized to the model size here)
    output "labels": (N,H,W) class ids at each frame's own size (uint8; int32 past 256 classes)

Preprocessing and postprocessing are runtime.preprocess's, through `runtime.Segmenter`, so a
served label map is the one local inference gives. Triton's batch is split (and padded where the
artifact's batch dim is fixed or has a minimum) into what the artifact accepts: frames whose
model inputs have the same shape share a call. Sidecars with slide inference run one frame per
call (its windows are that call's batch, runtime/slide.py); keep-ratio frames in whole mode are
padded per frame size, so only frames of one size share a call.

config.pbtxt parameters: `artifact` (file name in this folder), `provider` (auto | cpu | cuda |
tensorrt, ONNX only; `auto` on a CPU instance means cpu), `intra_op_threads` (optional), and for
serving an .onnx through OpenVINO on Intel CPUs: `backend` (onnxruntime, the default, or
openvino), `ov_device` (CPU, GPU, NPU, AUTO; default CPU) and `ov_precision` (auto | f32 | bf16 |
f16; default auto). OpenVINO needs `pip install 'scaseg[openvino]'` in the Triton image.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
if (_HERE / "runtime" / "__init__.py").is_file() and sys.path[0] != str(_HERE):
    # The bundled runtime goes ahead of any installed scaseg: it is the version that wrote the
    # sidecar. (The Python backend appends this folder after site-packages by itself.)
    sys.path.insert(0, str(_HERE))

from runtime.backends import BackendOptions, backend_kind, open_backend  # noqa: E402
from runtime.errors import UserInputError  # noqa: E402
from runtime.segmenter import Segmenter  # noqa: E402

INPUT_NAME = "image"
OUTPUT_NAME = "labels"


def artifact_batch_range(shape: tuple, profile: tuple | None) -> tuple[int, int | None]:
    """(min, max) batch of the artifact's input; max None = unbounded."""
    if isinstance(shape[0], int):
        return shape[0], shape[0]
    if profile:
        return int(profile[0][0]), int(profile[2][0])
    return 1, None


class FrameServer:
    """Frames of any size in, label maps at their size out, in batches the artifact accepts."""

    def __init__(self, segmenter: Segmenter):
        self.segmenter = segmenter
        spec = segmenter.meta.input
        self.batch_min, self.batch_max = artifact_batch_range(spec.shape, spec.profile)

    def segment(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        seg = self.segmenter
        if seg.meta.inference.slide:
            # All windows of a frame are one call; frame by frame, so only one frame's windows
            # are held at a time.
            return [seg.postprocess(self._infer(seg.prepare(f)), f.shape[:2]) for f in frames]
        inputs = [seg.prepare(f) for f in frames]  # each (1,3,h,w) float32 or (1,h,w,3) uint8
        outputs: list[np.ndarray] = []
        for run in _same_shape_runs(inputs, self.batch_max):
            out = self._infer(np.concatenate(run))
            outputs += [out[i : i + 1] for i in range(len(run))]
        return [seg.postprocess(o, f.shape[:2]) for o, f in zip(outputs, frames)]

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """Run `batch`; a fixed batch (or a profile minimum) above its size is padded with
        copies of its last entry, and their outputs dropped."""
        n = len(batch)
        if n < self.batch_min:
            batch = np.concatenate([batch, np.repeat(batch[-1:], self.batch_min - n, axis=0)])
        return self.segmenter.infer(batch)[:n]

    def close(self) -> None:
        self.segmenter.close()


def _same_shape_runs(inputs: list[np.ndarray], limit: int | None) -> list[list[np.ndarray]]:
    """Consecutive inputs of one shape, at most `limit` per run (None: no limit), in order."""
    runs: list[list[np.ndarray]] = []
    for x in inputs:
        last = runs[-1] if runs else None
        if last and last[0].shape == x.shape and (limit is None or len(last) < limit):
            last.append(x)
        else:
            runs.append([x])
    return runs


SERVE_BACKENDS = ("onnxruntime", "openvino")


def serve_backend(params: dict[str, str], artifact: Path) -> str:
    """The runtime backend kind: TensorRT for engines; for .onnx the `backend` parameter."""
    if backend_kind(artifact) == "tensorrt":
        return "tensorrt"
    kind = params.get("backend") or "onnxruntime"
    if kind not in SERVE_BACKENDS:
        raise UserInputError(
            f"config.pbtxt parameter backend {kind!r} is not one of {SERVE_BACKENDS}; fix it"
        )
    return kind


def backend_options(params: dict[str, str], artifact: Path, instance_kind: str, device: int):
    threads = params.get("intra_op_threads")
    threads = int(threads) if threads else None
    if serve_backend(params, artifact) == "openvino":
        return BackendOptions(
            device=params.get("ov_device") or "CPU",
            ov_precision=params.get("ov_precision") or "auto",
            intra_op_threads=threads,
        )
    provider = params.get("provider", "auto")
    if backend_kind(artifact) == "tensorrt":
        provider = "auto"  # engines run on TensorRT; `provider` is an ONNX Runtime setting
    elif instance_kind == "CPU" and provider == "auto":
        provider = "cpu"  # a CPU instance must not quietly take a GPU
    return BackendOptions(provider=provider, device=device, intra_op_threads=threads)


class TritonPythonModel:
    """The entry points Triton's Python backend calls."""

    def initialize(self, args: dict) -> None:
        # Imported here, not at the top: the module exists only inside Triton's stub process.
        self._pb = importlib.import_module("triton_python_backend_utils")
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        if not params.get("artifact"):
            raise UserInputError(
                f"{config.get('name')}: config.pbtxt has no 'artifact' parameter naming the model "
                "file in the version folder; regenerate the repository with scaseg-export"
            )
        artifact = _HERE / params["artifact"]
        kind = str(args.get("model_instance_kind", "CPU")).upper()
        device = int(args.get("model_instance_device_id") or 0)
        options = backend_options(params, artifact, kind, device)
        backend = open_backend(artifact, serve_backend(params, artifact), options)
        self.server = FrameServer(Segmenter(backend))
        self._pb.Logger.log_info(
            f"scaseg: serving {artifact.name} with {self.server.segmenter.description}"
        )

    def execute(self, requests: list) -> list:
        pb = self._pb
        frames: list[np.ndarray] = []
        counts: list[int] = []
        try:
            for request in requests:
                batch = pb.get_input_tensor_by_name(request, INPUT_NAME).as_numpy()
                frames += list(batch)  # (n,H,W,3) -> n frames
                counts.append(len(batch))
            labels = self.server.segment(frames)
        except Exception as err:  # every request gets the reason rather than a dead server
            error = pb.TritonError(f"scaseg: {type(err).__name__}: {err}")
            return [pb.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        responses, start = [], 0
        for n in counts:
            out = np.stack(labels[start : start + n])  # (n,H,W)
            responses.append(pb.InferenceResponse(output_tensors=[pb.Tensor(OUTPUT_NAME, out)]))
            start += n
        return responses

    def finalize(self) -> None:
        self.server.close()
