"""The checkpoint side of an export: load it, check its classes, and describe it in a sidecar."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime
import torch

from export.onnx_export import OPSET, GraphIO
from export.request import DEMO_CHECKPOINT, ExportInputError, ExportRequest
from runtime.classes import palette_bgr, resolve_class_spec
from runtime.meta import ModelMeta, sha256_file
from runtime.preprocess import Preprocess
from scaseg.checkpoint import CheckpointError, load_model


def checkpoint_path(request: ExportRequest) -> Path:
    if request.checkpoint is not None:
        return Path(request.checkpoint)
    if not DEMO_CHECKPOINT.is_file():
        raise ExportInputError(
            f"the bundled demo model {DEMO_CHECKPOINT} is missing (not trained or not installed); "
            "pass --checkpoint PATH"
        )
    return DEMO_CHECKPOINT


def load(request: ExportRequest) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, info with checkpoint path and sha256, class names, palette and their
    source); bad files or contradicting flags -> ExportInputError."""
    path = checkpoint_path(request)
    try:
        model, info = load_model(
            path, variant=request.variant, allow_random_decoder=request.allow_random_decoder
        )
    except CheckpointError as err:
        raise ExportInputError(str(err)) from err
    k = int(model.num_classes)
    if request.num_classes is not None and request.num_classes != k:
        raise ExportInputError(
            f"{path} has {k} classes but --num-classes {request.num_classes} was given; "
            f"drop --num-classes or export the checkpoint trained for {request.num_classes} classes"
        )
    info = dict(info, checkpoint=str(path), checkpoint_sha256=sha256_file(path))
    info["is_demo"] = path.resolve() == DEMO_CHECKPOINT.resolve()
    names, colours, source, warnings = resolve_classes(request.classes, info, k, path)
    info.update(class_names=names, palette_rgb=colours, class_source=source)
    info["class_warnings"] = warnings
    return model, info


def resolve_classes(
    spec: str | None, info: dict, k: int, path: Path
) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...], str, list[str]]:
    """Class names and palette: --classes, then the checkpoint's metadata, then class_<i>.

    Returns (names, palette RGB, where the names came from, warnings). The demo's names are only
    ever those of the bundled demo checkpoint's own metadata, never a fallback for another model.
    """
    warnings = []
    palette_given = None
    problems = info.get("metadata_problems") or {}
    if spec is None and problems:
        # Names or colours the file carries but that cannot be used: guessing others would
        # deploy a model whose labels mean something else than its author said.
        raise ExportInputError(
            f"{path.name}: {next(iter(problems.values()))}; pass --classes (a preset such as "
            "cityscapes, or a .json/.txt class file with names and colours) to give them, or "
            "re-save the checkpoint with correct dataset_meta"
        )
    if spec is not None:
        try:
            names, palette_given, source = resolve_class_spec(spec)
        except ValueError as err:
            raise ExportInputError(f"--classes: {err}") from err
        if len(names) != k:
            raise ExportInputError(
                f"--classes {spec} lists {len(names)} classes but {path.name}'s classifier has "
                f"{k} outputs; pass a class list with {k} names"
            )
        source = f"--classes {source}"
    elif info.get("class_names"):
        names = tuple(str(n) for n in info["class_names"])
        if len(names) != k:
            raise ExportInputError(
                f"{path} lists {len(names)} class names but its classifier has {k} outputs; "
                "the checkpoint metadata is inconsistent: pass --classes with the right list"
            )
        source = "checkpoint metadata"
    else:
        names = tuple(f"class_{i}" for i in range(k))
        source = "numbered (no names given)"
        warnings.append(
            f"{path.name} names no classes: the sidecars call them class_0..class_{k - 1}; pass "
            "--classes (cityscapes, ade20k, voc, or a .json/.txt file) to name them"
        )
    colours = palette_given
    if colours is None and spec is None:
        colours = _checkpoint_palette(info, k, warnings, path)
    if colours is None:
        table = palette_bgr((), k)[:, ::-1]  # deterministic colours, BGR -> RGB
        colours = tuple(tuple(int(v) for v in row) for row in table[:k])
    return names, tuple(tuple(int(v) for v in c) for c in colours), source, warnings


