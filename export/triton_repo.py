"""A Triton Inference Server model repository generated from artifacts and their sidecars.

Hand-written Triton configs are where scale-out breaks: a `max_batch_size` of 8 on an engine whose
profile stops at batch 1 loads, then fails every batched request ("dim 0 between 1 and 1"). Here
every dim, dtype and batch limit comes from the sidecar, and anything Triton cannot serve as
asked is refused at export time with the fix.

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

Config text is written directly (no protobuf dependency at export time); the tests parse every
generated file with Triton's own schema (tritonclient's model_config_pb2).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runtime.backends import backend_kind
from runtime.meta import ModelMeta, TensorSpec, read_meta

TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "uint8": "TYPE_UINT8",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
}
# Batch limit for graphs whose batch dim has no recorded upper bound (dynamic ONNX, no profile).
DEFAULT_MAX_BATCH = 8
# How long the dynamic batcher holds the first request waiting for others: 2 ms is well under one
# frame at 30 fps, and enough for concurrent clients to meet in one batch.
MAX_QUEUE_DELAY_US = 2000
PYTHON_INPUT = "image"  # (N,H,W,3) uint8 BGR, any H,W: the Segmenter contract
PYTHON_OUTPUT = "labels"  # (N,H,W) class ids at the frame's size
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class TritonConfigError(ValueError):
    """The artifacts cannot be served by Triton as asked; the message says how to fix it."""


class TritonBatchingWarning(UserWarning):
    """A native model cannot batch as asked; the Python-backend model beside it does."""


@dataclass(frozen=True)
class TritonTensor:
    name: str
    data_type: str  # TYPE_FP32, ...
    dims: tuple[int, ...]  # without the batch dim when max_batch_size > 0; -1 = any size


@dataclass(frozen=True)
class TritonModelConfig:
    """The subset of Triton's ModelConfig we generate; `to_pbtxt` renders the text format."""

    name: str
    backend: str  # python | onnxruntime | tensorrt
    max_batch_size: int  # 0 = the model takes no batch dim of Triton's (dims are the full shape)
    inputs: tuple[TritonTensor, ...]
    outputs: tuple[TritonTensor, ...]
    dynamic_batching: bool
    instance_kind: str = "KIND_AUTO"
    instance_count: int = 1
    cc_model_filenames: dict[str, str] = field(default_factory=dict)
    dla_core: int | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # written as comments at the top

    def to_pbtxt(self) -> str:
        lines = [f"# {note}" for note in self.notes]
        lines += [f"name: {_q(self.name)}", f"backend: {_q(self.backend)}"]
        lines.append(f"max_batch_size: {self.max_batch_size}")
        lines += _tensors("input", self.inputs) + _tensors("output", self.outputs)
        if self.dynamic_batching:
            lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}"]
            lines.append("}")
        group = [f"    count: {self.instance_count}", f"    kind: {self.instance_kind}"]
        if self.dla_core is not None:
            group += [
                "    secondary_devices [",
                f"      {{ kind: KIND_NVDLA device_id: {self.dla_core} }}",
                "    ]",
            ]
        lines += ["instance_group [", "  {", *group, "  }", "]"]
        for cc, filename in sorted(self.cc_model_filenames.items()):
            lines.append(f"cc_model_filenames {{ key: {_q(cc)} value: {_q(filename)} }}")
        for key, value in self.parameters.items():
            lines.append(f"parameters {{ key: {_q(key)} value {{ string_value: {_q(value)} }} }}")
        return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensors(kind: str, tensors: Sequence[TritonTensor]) -> list[str]:
    lines = [f"{kind} ["]
    for i, t in enumerate(tensors):
        dims = ", ".join(str(d) for d in t.dims)
        lines += ["  {", f"    name: {_q(t.name)}", f"    data_type: {t.data_type}"]
        lines += [f"    dims: [ {dims} ]", "  }" + ("," if i < len(tensors) - 1 else "")]
    return [*lines, "]"]


