"""A Triton Inference Server model repository generated from artifacts and their sidecars.

    repo/
      <name>/               Python backend, the Segmenter contract (any frame size in, labels out)
        config.pbtxt
        1/model.py          export/triton_model.py
        1/<artifact>        + its sidecar, + runtime/ (the package that wrote it)
      <name>_onnx/          onnxruntime backend, the artifact's own graph contract
        config.pbtxt
        1/model.onnx        + model.onnx.json (the sidecar; Triton ignores it)
      <name>_trt/           tensorrt backend; one plan per GPU with cc_model_filenames
        config.pbtxt
        1/model.plan | 1/model_sm87.plan, 1/model_sm89.plan, ...

Every model is planned, and anything Triton cannot serve as asked refused, before anything is
written. Configs come from the sidecars (export/triton_config.py) and are rendered as config.pbtxt
(export/triton_pbtxt.py); the artifacts are loaded and checked in export/triton_artifacts.py.

Artifacts whose sidecars ask for slide inference or keep-ratio resizing take whole frames in the
Python model (model.py runs them through Segmenter: one frame's windows per call). Their native
models keep the graph's own contract, crop-sized windows or padded keep-ratio images, as their
config.pbtxt notes say; a slide model's native batch is the profile's window range, since
max_batch_size counts frames for the Python model beside it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from export.artifacts import PLAIN_NAME
from export.triton_artifacts import (
    ServedArtifact,
    default_model_name,
    engine_files,
    load_artifacts,
)
from export.triton_config import TritonConfigError, native_config, plan_batching, python_config
from export.triton_pbtxt import TritonModelConfig
from runtime.errors import UnsafePathError
from runtime.io.output_folder import MARKER, check_refillable, write_marker
from runtime.meta import ModelMeta, sidecar_path
from runtime.text import shown


def write_triton_repo(
    artifacts: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    model_name: str | None = None,
    max_batch_size: int | None = None,
    python_backend: bool = True,
    native: bool = True,
    instance_count: int = 1,
    dynamic_batching: bool | None = None,
    bundle_runtime: bool = True,
    force: bool = False,
    openvino_device: str | None = None,
) -> Path:
    """Write Triton models for the artifacts into the repository `out_dir`; returns `out_dir`.

    Models: `<name>` (Python backend, through scaseg's runtime; serves the ONNX if one is given,
    else the single engine), `<name>_onnx` (onnxruntime backend) and `<name>_trt` (tensorrt
    backend; one plan per compute capability). `dynamic_batching` None means "where the
    artifact's batch dim allows it". `openvino_device` (CPU, GPU, NPU, AUTO) has the Python model
    serve the ONNX through OpenVINO on that device. Existing model folders are replaced only with
    `force`; other models in `out_dir` are left alone.
    """
    loaded = load_artifacts(artifacts)
    if max_batch_size is not None and max_batch_size < 1:
        raise TritonConfigError(f"--max-batch-size must be >= 1, got {max_batch_size}")
    if instance_count < 1:
        raise TritonConfigError(f"instance count must be >= 1, got {instance_count}")
    if not (python_backend or native):
        raise TritonConfigError("nothing to write: both the Python and the native models are off")
    onnx = next((a for a in loaded if a.kind == "onnxruntime"), None)
    engines = [a for a in loaded if a.kind == "tensorrt"]
    name = model_name or default_model_name(loaded[0].path, loaded[0].meta)
    if not PLAIN_NAME.match(name):
        raise TritonConfigError(
            f"model name {name!r} may use only letters, digits, _ . and -, and must start "
            "with a letter or digit"
        )
    out = Path(out_dir)

    # Everything is planned (and refused) before anything is written.
    models: list[_PlannedModel] = []
    if python_backend:
        models.append(
            _plan_python(
                name,
                onnx,
                engines,
                max_batch_size,
                dynamic_batching,
                instance_count,
                bundle_runtime,
                openvino_device,
            )
        )
    if native:
        models += _plan_native(
            name, onnx, engines, max_batch_size, dynamic_batching, instance_count, python_backend
        )
    for m in models:
        _check_replaceable(out / m.config.name, loaded, force)
    out.mkdir(parents=True, exist_ok=True)
    for m in models:
        _write_model(out / m.config.name, m.config, m.files, m.bundle_runtime)
    return out


@dataclass(frozen=True)
class _PlannedModel:
    config: TritonModelConfig
    files: dict[str, Path]  # name in the version folder -> source
    bundle_runtime: bool = False


def _plan_python(
    name: str,
    onnx: ServedArtifact | None,
    engines: list[ServedArtifact],
    max_batch_size: int | None,
    dynamic_batching: bool | None,
    instance_count: int,
    bundle_runtime: bool,
    openvino_device: str | None = None,
) -> _PlannedModel:
    served = onnx or (engines[0] if len(engines) == 1 else None)
    if served is None:
        raise TritonConfigError(
            f"the Python-backend model serves one artifact, but {len(engines)} engines and "
            "no ONNX were given; pass the ONNX too (it serves CPU and GPU alike), or turn "
            "the Python model off"
        )
    cfg = python_config(
        name,
        served.meta,
        served.path.name,
        max_batch_size=max_batch_size,
        dynamic_batching=dynamic_batching,
        instance_count=instance_count,
        openvino_device=openvino_device,
    )
    files = {served.path.name: served.path, f"{served.path.name}.json": sidecar_path(served.path)}
    return _PlannedModel(cfg, files, bundle_runtime)


def _plan_native(
    name: str,
    onnx: ServedArtifact | None,
    engines: list[ServedArtifact],
    max_batch_size: int | None,
    dynamic_batching: bool | None,
    instance_count: int,
    python_backend: bool,
) -> list[_PlannedModel]:
    planned = []
    if onnx is not None:
        batching = plan_batching(
            onnx.meta,
            _native_max_batch(onnx.meta, max_batch_size, python_backend),
            dynamic_batching,
            onnx.path.name,
            python_batches=python_backend,
        )
        cfg = native_config(
            f"{name}_onnx", "onnxruntime", onnx.meta, batching, instance_count=instance_count
        )
        planned.append(
            _PlannedModel(
                _with_frame_notes(cfg, onnx.meta, name, python_backend),
                {"model.onnx": onnx.path, "model.onnx.json": sidecar_path(onnx.path)},
            )
        )
    if engines:
        files, ccs = engine_files(engines)
        batching = plan_batching(
            engines[0].meta,
            _native_max_batch(engines[0].meta, max_batch_size, python_backend),
            dynamic_batching,
            "the engines",
            python_batches=python_backend,
        )
        cfg = native_config(
            f"{name}_trt",
            "tensorrt",
            engines[0].meta,
            batching,
            instance_count=instance_count,
            cc_model_filenames=ccs,
        )
        files.update({f"{plan}.json": sidecar_path(src) for plan, src in files.items()})
        planned.append(
            _PlannedModel(_with_frame_notes(cfg, engines[0].meta, name, python_backend), files)
        )
    return planned


def _native_max_batch(
    meta: ModelMeta, max_batch_size: int | None, python_backend: bool
) -> int | None:
    """A slide graph's batch is one frame's windows, so beside the Python model (whose
    max_batch_size counts frames) it keeps its profile's window range."""
    if meta.inference.slide and python_backend:
        return None
    return max_batch_size


