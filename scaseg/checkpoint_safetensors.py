"""Read a .safetensors checkpoint: its header checked first, then its tensors, then our metadata.

A safetensors file starts with the length of its JSON header, which the reader allocates: that
length is checked against `json_bytes` (and the file's size) before anything is read. Every
tensor's dtype, shape and byte range is checked against the data that follows, and their elements
together against `tensor_elements`, before the safetensors library maps any of them. Our own
files carry their settings as JSON under `__metadata__["scaseg"]`; its fields are checked here
like a pickle's metadata: unusable class names, palettes and input normalisations are dropped
with a warning, and settings the model is built from (variant, class count, decoder) must have
the right types, or the file is refused.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

from runtime.budgets import check
from scaseg.checkpoint_config import check_preprocess
from scaseg.checkpoint_meta import SAFETENSORS, SAFETENSORS_BARE, read_classes
from scaseg.errors import CheckpointError
from scaseg.metadata_walk import check_tree, describe, name

ELEMENT_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "C64": 8,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip
MAX_DIMS = 64
RESAVE = "re-save it with scaseg.checkpoint.save_checkpoint"


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, info) of a .safetensors file; info as `scaseg.checkpoint_read.read_checkpoint`."""
    header, data_bytes = _read_header(path)
    _check_entries(header, data_bytes, path)
    tensors = _read_tensors(path)
    meta = header.get("__metadata__") or {}
    info = read_info(meta["scaseg"], path) if "scaseg" in meta else {"metadata_warnings": []}
    fmt = SAFETENSORS if "scaseg" in meta else SAFETENSORS_BARE
    return tensors, dict(info, format=fmt, container="safetensors")


def _read_header(path: Path) -> tuple[dict, int]:
    """The parsed JSON header and how many data bytes follow it."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        # A claim past the file's end is a broken file (truncated, or not safetensors at all),
        # not a large one: say so before speaking of budgets.
        if not 0 < length <= size - 8:
            raise CheckpointError(
                f"cannot read safetensors file {path}: its header claims {length:,} bytes, the "
                f"file holds {max(size - 8, 0):,} after it; is it truncated or not a safetensors "
                "file? Re-download or re-save it"
            )
        check("json_bytes", length, f"{path}: its safetensors header")
        raw = f.read(length)
    header = parse_json(raw, f"{path}: its safetensors header")
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: its safetensors header is {describe(header)}, not a dict")
    return header, size - 8 - length


def _check_entries(header: dict, data_bytes: int, path: Path) -> None:
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path}: its __metadata__ is not a dict of strings; {RESAVE}")
    elements = 0
    for key, entry in header.items():
        if key != "__metadata__":
            elements += _check_entry(key, entry, data_bytes, path)
    check("tensor_elements", elements, f"{path}: its tensors")


def _check_entry(key: str, entry, data_bytes: int, path: Path) -> int:
    entry = entry if isinstance(entry, dict) else {}
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    problem = None
    if not isinstance(dtype, str) or dtype not in ELEMENT_BYTES:
        problem = f"dtype {describe(dtype)} (expected one of {', '.join(ELEMENT_BYTES)})"
    elif not _ints(shape, MAX_DIMS):
        problem = f"shape {_listed(shape)} (expected at most {MAX_DIMS} whole numbers >= 0)"
    elif not _ints(offsets, 2) or len(offsets) != 2 or offsets[0] > offsets[1]:
        problem = f"data_offsets {_listed(offsets)} (expected [begin, end])"
    elif offsets[1] > data_bytes:
        problem = f"bytes {offsets[0]:,}..{offsets[1]:,}, past the {data_bytes:,} the file holds"
    elif offsets[1] - offsets[0] != math.prod(shape) * ELEMENT_BYTES[dtype]:
        problem = (
            f"{offsets[1] - offsets[0]:,} bytes for {math.prod(shape):,} {dtype} elements "
            f"of shape {shape}"
        )
    if problem:
        raise CheckpointError(
            f"cannot read safetensors file {path}: tensor {name(key)} has {problem}; is it "
            "truncated or edited? Re-download or re-save it"
        )
    return math.prod(shape)


def _listed(values) -> str:
    if isinstance(values, list) and len(values) <= MAX_DIMS:
        return "[" + ", ".join(describe(v) for v in values) + "]"
    return describe(values)


def _ints(values, most: int) -> bool:
    return (
        isinstance(values, list)
        and len(values) <= most
        and all(type(v) is int and 0 <= v < 1 << 62 for v in values)
    )


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open

    try:
        tensors = {}
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                tensors[key] = f.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot read safetensors file {path}: {_first_line(err)}; is it truncated or not a "
            "safetensors file? Re-download or re-save it"
        ) from err
    return tensors


def read_info(text: str, path: Path) -> dict:
    """Our JSON settings (variant, num_classes, decoder, classes, palette, preprocess), checked."""
    info = parse_json(text.encode("utf-8", "surrogatepass"), f"{path}: its scaseg metadata")
    if not isinstance(info, dict):
        raise CheckpointError(
            f"{path}: its scaseg metadata is {describe(info)}, not a dict; {RESAVE}"
        )
    variant, classes = info.get("variant"), info.get("num_classes")
    if variant is not None and not (isinstance(variant, str) and 0 < len(variant) <= 32):
        raise CheckpointError(
            f"{path}: variant {describe(variant)} is not a variant name; {RESAVE}"
        )
    if classes is not None:
        if type(classes) is not int or classes < 1:
            raise CheckpointError(
                f"{path}: num_classes {describe(classes)} is not a whole number >= 1; {RESAVE}"
            )
        check("classes", classes, f"{path}: num_classes")
    if not isinstance(info.get("decoder", {}), dict):
        raise CheckpointError(
            f"{path}: decoder {describe(info['decoder'])} is not a dict; {RESAVE}"
        )
    found = read_classes(
        info.pop("class_names", None), info.pop("palette_rgb", None),
        ("class_names", "palette_rgb"), str(path),
    )  # fmt: skip
    warnings = found.pop("metadata_warnings")
    if "preprocess" in info:
        settings, problem = check_preprocess(info.pop("preprocess"), "preprocess")
        warnings += [problem] if problem else []
        if settings:
            info["preprocess"] = settings
    # fresh: a re-saved info may carry old warnings
    return dict(info, **found, metadata_warnings=warnings)


def parse_json(raw: bytes, what: str):
    """JSON from a user's file, walked for depth and size (`check_tree`) once parsed."""
    try:
        value = json.loads(raw)
    except RecursionError as err:  # the C decoder's own guard, at about 1000 levels
        raise CheckpointError(
            f"{what} nests over {sys.getrecursionlimit():,} levels deep, deeper than any "
            f"checkpoint; {RESAVE}"
        ) from err
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, over 4300 digits
        raise CheckpointError(f"{what} is not valid JSON ({_first_line(err)}); {RESAVE}") from err
    check_tree(value, what)
    return value


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
