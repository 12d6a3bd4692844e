"""Checkpoint loading and saving.

Formats: our own safetensors files (weights + JSON metadata: variant, classes, palette) and
mmsegmentation-style state dicts (`state_dict` / `backbone.` / `decode_head.` prefixes, or a bare
ImageNet MSCAN backbone). Pickle files are only ever read with `weights_only=True`, so a payload
that tries to run code is refused instead of executed.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

CLASSIFIER_KEYS = ("decode_head.cls_seg.weight", "decode_head.cls_seg.bias")
BACKBONE_MARKERS = ("patch_embed1.", "block1.", "norm1.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


@dataclass
class LoadReport:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, ckpt, model
    reinitialised: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # dropped on purpose (e.g. ImageNet head)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def format(self, limit: int = 10) -> str:
        parts = []
        for title, keys in (("missing", self.missing), ("unexpected", self.unexpected)):
            if keys:
                shown = ", ".join(keys[:limit]) + (
                    f", ... (+{len(keys) - limit})" if len(keys) > limit else ""
                )
                parts.append(f"{len(keys)} {title} key(s): {shown}")
        if self.mismatched:
            shown = "; ".join(
                f"{k}: checkpoint {list(a)} vs model {list(b)}"
                for k, a, b in self.mismatched[:limit]
            )
            parts.append(f"{len(self.mismatched)} shape mismatch(es): {shown}")
        return " | ".join(parts) if parts else "all keys matched"


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) from a .safetensors or a torch pickle checkpoint, never executing code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist; pass the path of a .safetensors or .pth file"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); re-download or re-save it")
    if _is_safetensors(path):
        return _read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses anything but tensors and plain containers: code-carrying pickles
        # ("Unsupported global") and non-checkpoint bytes alike end here, unexecuted.
        raise CheckpointError(
            f"refusing to load {path}: not a plain tensor checkpoint ({_unpickler_detail(err)}); "
            "only state dicts of tensors are read (weights_only=True). If it is yours, re-save it "
            "with torch.save(model.state_dict()) or as .safetensors"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {_first_line(err)}; is it a truncated or non-PyTorch file?"
        ) from err
    return _unwrap(obj, path), {}


def _unpickler_detail(err: BaseException) -> str:
    """The useful line of torch's long weights-only error ("Unsupported global: GLOBAL io.open...")."""
    for line in str(err).splitlines():
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            if rest:
                return rest.split(" was not an allowed global")[0]
        elif line.startswith(("Unsupported", "Unsupported operand")):
            return line.strip()
    return _first_line(err)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"  # 8-byte header length then JSON


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError, safe_open

    try:
        tensors = {}
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                tensors[key] = f.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot read safetensors file {path}: {_first_line(err)}; is it truncated or not a "
            "safetensors file? Re-download or re-save it"
        ) from err
    info = json.loads(meta["scaseg"]) if "scaseg" in meta else {}
    return tensors, info


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "module"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path} holds no state dict of tensors (found {type(obj).__name__}); "
            "expected a dict of tensors, optionally under 'state_dict'"
        )
    return obj


def normalise_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map mmseg/DataParallel/bare-backbone key layouts onto ours; returns (state, ignored keys)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    ignored = []
    prefixed = any(k.startswith(("backbone.", "decode_head.")) for k in state)
    if not prefixed and any(k.startswith(BACKBONE_MARKERS) for k in state):  # a bare MSCAN
        ignored = [k for k in state if k.startswith("head.")]
        state = {f"backbone.{k}": v for k, v in state.items() if not k.startswith("head.")}
    # mmseg segmentors may carry an auxiliary head, which we do not have.
    ignored += [k for k in state if k.startswith("auxiliary_head.")]
    state = {k: v for k, v in state.items() if not k.startswith("auxiliary_head.")}
    return state, ignored


def load_into(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    strict: bool = True,
    reinit_classifier: bool = False,
) -> LoadReport:
    """Load state into model. Strict by default: any mismatch raises one readable report."""
    state, ignored = normalise_keys(state)
    own = model.state_dict()
    report = LoadReport(ignored=ignored)
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
        mask = os.umask(0)  # mkstemp made the file 0600; give it the usual permissions
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
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
):
    """Build the model a checkpoint describes and load it. Returns (model, info).

    Our safetensors files name their variant and classes; for other checkpoints pass variant and
    num_classes. Explicit arguments must agree with the file unless reinit_classifier is set.
    """
    from dataclasses import fields

    from scaseg.config import DecoderConfig, variant_config
    from scaseg.model import SCASeg

    state, info = read_state_dict(path)
    variant = variant or info.get("variant")
    if variant is None:
        raise CheckpointError(
            f"{path} does not say which variant it is: pass variant= (tiny, t, s, b, l) to "
            "load_model, or re-save it with scaseg.checkpoint.save_checkpoint and its variant"
        )
    file_classes = info.get("num_classes")
    if num_classes is None:
        num_classes = file_classes or _infer_classes(state)
    if file_classes and num_classes != file_classes and not reinit_classifier:
        raise CheckpointError(
            f"{path} was trained for {file_classes} classes but {num_classes} were requested; "
            "pass --reinit-classifier to start a new classifier, or drop --num-classes"
        )
    known = {f.name for f in fields(DecoderConfig)}
    decoder = {
        k: (tuple(v) if isinstance(v, list) else v)
        for k, v in info.get("decoder", {}).items()
        if k in known
    }
    model = SCASeg(variant_config(variant, num_classes, **decoder))
    try:
        load_into(model, state, strict=True, reinit_classifier=reinit_classifier)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from err
    info = dict(info, variant=variant, num_classes=num_classes)
    return model.eval(), info


def _infer_classes(state: dict) -> int:
    for key in ("decode_head.cls_seg.weight", "module.decode_head.cls_seg.weight"):
        if key in state:
            return int(state[key].shape[0])
    raise CheckpointError("cannot tell the class count from the checkpoint; pass --num-classes")