def _with_frame_notes(
    cfg: TritonModelConfig, meta: ModelMeta, name: str, python_backend: bool
) -> TritonModelConfig:
    """Notes for a native model whose input is not a frame: slide windows, keep-ratio images."""
    if python_backend:
        where = f"send frames to the {name!r} model, which does this"
    else:
        where = "runtime.Segmenter does this (prepare / postprocess)"
    if meta.inference.slide:
        note = (
            f"Slide inference ({meta.inference.describe()}): the batch is one frame's crop-sized "
            "windows of the keep-ratio resized frame, not frames; their logits are averaged "
            f"per pixel (runtime/slide.py); {where}."
        )
    elif meta.preprocess.resize == "keep_ratio":
        note = (
            f"Keep-ratio resize to {meta.preprocess.scale}: each input is one frame resized "
            f"keeping its aspect ratio and padded to a multiple of 32; {where}."
        )
    else:
        return cfg
    return replace(cfg, notes=(*cfg.notes, note))


def _copy_synced(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "rb") as f:
        os.fsync(f.fileno())


# What scaseg writes in a model folder; anything else a user put there is carried over.
MODEL_ENTRIES = ("config.pbtxt", "1", MARKER)


def _check_replaceable(folder: Path, artifacts: list[ServedArtifact], force: bool) -> None:
    """An existing model folder is replaced only with `force`, only if scaseg wrote it (its
    marker), and never when it holds one of the artifacts being served."""
    check_refillable(folder, force, option="force")
    if not folder.is_dir():
        return
    real = os.path.realpath(folder)
    for artifact in artifacts:
        for path in (artifact.path, sidecar_path(artifact.path)):
            if os.path.realpath(path).startswith(real + os.sep):
                raise UnsafePathError(
                    f"Triton model folder {shown(folder)} holds the artifact {shown(path)} it "
                    "would serve, and replacing the folder would remove it; choose a Triton "
                    "repository outside the artifacts' folder"
                )


def _write_model(final: Path, cfg: TritonModelConfig, files: dict[str, Path], bundle: bool) -> None:
    """Build the model folder under a temp name, then rename it into place (never half-written).

    An old folder (scaseg's, see _check_replaceable) is swapped out first; then whatever a user
    added to it moves into the new one, and only its config.pbtxt, 1/ and marker are removed."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    old = None
    try:
        version = tmp / "1"
        version.mkdir()
        (tmp / "config.pbtxt").write_text(cfg.to_pbtxt(), encoding="utf-8")
        for name, src in files.items():
            _copy_synced(src, version / name)
        if cfg.backend == "python":
            template = Path(__file__).with_name("triton_model.py")
            _copy_synced(template, version / "model.py")
            if bundle:
                _bundle_runtime(version / "runtime")
        write_marker(tmp, "scaseg-export --triton-repo (a Triton model)")
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; Triton may run as another user
        if final.exists():
            # An empty folder of our own to swap into: rename() replaces an empty folder.
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
            os.replace(final, old)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the temp folder made above, if not renamed
    if old is not None:
        for entry in old.iterdir():
            if entry.name not in MODEL_ENTRIES:
                os.replace(entry, final / entry.name)
        shutil.rmtree(old)  # now only the old config.pbtxt, 1/ and marker


# What model.py imports from the runtime; the rest of the bundle is what these import in turn.
SERVED_MODEL_ENTRIES = ("runtime.backends", "runtime.segmenter")


def _bundle_runtime(dst: Path) -> None:
    """Copy the modules of the `runtime` package that the served model can import next to model.py.

    model.py puts them first on sys.path, so the served model reads its sidecar with the same
    schema and preprocessing that exported it, and the Triton image needs only numpy, OpenCV and
    onnxruntime (or TensorRT), not scaseg. Video sources and sinks, profiling and the CLIs are left
    out, as is the bundled demo model (runtime/models/): the bundle carries what serving imports.
    """
    import runtime
    from export.module_closure import module_closure

    root = Path(runtime.__file__).resolve().parent
    for rel in module_closure(root, SERVED_MODEL_ENTRIES):
        target = dst.parent / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_synced(root.parent / rel, target)
