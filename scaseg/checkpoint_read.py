"""Read a checkpoint file into (tensors, info) without executing anything from it.

Formats: our safetensors files (weights + JSON metadata), and torch pickles (zip or legacy
torch.save streams) of plain state dicts, mmsegmentation 0.x and mmengine / mmsegmentation 1.x
checkpoints. Pickles go through `scaseg.safe_pickle`, so their extra parts (optimizer, message
hub, numpy scalars) are read as inert placeholders and a code-running payload is refused.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import torch

from scaseg.checkpoint_config import read_preprocess_config
from scaseg.checkpoint_meta import (
    SAFETENSORS,
    SAFETENSORS_BARE,
    describe_format,
    read_dataset_meta,
)
from scaseg.errors import CheckpointError
from scaseg.safe_pickle import Placeholder, UnsafeGlobalError, load_torch_pickle

STATE_KEYS = ("state_dict", "model", "module")


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, info): info has "format", "container" and, where the file says so,
    "class_names", "palette_rgb", "preprocess" (from its training config) and
    "metadata_warnings" (our safetensors: their JSON too)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist; pass the path of a .safetensors or .pth file"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); re-download or re-save it")
    if _is_safetensors(path):
        return _read_safetensors(path)
    obj, container = _load_pickle(path)
    state, state_key = _unwrap(obj, path)
    info = {"format": describe_format(obj, state_key), "container": container}
    info.update(read_dataset_meta(obj))
    config = read_preprocess_config(obj)
    info["metadata_warnings"] = info.get("metadata_warnings", []) + config.pop(
        "metadata_warnings", []
    )
    info.update(config)
    return state, info


def _load_pickle(path: Path) -> tuple[object, str]:
    try:
        return load_torch_pickle(path)
    except UnsafeGlobalError as err:
        raise CheckpointError(
            f"refusing to load {path}: {err}; nothing from it was run. Only checkpoints of "
            "tensors, plain containers and numbers are read. If the file is yours, re-save its "
            "weights with torch.save(model.state_dict()) or as .safetensors"
        ) from err
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"cannot read checkpoint {path}: not a plain tensor checkpoint ({_first_line(err)}); "
            "expected a torch.save file or .safetensors. If it is yours, re-save it with "
            "torch.save(model.state_dict()) or as .safetensors"
        ) from err
    except (zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {_first_line(err)}; is it a truncated or "
            "non-PyTorch file? Re-download or re-save it"
        ) from err
    except (TypeError, AttributeError, IndexError, MemoryError) as err:
        # A malformed pickle can make the unpickler call an allowed function with bad arguments.
        raise CheckpointError(
            f"cannot read checkpoint {path}: malformed pickle ({type(err).__name__}: "
            f"{_first_line(err)}); re-download or re-save it"
        ) from err


def _unwrap(obj, path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    key = None
    if isinstance(obj, dict):
        for candidate in STATE_KEYS:
            if candidate in obj and isinstance(obj[candidate], dict):
                obj, key = obj[candidate], candidate
                break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(
            f"{path} holds no state dict of tensors (found {_kind(obj)}); expected a dict of "
            "tensors, optionally under 'state_dict'. A pickled model object cannot be read "
            "safely: re-save it with torch.save(model.state_dict())"
        )
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor) or not isinstance(k, str)]
    if bad:
        raise CheckpointError(
            f"{path} holds no state dict of tensors: {len(bad)} entries are not tensors "
            f"(e.g. {bad[0]!r}: {_kind(obj[bad[0]])}); expected a dict of tensors, optionally "
            "under 'state_dict'"
        )
    return dict(obj), key


def _kind(obj) -> str:
    if isinstance(obj, Placeholder):
        return f"an object of {obj.global_name}"
    return type(obj).__name__


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
    try:
        info = json.loads(meta["scaseg"]) if "scaseg" in meta else {}
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{path}: its scaseg metadata is not valid JSON ({err}); re-save it with "
            "scaseg.checkpoint.save_checkpoint"
        ) from err
    fmt = SAFETENSORS if "scaseg" in meta else SAFETENSORS_BARE
    info = dict(info, format=fmt, container="safetensors")
    info["metadata_warnings"] = []  # fresh: a re-saved info may carry old ones
    return tensors, info
