"""Hostile checkpoint files, built from real ones: zip members rewritten (CRCs right, so the edit
reaches the reader), tensors that view past their storage, hand-written pickle opcodes."""

from __future__ import annotations

import json
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from scaseg.model import build_model
from tests.support.checkpoints import Payload, save_mmengine_checkpoint


def tiny_mmengine(folder: Path, name: str = "m.pth", **kwargs) -> Path:
    """A real mmengine checkpoint of the tiny model with 3 classes."""
    return save_mmengine_checkpoint(build_model("tiny", 3), folder / name, **kwargs)


def rewrite_zip(
    src: Path, dst: Path, edit: Callable[[str, bytes], bytes | None], deflate: str | None = None
) -> Path:
    """A copy of the torch.save zip `src` whose members pass through edit(name, data) (None: as
    is); members whose name ends with `deflate` ("": all) are stored deflated."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            changed = edit(info.filename, data)
            packed = deflate is not None and info.filename.endswith(deflate)
            method = zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED
            new.writestr(info.filename, data if changed is None else changed, method)
    return dst


def storage_member(path: Path, tensor_bytes: int) -> str:
    """The name of the first storage member of `path` holding `tensor_bytes` bytes."""
    with zipfile.ZipFile(path) as archive:
        return next(
            i.filename
            for i in archive.infolist()
            if "/data/" in i.filename and i.file_size == tensor_bytes
        )


def view(base: torch.Tensor, offset: int, size: tuple, stride: tuple) -> Payload:
    """Pickles as torch's own rebuild of a tensor on `base`'s storage with this geometry."""
    storage = base.__reduce_ex__(2)[1][0]  # the TypedStorage torch.save writes for `base`
    return Payload(torch._utils._rebuild_tensor_v2, storage, offset, size, stride, False,
                   OrderedDict())  # fmt: skip


def state_with(model: torch.nn.Module, **replaced) -> OrderedDict:
    """The model's state dict with some entries replaced ("__" stands for ".")."""
    state = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    for key, value in replaced.items():
        state[key.replace("__", ".")] = value
    return state


def safetensors_with_header(path: Path, header: dict, data: bytes = b"") -> Path:
    """A .safetensors file with this header (JSON) and data section, as written by hand."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def resave_safetensors(src: Path, dst: Path, **meta_changes) -> Path:
    """A copy of our .safetensors `src` with its scaseg JSON metadata fields changed."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        info = json.loads(f.metadata()["scaseg"])
    info.update(meta_changes)
    save_file(tensors, str(dst), metadata={"scaseg": json.dumps(info)})
    return dst


def declare_size(path: Path, member: str, size: int) -> Path:
    """Edit the sizes `member`'s zip headers (local and central) declare, leaving its data."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo(member).header_offset
    central = data.index(b"PK\x01\x02")  # the first central directory entry
    while not data[central + 46 :].startswith(member.encode()):
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<II", data, local + 18, size, size)  # compressed, uncompressed
    struct.pack_into("<II", data, central + 20, size, size)
    path.write_bytes(bytes(data))
    return path
