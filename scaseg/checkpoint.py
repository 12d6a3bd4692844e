"""Checkpoint loading and saving: the entry points.

Formats (read in `scaseg/checkpoint_read.py`): our own safetensors files (weights + JSON metadata:
variant, classes, palette), plain state dicts, and mmsegmentation 0.x / mmengine (mmseg 1.x)
checkpoints, zip or legacy torch.save files alike. Pickles are read by `scaseg/safe_pickle.py`:
tensors and plain containers are rebuilt, anything else becomes an inert placeholder, and a
payload that names code-running globals is refused before anything runs. Key layouts (DataParallel,
bare ImageNet backbones, original SegNeXt names) are mapped in `scaseg/checkpoint_keys.py`; the
variant and class count are read from tensor shapes in `scaseg/checkpoint_shapes.py`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from runtime.atomic import default_file_mode
from runtime.budgets import check
from scaseg.checkpoint_keys import BACKBONE_MARKERS, KeyMapping, map_keys, normalise_keys
from scaseg.checkpoint_meta import reconcile_classes
from scaseg.checkpoint_read import read_checkpoint
from scaseg.checkpoint_shapes import infer_decoder_fields, infer_num_classes, resolve_variant
from scaseg.errors import CheckpointError
from scaseg.metadata_walk import name

__all__ = [
    "BACKBONE_MARKERS",
    "CLASSIFIER_KEYS",
    "CheckpointError",
    "LoadReport",
    "load_into",
    "load_model",
    "normalise_keys",
    "read_state_dict",
    "save_checkpoint",
]

CLASSIFIER_KEYS = ("decode_head.cls_seg.weight", "decode_head.cls_seg.bias")


@dataclass
class LoadReport:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, ckpt, model
    reinitialised: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # dropped on purpose (e.g. ImageNet head)
    remapped: list[tuple[str, int]] = field(default_factory=list)  # (rule, keys renamed)
    random_decoder: bool = False  # no SCASeg decoder weights: the decoder kept its random init

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def format(self, limit: int = 10) -> str:
        parts = []
        for title, keys in (("missing", self.missing), ("unexpected", self.unexpected)):
            if keys:
                shown = ", ".join(name(k) for k in keys[:limit]) + (
                    f", ... (+{len(keys) - limit})" if len(keys) > limit else ""
                )
                parts.append(f"{len(keys)} {title} key(s): {shown}")
        if self.mismatched:
            shown = "; ".join(
                f"{name(k)}: checkpoint {list(a)} vs model {list(b)}"
                for k, a, b in self.mismatched[:limit]
            )
            parts.append(f"{len(self.mismatched)} shape mismatch(es): {shown}")
        return " | ".join(parts) if parts else "all keys matched"


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, info) from any supported checkpoint, never executing code from it.

    Keys are as stored (not yet mapped); info holds "format", "container", "metadata_warnings"
    and, where the file has them, "class_names" and "palette_rgb"."""
    return read_checkpoint(path)


def load_into(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    strict: bool = True,
    reinit_classifier: bool = False,
) -> LoadReport:
    """Load state into model. Strict by default: any mismatch raises one readable report.

    Keys are mapped first (`map_keys`); a state without SCASeg decoder weights (a bare backbone,
    or another head's decode_head.*) loads the encoder only and sets report.random_decoder."""
    mapping = map_keys(state)
    state = mapping.state
    own = model.state_dict()
    report = LoadReport(
        ignored=mapping.ignored + mapping.foreign_decoder,
        remapped=mapping.remapped,
        random_decoder=not mapping.has_decoder,
    )
    backbone_only = all(k.startswith("backbone.") for k in state)
    if reinit_classifier and _classifier_differs(state, own):
        # The model's own (freshly initialised) classifier stays; only the old one is dropped.
        state = {k: v for k, v in state.items() if k not in CLASSIFIER_KEYS}
        report.reinitialised = list(CLASSIFIER_KEYS)
    usable = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            usable[key] = value.to(own[key].dtype)
    skip_missing = set(report.reinitialised)
    report.missing = [
        k
        for k in own
        if k not in state
        and k not in skip_missing
        and not k.endswith("num_batches_tracked")
        and not (backbone_only and not k.startswith("backbone."))
    ]
    if strict and not report.ok:
        hint = "; is it a checkpoint of another variant or model? Pass the matching checkpoint"
        if any(k in CLASSIFIER_KEYS for k, _, _ in report.mismatched):
            hint = "; the class count differs: pass reinit_classifier (--reinit-classifier) to start a new classifier"
        raise CheckpointError(f"checkpoint does not fit the model: {report.format()}{hint}")
    model.load_state_dict(usable, strict=False)
    return report