def _checkpoint_palette(info: dict, k: int, warnings: list[str], path: Path):
    given = info.get("palette_rgb")
    if not given:
        return None
    if len(given) != k or any(len(c) != 3 for c in given):
        warnings.append(
            f"{path.name}'s palette has {len(given)} entries for {k} classes; generated colours "
            "are used instead"
        )
        return None
    return given


def preprocess_for(request: ExportRequest, info: dict) -> tuple[Preprocess, str, list[str]]:
    """The export's input contract; see resolve_preprocess."""
    flags = {"color": request.color, "mean": request.mean, "std": request.std}
    return resolve_preprocess(request.height, request.width, flags, info)


def resolve_preprocess(
    height: int, width: int, flags: dict, info: dict
) -> tuple[Preprocess, str, list[str]]:
    """Each of colour order, mean and std from its flag (None: not given), else from the
    checkpoint (its training config, or our safetensors' record), else mmseg's defaults
    (ImageNet mean/std, RGB). Returns (preprocess, where each came from, warnings)."""
    stored = info.get("preprocess") or {}
    fields, sources = {}, {}
    for key, flag in flags.items():
        if flag is not None:
            fields[key], where = flag, "flags"
        elif key in stored:
            fields[key], where = stored[key], info.get("preprocess_from", "checkpoint")
        else:
            where = "mmseg's defaults"
        sources.setdefault(where, []).append(key)
    try:
        pp = Preprocess(
            height,
            width,
            color=str(fields.get("color", "rgb")),
            **{k: tuple(float(v) for v in fields[k]) for k in ("mean", "std") if k in fields},
        )
    except (ValueError, TypeError) as err:
        raise ExportInputError(f"preprocessing: {err}; pass --mean/--std/--rgb/--bgr") from err
    warnings = []
    guessed = [k for k in flags if flags[k] is None and k not in stored]
    if guessed and not info.get("is_demo"):
        warnings.append(
            f"{Path(info['checkpoint']).name} does not record its input normalisation "
            f"({', '.join(guessed)}): assumed mmseg's defaults (ImageNet mean/std, RGB); pass "
            "--mean/--std/--rgb/--bgr if it was trained otherwise"
        )
    return pp, "; ".join(f"{', '.join(k)} from {w}" for w, k in sources.items()), warnings


def default_name(request: ExportRequest, info: dict) -> str:
    """The checkpoint's stem (the bundled model: scaseg_t_demo, the name the runtime and the
    docs use), else scaseg_<variant>."""
    return Path(info["checkpoint"]).name.split(".")[0] or f"scaseg_{info['variant']}"


def class_names(info: dict) -> tuple[str, ...]:
    return tuple(info["class_names"])


def palette(info: dict) -> tuple[tuple[int, int, int], ...]:
    return tuple(info["palette_rgb"])


def base_meta(info: dict, io_spec: GraphIO, pp: Preprocess, request: ExportRequest) -> ModelMeta:
    return ModelMeta(
        variant=str(info["variant"]),
        precision="fp32",
        class_names=class_names(info),
        palette_rgb=palette(info),
        input=io_spec.input,
        output=io_spec.output,
        output_kind=io_spec.output_kind,
        output_stride=io_spec.output_stride,
        preprocess=pp,
        fused_preprocess=request.fuse_preprocess,
        fused_argmax=request.fuse_argmax,
        hashes={"checkpoint": info["checkpoint_sha256"]},
        extra={
            "checkpoint": Path(info["checkpoint"]).name,
            "checkpoint_format": info.get("format"),
            "variant_source": info.get("variant_source"),
            "remapped_keys": [list(r) for r in info.get("remapped") or ()],
            "random_decoder": bool(info.get("random_decoder")),
            "class_source": info.get("class_source"),
            "preprocess_source": info.get("preprocess_source"),
            "opset": OPSET,
            "exporter": f"torch {torch.__version__} torch.onnx.export(dynamo=False)",
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    )
