"""Read torch pickle checkpoints without running anything they name.

`torch.load(weights_only=True)` refuses mmengine checkpoints (their `message_hub` holds HistoryBuffer
objects, `optimizer` numpy scalars), and `weights_only=False` runs whatever the pickle says. This
unpickler sits in between: tensors, plain containers and scalars are rebuilt for real; any other
class becomes an inert `Placeholder` that only records its name, arguments and state (nothing of
it is imported or called); globals that run code (`os.system`, `builtins.eval`, `subprocess.*`,
...) refuse the whole file before anything is built.

Formats: the zip archive torch >= 1.6 writes (`<name>/data.pkl` plus one file per storage), the
legacy stream written with `_use_new_zipfile_serialization=False`, and plain pickles.

A hostile file is refused before it costs anything: each pickle's opcodes are checked first
(`scaseg.pickle_scan`: lengths, memo, nesting, edits of tensors), allocating builtins and tensor
views are checked as they are called (`scaseg.pickle_budget`), zip members against their
declared sizes (`scaseg.checkpoint_zip`), and the object that comes back is walked for depth,
size and self-reference (`scaseg.metadata_walk`). Storages are fixed-size buffers, so nothing
can grow one to show memory that the file did not fill.
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import sys
from pathlib import Path

import torch

from scaseg.checkpoint_zip import SMALL_MEMBER_BYTES, TorchArchive
from scaseg.metadata_walk import check_tree, describe
from scaseg.pickle_budget import (
    SAFE_BUILTINS,
    LoadTally,
    check_storage,
    check_view,
    index,
    safe_builtin,
)
from scaseg.pickle_globals import (
    ALLOWED,
    CODE_MODULES,
    UnsafeGlobalError,
    placeholder_type,
)
from scaseg.pickle_scan import scan_pickle

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of a pre-zip torch.save stream

# Storage classes torch.save names in its pickles, by dtype (quantized ones are not supported).
STORAGE_DTYPES = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexDoubleStorage": torch.complex128,
    "ComplexFloatStorage": torch.complex64,
    "UntypedStorage": torch.uint8,  # newer dtypes: bytes here, the dtype comes with the tensor
}

TENSOR_TYPES = ("torch.Tensor", "torch.nn.parameter.Parameter")


class _StorageType:
    """What `torch.FloatStorage` & co. stand for here: only their dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class _Storage:
    """One storage of the file, shared by every tensor that views it; a fixed-size buffer."""

    __slots__ = ("data", "dtype")

    def __init__(self, data: torch.UntypedStorage, dtype: torch.dtype) -> None:
        self.data, self.dtype = data, dtype