def _classifier_differs(state: dict, own: dict) -> bool:
    key = CLASSIFIER_KEYS[0]
    return key in state and tuple(state[key].shape) != tuple(own[key].shape)


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike, info: dict, dtype: torch.dtype | None = None
) -> Path:
    """Write weights + JSON info as safetensors, atomically. dtype=float16 halves the file."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[key] = value.contiguous()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"scaseg": json.dumps(info)})
        os.chmod(tmp, default_file_mode())  # mkstemp made the file 0600
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_model(
    path: str | os.PathLike,
    variant: str | None = None,
    num_classes: int | None = None,
    reinit_classifier: bool = False,
    allow_random_decoder: bool = False,
):
    """Build the model a checkpoint describes and load it. Returns (model, info).

    The variant comes from `variant`, else the file's metadata, else the tensor shapes; the class
    count from `num_classes`, else the classifier. Explicit arguments must agree with the file
    unless reinit_classifier is set. A checkpoint without SCASeg decoder weights is refused
    unless allow_random_decoder (for smoke tests only: its output is meaningless).

    info: the file's info (see read_state_dict) plus "variant", "variant_source" ("given",
    "checkpoint metadata", "inferred from tensor shapes"), "num_classes", "remapped"
    [(rule, count)], "ignored_keys" and "random_decoder".
    """
    from scaseg.config import variant_config
    from scaseg.model import SCASeg

    state, info = read_state_dict(path)
    mapping = map_keys(state)
    if not mapping.has_decoder and not allow_random_decoder:
        raise CheckpointError(_no_decoder_message(path, mapping))
    variant, source = resolve_variant(mapping.state, variant, info.get("variant"), path)
    variant = str(variant).lower().removeprefix("scaseg-")
    num_classes = _num_classes(path, mapping, info, num_classes, reinit_classifier)
    decoder = _decoder_fields(mapping, info, variant)
    try:
        cfg = variant_config(variant, num_classes, **decoder)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from err
    model = SCASeg(cfg)  # sizes from the file's metadata are bounded by the config's ranges
    try:
        report = load_into(model, state, strict=True, reinit_classifier=reinit_classifier)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from err
    info = dict(
        info,
        variant=variant,
        variant_source=source,
        num_classes=num_classes,
        remapped=report.remapped,
        ignored_keys=report.ignored,
        random_decoder=report.random_decoder,
    )
    if decoder:
        info["decoder"] = decoder
    return model.eval(), reconcile_classes(info, num_classes)


def _num_classes(path, mapping: KeyMapping, info: dict, requested, reinit: bool) -> int:
    shape_classes = infer_num_classes(mapping.state, {})
    if shape_classes is not None:
        check("classes", shape_classes, f"{path}: its classifier decode_head.cls_seg.weight")
    said = info.get("num_classes")  # our files say it; checked to be an int by the reader
    if said is not None and shape_classes is not None and said != shape_classes:
        raise CheckpointError(
            f"{path}: its metadata says {said} classes but its classifier has {shape_classes} "
            "outputs; the file was edited or damaged: re-save it with save_checkpoint"
        )
    file_classes = shape_classes or said
    if requested is None:  # else another head's classifier: it was trained on the same classes
        requested = file_classes or infer_num_classes({}, mapping.foreign_state)
    if requested is None and info.get("class_names"):
        requested = len(info["class_names"])
    if requested is None:
        raise CheckpointError(
            f"cannot tell the class count of {path}: it has no classifier; pass num_classes "
            "(--num-classes)"
        )
    if type(requested) is not int or requested < 1:
        raise CheckpointError(f"num_classes must be a whole number >= 1, got {requested!r}")
    check("classes", requested, f"{path}: the requested class count")
    if file_classes and requested != file_classes and not reinit:
        raise CheckpointError(
            f"{path} was trained for {file_classes} classes but {requested} were requested; "
            "pass --reinit-classifier to start a new classifier, or drop --num-classes"
        )
    return int(requested)


def _decoder_fields(mapping: KeyMapping, info: dict, variant: str) -> dict:
    from dataclasses import fields

    from scaseg.config import VARIANTS, DecoderConfig

    if "decoder" in info:  # our own files say how they were built
        known = {f.name for f in fields(DecoderConfig)}
        return {
            k: (tuple(v) if isinstance(v, list) else v)
            for k, v in info["decoder"].items()
            if k in known
        }
    if variant not in VARIANTS:
        return {}
    return infer_decoder_fields(mapping.state, variant)


def _no_decoder_message(path, mapping: KeyMapping) -> str:
    if mapping.foreign_decoder:
        found = (
            f"its {len(mapping.foreign_decoder)} decode_head keys belong to another head "
            f"(e.g. {mapping.foreign_decoder[0]}; a SegNeXt LightHamHead?)"
        )
    else:
        found = "it holds only MSCAN encoder weights (an ImageNet-pretrained backbone?)"
    return (
        f"{path} has no SCASeg decoder weights: {found}, so the decoder would be random and "
        "the segmentation meaningless. Pass the checkpoint of a trained SCASeg model, or "
        "allow_random_decoder=True (--allow-random-decoder) for smoke tests only"
    )
