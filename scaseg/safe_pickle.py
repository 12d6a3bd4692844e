"""Read torch pickle checkpoints without running anything they name.

`torch.load(weights_only=True)` refuses mmengine checkpoints (their `message_hub` holds HistoryBuffer
objects, `optimizer` numpy scalars), and `weights_only=False` runs whatever the pickle says. This
unpickler sits in between: tensors, plain containers and scalars are rebuilt for real; any other
class becomes an inert `Placeholder` that only records its name, arguments and state (nothing of
it is imported or called); globals that run code (`os.system`, `builtins.eval`, `subprocess.*`,
...) refuse the whole file before anything is built.

Formats: the zip archive torch >= 1.6 writes (`<name>/data.pkl` plus one file per storage), the
legacy stream written with `_use_new_zipfile_serialization=False`, and plain pickles.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import sys
import zipfile
from pathlib import Path

import torch

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
SAFE_BUILTINS = {
    "set": set, "frozenset": frozenset, "list": list, "dict": dict, "tuple": tuple,
    "bytearray": bytearray, "bytes": bytes, "complex": complex, "slice": slice, "int": int,
    "float": float, "str": str, "bool": bool, "range": range, "object": object,
}  # fmt: skip

# Module roots whose globals run code, read files or reach the network when called. A pickle
# naming one is an attack or a mistake either way, so it is refused loudly rather than stubbed.
CODE_MODULES = frozenset(
    {
        "os", "posix", "nt", "subprocess", "sys", "runpy", "importlib", "shutil", "socket",
        "ctypes", "pickle", "_pickle", "marshal", "webbrowser", "pty", "code", "codeop",
        "multiprocessing", "threading", "_thread", "signal", "asyncio", "pdb", "bdb", "timeit",
        "pydoc", "platform", "tempfile", "io", "_io", "pathlib", "glob", "operator", "functools",
        "types", "inspect", "ssl", "http", "urllib", "ftplib", "smtplib", "telnetlib", "cProfile",
        "profile", "trace", "dill", "cloudpickle", "joblib", "posixpath", "ntpath",
        "_posixsubprocess", "_winapi", "msvcrt", "winreg", "zipimport", "pkgutil", "site",
        "sysconfig", "distutils", "setuptools", "pip", "ensurepip", "venv", "imp",
    }
)  # fmt: skip


class UnsafeGlobalError(pickle.UnpicklingError):
    """The pickle names a global that runs code; nothing was executed."""

    def __init__(self, global_name: str, use: str = "") -> None:
        super().__init__(f"it references {global_name}{use}, which can run code")
        self.global_name = global_name


class Placeholder:
    """An object the pickle described but that was not rebuilt: class name, arguments, state."""

    global_name = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args, obj.kwargs, obj.state = args, kwargs, None
        obj.items, obj.elements = {}, []
        return obj

    def __init__(self, *args, **kwargs) -> None:
        pass  # __new__ kept the arguments; nothing is run

    def __setstate__(self, state) -> None:  # BUILD
        self.state = state

    def __setitem__(self, key, value) -> None:  # SETITEMS on a dict subclass
        self.items[key] = value

    def append(self, value) -> None:  # APPENDS on a list subclass
        self.elements.append(value)

    def extend(self, values) -> None:
        self.elements.extend(values)

    def __repr__(self) -> str:
        return f"<placeholder {self.global_name}>"


_placeholder_types: dict[str, type] = {}


def placeholder_type(global_name: str) -> type:
    if global_name not in _placeholder_types:
        name = f"Placeholder[{global_name}]"
        _placeholder_types[global_name] = type(name, (Placeholder,), {"global_name": global_name})
    return _placeholder_types[global_name]


class _StorageType:
    """What `torch.FloatStorage` & co. stand for here: only their dtype."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _codecs_encode(text, encoding="utf-8"):
    # Protocol-2 pickles (torch.save's default) carry bytes as _codecs.encode(str, "latin1").
    # Only plain text codecs: a codec name is looked up (and its module imported) by Python.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}")
    return text.encode(encoding)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, hooks=None, *rest):
    return _tensor_on(storage, storage.dtype if isinstance(storage, _Storage) else None,
                      storage_offset, size, stride)  # fmt: skip


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, hooks, dtype, *rest):
    return _tensor_on(storage, dtype, storage_offset, size, stride)


def _tensor_on(storage, dtype, storage_offset, size, stride) -> torch.Tensor:
    if not isinstance(storage, _Storage) or not isinstance(dtype, torch.dtype):
        raise pickle.UnpicklingError(f"a tensor without a readable storage ({storage!r})")
    # Views share the one storage object, as they did when saved (tied or strided tensors).
    return torch.empty((0,), dtype=dtype).set_(storage.data, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None, *rest):
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"a parameter without tensor data ({data!r})")
    return data  # a plain tensor is all a state dict needs


def _rebuild_from_type_v2(func, new_type, args, state):
    # torch.Tensor / Parameter arrive as placeholders too: only their names are needed here.
    name = getattr(new_type, "global_name", None)
    if func in (_rebuild_tensor, _rebuild_tensor_v3, _rebuild_parameter) and name in TENSOR_TYPES:
        return func(*args)
    return placeholder_type(f"{name or new_type}")(func, args, state)


def _getattr(obj, name, *default):
    # mmengine's HistoryBuffer pickles its bound methods as getattr(buffer, "min"): on a
    # placeholder that yields another placeholder. On a real object it could reach anything.
    if isinstance(obj, Placeholder) or (isinstance(obj, type) and issubclass(obj, Placeholder)):
        return placeholder_type(f"{obj.global_name}.{name}")()
    raise UnsafeGlobalError("builtins.getattr", f" on a {type(obj).__name__} ({name!r})")