# Rebuild functions, bound to the unpickler that counts the file's tensor elements.
REBUILDERS = {
    ("torch._utils", "_rebuild_tensor"): "_rebuild_tensor",
    ("torch._utils", "_rebuild_tensor_v2"): "_rebuild_tensor",
    ("torch._utils", "_rebuild_tensor_v3"): "_rebuild_tensor_v3",
    ("torch._utils", "_rebuild_parameter"): "_rebuild_parameter",
    ("torch._utils", "_rebuild_parameter_with_state"): "_rebuild_parameter",
    ("torch._tensor", "_rebuild_from_type_v2"): "_rebuild_from_type_v2",
    ("torch.storage", "_load_from_bytes"): "_load_from_bytes",
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler over allow-listed globals; storages come from `read_storage(key, dtype, numel)`.
    Only for a stream `scan_pickle` has passed: the C unpickler trusts its lengths."""

    def __init__(self, file, tally: LoadTally, read_storage=None) -> None:
        super().__init__(file)
        self._tally = tally
        self._read_storage = read_storage
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        # Python 2 names (__builtin__, copy_reg) as the stock unpickler maps them.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        if (module, name) in REBUILDERS:
            return getattr(self, REBUILDERS[(module, name)])
        if module == "builtins" and name in SAFE_BUILTINS:
            return safe_builtin(name, self._tally.what)
        if (module, name) == ("torch", "Size"):
            return safe_builtin("torch.Size", self._tally.what)
        if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        global_name = f"{module}.{name}"
        if module == "builtins" or module.split(".")[0] in CODE_MODULES:
            raise UnsafeGlobalError(global_name)
        return placeholder_type(global_name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {describe(pid)}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType) or self._read_storage is None:
            raise pickle.UnpicklingError(f"unsupported storage {describe(storage_type)}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views of torch < 0.4 checkpoints")
        if not isinstance(key, (str, int)) or len(str(key)) > 64:
            raise pickle.UnpicklingError(f"a storage named {describe(key)}")
        key = str(key)
        if key not in self._storages:
            numel = index(numel, "storage element count")
            data = self._read_storage(key, storage_type.dtype, numel)
            self._storages[key] = _Storage(data, storage_type.dtype)
        return self._storages[key]

    def _rebuild_tensor(self, storage, storage_offset, size, stride, *rest):
        dtype = storage.dtype if isinstance(storage, _Storage) else None
        return self._tensor_on(storage, dtype, storage_offset, size, stride)

    def _rebuild_tensor_v3(
        self, storage, storage_offset, size, stride, _grad, _hooks, dtype, *rest
    ):
        return self._tensor_on(storage, dtype, storage_offset, size, stride)

    def _tensor_on(self, storage, dtype, storage_offset, size, stride) -> torch.Tensor:
        if not isinstance(storage, _Storage) or not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(
                f"a tensor without a readable storage ({describe(storage)})"
            )
        element_size = _element_size(dtype)
        check_view(self._tally, storage.data.nbytes(), element_size, storage_offset, size, stride)
        # Views share the one storage object, as they did when saved (tied or strided tensors).
        return torch.empty((0,), dtype=dtype).set_(storage.data, storage_offset, size, stride)

    def _rebuild_parameter(self, data, requires_grad=False, hooks=None, *rest):
        if not isinstance(data, torch.Tensor):
            raise pickle.UnpicklingError(f"a parameter without tensor data ({describe(data)})")
        return data  # a plain tensor is all a state dict needs

    def _rebuild_from_type_v2(self, func, new_type, args, state):
        # torch.Tensor / Parameter arrive as placeholders too: only their names are needed here.
        name = getattr(new_type, "global_name", None)
        rebuilders = (self._rebuild_tensor, self._rebuild_tensor_v3, self._rebuild_parameter)
        if func in rebuilders and name in TENSOR_TYPES and isinstance(args, tuple):
            return func(*args)
        return placeholder_type(f"{name or type(new_type).__name__}")(func, args, state)

    def _load_from_bytes(self, data):
        # torch.storage._load_from_bytes: how a storage pickles outside torch.save (pickle.dump
        # of a state dict). The bytes are a torch.save stream of that storage, read the same
        # safe way; a storage inside those bytes is not unpacked further.
        if not isinstance(data, bytes) or self._tally.nested:
            raise pickle.UnpicklingError(f"_load_from_bytes of {describe(data)}")
        self._tally.nested += 1
        try:
            obj, _ = _load_file(io.BytesIO(data), self._tally, len(data))
        finally:
            self._tally.nested -= 1
        if not isinstance(obj, _Storage):
            raise pickle.UnpicklingError(f"_load_from_bytes gave {describe(obj)}, not a storage")
        return obj


def load_torch_pickle(path: Path) -> tuple[object, str]:
    """(object, container) from a torch.save file or a plain pickle; container is "zip",
    "legacy" or "pickle". Raises BudgetError, UnsafeGlobalError, pickle.UnpicklingError,
    CheckpointError (an object that contains itself) or OSError-likes."""
    tally = LoadTally(f"checkpoint {path}")
    with open(path, "rb") as f:
        obj, container = _load_file(f, tally, os.fstat(f.fileno()).st_size)
    check_tree(obj, tally.what)
    return obj, container


def _load_file(f, tally: LoadTally, size: int) -> tuple[object, str]:
    if f.read(4) == b"PK\x03\x04":
        f.seek(0)
        return _load_zip(f, tally), "zip"
    f.seek(0)
    return _load_stream(f, tally, size)


def _load_one(f, tally: LoadTally, read_storage=None) -> object:
    """One pickle from `f`: its opcodes checked first, then unpickled."""
    start = f.tell()
    tally.opcodes = scan_pickle(f, tally.what, tally.opcodes)
    f.seek(start)
    return SafeUnpickler(f, tally, read_storage).load()


def _load_zip(f, tally: LoadTally) -> object:
    archive = TorchArchive(f, tally.what)
    try:
        return _load_archive(archive, tally)
    finally:
        archive.close()


def _load_archive(archive: TorchArchive, tally: LoadTally) -> object:
    names = archive.names
    pkl = next((n for n in names if n.endswith("data.pkl") and n.count("/") == 1), None)
    if pkl is None:
        raise pickle.UnpicklingError("a zip file without data.pkl, not a torch.save archive")
    prefix = pkl.removesuffix("data.pkl")
    order = "little"
    if f"{prefix}byteorder" in names:
        order = archive.read(f"{prefix}byteorder", limit=SMALL_MEMBER_BYTES).decode(
            "ascii", "replace"
        )
    if order != sys.byteorder:
        raise pickle.UnpicklingError(
            f"saved on a {describe(order)}-endian machine; re-save it on this one"
        )

    def read_storage(key: str, dtype: torch.dtype, numel: int) -> torch.UntypedStorage:
        nbytes = numel * _element_size(dtype)
        check_storage(tally.what, key, nbytes, 0, sys.maxsize)  # TorchArchive: the total
        return _fixed_storage(archive.read(f"{prefix}data/{key}", expected=nbytes))

    # data.pkl is scanned and unpickled as it inflates: a deflated one is never held whole.
    with archive.stream(pkl) as stream:
        tally.opcodes = scan_pickle(stream, tally.what, tally.opcodes)
    with archive.stream(pkl) as stream:
        return SafeUnpickler(io.BufferedReader(stream), tally, read_storage).load()


def _load_stream(f, tally: LoadTally, size: int) -> tuple[object, str]:
    first = _load_one(f, tally)
    if not (type(first) is int and first == LEGACY_MAGIC):
        return first, "pickle"
    _load_one(f, tally)  # protocol version
    _load_one(f, tally)  # sys info (endianness, type sizes)
    # Storages are filled after the main pickle: allocate them now, tensors view them in place.
    start = f.tell()
    tally.opcodes = scan_pickle(f, tally.what, tally.opcodes)
    available = size - f.tell()
    f.seek(start)
    allocated: dict[str, tuple[bytearray, torch.UntypedStorage, int]] = {}
    claimed = 0

    def allocate(key: str, dtype: torch.dtype, numel: int) -> torch.UntypedStorage:
        nonlocal claimed
        element_size = _element_size(dtype)
        claimed = check_storage(tally.what, key, numel * element_size, claimed, available)
        buffer = bytearray(numel * element_size)
        allocated[key] = (buffer, _fixed_storage(buffer), element_size)
        return allocated[key][1]

    obj = SafeUnpickler(f, tally, allocate).load()
    keys = _load_one(f, tally)
    if not isinstance(keys, list):
        raise pickle.UnpicklingError("legacy checkpoint without its storage list")
    for key in keys:
        if str(key) not in allocated:
            raise pickle.UnpicklingError(
                f"legacy checkpoint lists an unknown storage {describe(key)}"
            )
        buffer, _, element_size = allocated[str(key)]
        numel = int.from_bytes(_read_exactly(f, 8), "little")  # element count, then raw bytes
        if numel * element_size != len(buffer):
            raise pickle.UnpicklingError(
                f"storage {key} has {numel:,} elements, its record says {len(buffer) // element_size:,}"
            )
        if f.readinto(buffer) != len(buffer):
            raise EOFError(f"file ends inside storage {key}")
    return obj, "legacy"


def _fixed_storage(buffer: bytearray) -> torch.UntypedStorage:
    """A storage over `buffer` that cannot be resized (`Tensor.set_` past its end fails)."""
    if not buffer:  # frombuffer refuses empty buffers; an empty storage holds no view anyway
        return torch.UntypedStorage(0)
    return torch.frombuffer(buffer, dtype=torch.uint8).untyped_storage()


def _read_exactly(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError(f"file ends {n - len(data)} bytes early")
    return data


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
