"""Read a checkpoint file into (tensors, info) without executing anything from it.

Formats: our safetensors files (weights + JSON metadata), and torch pickles (zip or legacy
torch.save streams) of plain state dicts, mmsegmentation 0.x and mmengine / mmsegmentation 1.x
checkpoints. Pickles go through `scaseg.safe_pickle`, so their extra parts (optimizer, message
hub, numpy scalars) are read as inert placeholders and a code-running payload is refused.
"""

from __future__ import annotations

import os
import pickle
import zipfile
import zlib
from pathlib import Path

import torch

from runtime.budgets import check
from runtime.errors import BudgetError
from scaseg.checkpoint_config import read_inference_config, read_preprocess_config
from scaseg.checkpoint_meta import describe_format, read_dataset_meta
from scaseg.checkpoint_safetensors import read_safetensors
from scaseg.checkpoint_tensors import check_state_tensors
from scaseg.errors import CheckpointError
from scaseg.metadata_walk import clip, describe
from scaseg.pickle_globals import UnsafeGlobalError
from scaseg.safe_pickle import load_torch_pickle

STATE_KEYS = ("state_dict", "model", "module")


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, info): info has "format", "container" and, where the file says so,
    "class_names", "palette_rgb", "preprocess" (from its training config) and
    "metadata_warnings" (our safetensors: their JSON too). Every floating-point tensor is
    finite and none repeats its values (see scaseg.checkpoint_tensors)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist; pass the path of a .safetensors or .pth file"
        )
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); re-download or re-save it")
    check("checkpoint_bytes", size, f"checkpoint {path}")
    if _is_safetensors(path):
        state, info = read_safetensors(path)
    else:
        state, info = _read_pickle(path)
    check_state_tensors(state, path)
    return state, info


def _read_pickle(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    obj, container = _load_pickle(path)
    state, state_key = _unwrap(obj, path)
    info = {"format": describe_format(obj, state_key), "container": container}
    info.update(read_dataset_meta(obj, f"checkpoint {path}"))
    config = read_preprocess_config(obj, f"checkpoint {path}")
    info["metadata_warnings"] = info.get("metadata_warnings", []) + config.pop(
        "metadata_warnings", []
    )
    info.update(config)
    scoring = read_inference_config(obj, f"checkpoint {path}")
    info["metadata_warnings"] += scoring.pop("metadata_warnings", [])
    if scoring.get("inference") or scoring.get("resize"):
        info["inference_config"] = scoring  # how mmseg scored it: export/inference_plan.py
    return state, info


def _load_pickle(path: Path) -> tuple[object, str]:
    try:
        return load_torch_pickle(path)
    except (BudgetError, CheckpointError):
        raise  # already say what the file asked for and how to allow it
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
    except (zipfile.BadZipFile, zlib.error, RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {_first_line(err)}; is it a truncated or "
            "non-PyTorch file? Re-download or re-save it"
        ) from err
    except (TypeError, AttributeError, IndexError, KeyError, ArithmeticError, MemoryError) as err:
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
        shown = clip(bad[0]) if isinstance(bad[0], str) else describe(bad[0])
        raise CheckpointError(
            f"{path} holds no state dict of tensors: {len(bad)} entries are not tensors "
            f"(e.g. {shown}: {_kind(obj[bad[0]])}); expected a dict of tensors, optionally "
            "under 'state_dict'"
        )
    return dict(obj), key


def _kind(obj) -> str:
    name = getattr(type(obj), "global_name", None)
    return f"an object of {clip(name)}" if name else type(obj).__name__


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"  # 8-byte header length then JSON