# ---------------------------------------------------------------------------------------------
# Shapes and batching, from the sidecar


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
) -> TritonModelConfig:
    """The Python-backend model: (N,H,W,3) uint8 BGR frames of any size -> (N,H,W) labels."""
    label_type = "TYPE_UINT8" if meta.num_classes <= 256 else "TYPE_INT32"
    engine = backend_kind(artifact_name) == "tensorrt"
    return TritonModelConfig(
        name=name,
        backend="python",
        # model.py splits and pads Triton's batch into what the artifact accepts, so the limit
        # here is the server's choice, not the artifact's.
        max_batch_size=max_batch_size or DEFAULT_MAX_BATCH,
        inputs=(TritonTensor(PYTHON_INPUT, "TYPE_UINT8", (-1, -1, 3)),),
        outputs=(TritonTensor(PYTHON_OUTPUT, label_type, (-1, -1)),),
        dynamic_batching=dynamic_batching is not False,
        instance_kind="KIND_GPU" if engine else "KIND_AUTO",
        instance_count=instance_count,
        parameters={"artifact": artifact_name, "provider": "auto"},
        notes=(
            "Generated by scaseg: serves the artifact through scaseg's runtime (model.py).",
            "Input: BGR uint8 frames (N,H,W,3), any H,W; requests batch together only at equal H,W.",
            f"Output: class ids (N,H,W) at each frame's size; {meta.num_classes} classes.",
        ),
    )


# ---------------------------------------------------------------------------------------------
# Writing the repository


@dataclass(frozen=True)
class _Artifact:
    path: Path
    meta: ModelMeta
    kind: str  # onnxruntime | tensorrt


def _load(artifacts: Sequence[str | os.PathLike]) -> list[_Artifact]:
    if not artifacts:
        raise TritonConfigError("no artifacts given; pass the .onnx or .engine files to serve")
    loaded = []
    for a in artifacts:
        path = Path(a)
        if not path.is_file():
            raise FileNotFoundError(f"artifact {path} not found; build it with scaseg-export first")
        loaded.append(_Artifact(path, read_meta(path), backend_kind(path)))
    onnx = [a for a in loaded if a.kind == "onnxruntime"]
    if len(onnx) > 1:
        names = ", ".join(a.path.name for a in onnx)
        raise TritonConfigError(
            f"several ONNX artifacts given ({names}); write one repository model per ONNX "
            "(call again with --model-name) so each keeps its own config"
        )
    return loaded


def _engine_files(engines: list[_Artifact]) -> tuple[dict[str, Path], dict[str, str]]:
    """{file name in the version folder: source} and cc_model_filenames for the engines."""
    if len(engines) == 1:
        return {"model.plan": engines[0].path}, {}
    files, ccs = {}, {}
    for e in engines:
        cc = str((e.meta.engine or {}).get("compute_capability") or "")
        if not re.fullmatch(r"\d+\.\d+", cc):
            raise TritonConfigError(
                f"{e.path.name}: its sidecar records no compute capability ({cc!r}), so Triton "
                "cannot pick it per GPU; rebuild it with scaseg-export on the target GPU"
            )
        if cc in ccs:
            raise TritonConfigError(
                f"two engines for compute capability {cc} ({ccs[cc]} and {e.path.name}); "
                "pass one engine per GPU type"
            )
        ccs[cc] = e.path.name
        files[f"model_sm{cc.replace('.', '')}.plan"] = e.path
    first = engines[0].meta
    for e in engines[1:]:
        if (e.meta.input, e.meta.output) != (first.input, first.output):
            raise TritonConfigError(
                f"{e.path.name} and {engines[0].path.name} have different inputs/outputs "
                "(shapes or profiles), but one Triton model serves them all; build every engine "
                "from the same ONNX with the same profile"
            )
    return files, {cc: f"model_sm{cc.replace('.', '')}.plan" for cc in ccs}