def _reconstructor(cls, base, state=None):  # copyreg._reconstructor (protocol 0/1 objects)
    if isinstance(cls, type) and issubclass(cls, Placeholder):
        return cls(base, state)
    raise pickle.UnpicklingError(f"copyreg._reconstructor of {cls!r}")


def _newobj(cls, *args):  # copyreg.__newobj__
    if isinstance(cls, type) and issubclass(cls, (Placeholder, collections.OrderedDict)):
        return cls.__new__(cls, *args)
    raise pickle.UnpicklingError(f"copyreg.__newobj__ of {cls!r}")


def _load_from_bytes(data):
    # torch.storage._load_from_bytes: how a storage pickles outside torch.save (pickle.dump of a
    # state dict). The bytes are a torch.save stream of that storage: read it the same safe way.
    if not isinstance(data, bytes):
        raise pickle.UnpicklingError("_load_from_bytes without bytes")
    obj, _ = _load_file(io.BytesIO(data))
    if not isinstance(obj, _Storage):
        raise pickle.UnpicklingError(f"_load_from_bytes gave {obj!r}, not a storage")
    return obj


ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _codecs_encode,
    ("builtins", "getattr"): _getattr,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copyreg", "__newobj__"): _newobj,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch", "Size"): torch.Size,
}


class _Storage:
    """One storage of the file, shared by every tensor that views it."""

    def __init__(self, data: torch.UntypedStorage, dtype: torch.dtype) -> None:
        self.data, self.dtype = data, dtype


class SafeUnpickler(pickle.Unpickler):
    """Unpickler over allow-listed globals; storages come from `read_storage(key, dtype, numel)`."""

    def __init__(self, file, read_storage=None) -> None:
        super().__init__(file)
        self._read_storage = read_storage
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        # Python 2 names (__builtin__, copy_reg) as the stock unpickler maps them.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        if module == "builtins" and name in SAFE_BUILTINS:
            return SAFE_BUILTINS[name]
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
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType) or self._read_storage is None:
            raise pickle.UnpicklingError(f"unsupported storage {storage_type!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views of torch < 0.4 checkpoints")
        key = str(key)
        if key not in self._storages:
            data = self._read_storage(key, storage_type.dtype, int(numel))
            self._storages[key] = _Storage(data, storage_type.dtype)
        return self._storages[key]


def load_torch_pickle(path: Path) -> tuple[object, str]:
    """(object, container) from a torch.save file or a plain pickle; container is "zip",
    "legacy" or "pickle". Raises UnsafeGlobalError, pickle.UnpicklingError or OSError-likes."""
    with open(path, "rb") as f:
        return _load_file(f)


def _load_file(f) -> tuple[object, str]:
    if f.read(4) == b"PK\x03\x04":
        f.seek(0)
        return _load_zip(f), "zip"
    f.seek(0)
    return _load_stream(f)


def _load_zip(f) -> object:
    with zipfile.ZipFile(f) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("data.pkl") and n.count("/") == 1), None)
        if pkl is None:
            raise pickle.UnpicklingError("a zip file without data.pkl, not a torch.save archive")
        prefix = pkl.removesuffix("data.pkl")
        order = (
            archive.read(f"{prefix}byteorder").decode()
            if f"{prefix}byteorder" in names
            else "little"
        )
        if order != sys.byteorder:
            raise pickle.UnpicklingError(
                f"saved on a {order}-endian machine; re-save it on this one"
            )

        def read_storage(key: str, dtype: torch.dtype, numel: int) -> torch.UntypedStorage:
            raw = archive.read(f"{prefix}data/{key}")
            nbytes = numel * _element_size(dtype)
            if len(raw) < nbytes:
                raise pickle.UnpicklingError(f"storage {key} holds {len(raw)} of {nbytes} bytes")
            if nbytes == 0:
                return torch.UntypedStorage(0)
            return torch.UntypedStorage.from_buffer(raw[:nbytes], dtype=torch.uint8)

        with archive.open(pkl) as data_pkl:
            return SafeUnpickler(io.BufferedReader(data_pkl), read_storage).load()


def _load_stream(f) -> tuple[object, str]:
    first = SafeUnpickler(f).load()
    if not (type(first) is int and first == LEGACY_MAGIC):
        return first, "pickle"
    SafeUnpickler(f).load()  # protocol version
    SafeUnpickler(f).load()  # sys info (endianness, type sizes)
    # Storages are filled after the main pickle: allocate them now, tensors view them in place.
    allocated: dict[str, tuple[torch.UntypedStorage, int]] = {}

    def allocate(key: str, dtype: torch.dtype, numel: int) -> torch.UntypedStorage:
        size = _element_size(dtype)
        allocated[key] = (torch.UntypedStorage(numel * size), size)
        return allocated[key][0]

    obj = SafeUnpickler(f, allocate).load()
    keys = SafeUnpickler(f).load()
    if not isinstance(keys, list):
        raise pickle.UnpicklingError("legacy checkpoint without its storage list")
    for key in map(str, keys):
        if key not in allocated:
            raise pickle.UnpicklingError(f"legacy checkpoint lists an unknown storage {key!r}")
        storage, element_size = allocated[key]
        numel = int.from_bytes(_read_exactly(f, 8), "little")  # element count, then raw bytes
        if numel * element_size != storage.nbytes():
            raise pickle.UnpicklingError(f"storage {key} has {numel} elements, expected more")
        raw = _read_exactly(f, storage.nbytes())
        if raw:  # frombuffer refuses empty buffers
            view = torch.empty((0,), dtype=torch.uint8).set_(storage)
            view.copy_(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
    return obj, "legacy"


def _read_exactly(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError(f"file ends {n - len(data)} bytes early")
    return data


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