def default_model_name(artifact: Path, meta: ModelMeta) -> str:
    """`scaseg_t.int8.onnx` -> `scaseg_t_int8`."""
    stem = artifact.name.split(".")[0] or "scaseg"
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{stem}_{meta.precision}")


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
) -> Path:
    """Write Triton models for the artifacts into the repository `out_dir`; returns `out_dir`.

    Models: `<name>` (Python backend, through scaseg's runtime; serves the ONNX if one is given,
    else the single engine), `<name>_onnx` (onnxruntime backend) and `<name>_trt` (tensorrt
    backend; one plan per compute capability). `dynamic_batching` None means "where the
    artifact's batch dim allows it". Existing model folders are replaced only with `force`;
    other models in `out_dir` are left alone.
    """
    loaded = _load(artifacts)
    if max_batch_size is not None and max_batch_size < 1:
        raise TritonConfigError(f"--max-batch-size must be >= 1, got {max_batch_size}")
    if instance_count < 1:
        raise TritonConfigError(f"instance count must be >= 1, got {instance_count}")
    if not (python_backend or native):
        raise TritonConfigError("nothing to write: both the Python and the native models are off")
    onnx = next((a for a in loaded if a.kind == "onnxruntime"), None)
    engines = [a for a in loaded if a.kind == "tensorrt"]
    name = model_name or default_model_name(loaded[0].path, loaded[0].meta)
    if not _NAME_RE.match(name):
        raise TritonConfigError(f"model name {name!r} may use only letters, digits, _ . and -")
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
            )
        )
    if native:
        models += _plan_native(
            name, onnx, engines, max_batch_size, dynamic_batching, instance_count, python_backend
        )
    for m in models:
        if (out / m.config.name).exists() and not force:
            raise FileExistsError(
                f"{out / m.config.name} already exists; pass --force to replace it"
            )
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
    onnx: _Artifact | None,
    engines: list[_Artifact],
    max_batch_size: int | None,
    dynamic_batching: bool | None,
    instance_count: int,
    bundle_runtime: bool,
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
    )
    files = {served.path.name: served.path, f"{served.path.name}.json": _sidecar(served.path)}
    return _PlannedModel(cfg, files, bundle_runtime)


def _plan_native(
    name: str,
    onnx: _Artifact | None,
    engines: list[_Artifact],
    max_batch_size: int | None,
    dynamic_batching: bool | None,
    instance_count: int,
    python_backend: bool,
) -> list[_PlannedModel]:
    planned = []
    if onnx is not None:
        batching = plan_batching(
            onnx.meta,
            max_batch_size,
            dynamic_batching,
            onnx.path.name,
            python_batches=python_backend,
        )
        cfg = native_config(
            f"{name}_onnx", "onnxruntime", onnx.meta, batching, instance_count=instance_count
        )
        planned.append(
            _PlannedModel(cfg, {"model.onnx": onnx.path, "model.onnx.json": _sidecar(onnx.path)})
        )
    if engines:
        files, ccs = _engine_files(engines)
        batching = plan_batching(
            engines[0].meta,
            max_batch_size,
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
        files.update({f"{plan}.json": _sidecar(src) for plan, src in files.items()})
        planned.append(_PlannedModel(cfg, files))
    return planned


def _sidecar(artifact: Path) -> Path:
    return Path(f"{artifact}.json")


def _copy_synced(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "rb") as f:
        os.fsync(f.fileno())


def _write_model(final: Path, cfg: TritonModelConfig, files: dict[str, Path], bundle: bool) -> None:
    """Build the model folder under a temp name, then rename it into place (never half-written)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
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
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; Triton may run as another user
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bundle_runtime(dst: Path) -> None:
    """Copy the `runtime` package that wrote this repository next to model.py.

    model.py puts it first on sys.path, so the served model reads its sidecar with the same
    schema and preprocessing that exported it, and the Triton image needs only numpy, OpenCV and
    onnxruntime (or TensorRT), not scaseg.
    """
    import runtime

    src = Path(runtime.__file__).resolve().parent
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
