"""What the globals a checkpoint pickle names become: a few helpers, or inert placeholders.

A pickle names globals (`module.name`) and calls them. Here, the harmless ones torch.save and
mmengine need are small functions that check what they are given (`ALLOWED`); any other class
becomes a `Placeholder` that records its name, arguments and state and runs nothing; and names
from modules that run code (`CODE_MODULES`) refuse the whole file (`UnsafeGlobalError`).
"""

from __future__ import annotations

import collections
import pickle

from scaseg.metadata_walk import describe

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


NAME_CHARS = 200  # a global's module.name; real ones are under 80
_placeholder_types: dict[str, type] = {}
_CACHED_TYPES = 4096  # one process may read many hostile files: the cache stops growing


def placeholder_type(global_name: str) -> type:
    """One class per global name (at most NAME_CHARS characters), shared by every load."""
    if len(global_name) > NAME_CHARS:
        raise pickle.UnpicklingError(f"a global named with {len(global_name):,} characters")
    if global_name in _placeholder_types:
        return _placeholder_types[global_name]
    cls = type(f"Placeholder[{global_name}]", (Placeholder,), {"global_name": global_name})
    if len(_placeholder_types) < _CACHED_TYPES:
        _placeholder_types[global_name] = cls
    return cls


def _codecs_encode(text, encoding="utf-8"):
    # Protocol-2 pickles (torch.save's default) carry bytes as _codecs.encode(str, "latin1").
    # Only plain text codecs: a codec name is looked up (and its module imported) by Python.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise pickle.UnpicklingError(
            f"_codecs.encode of {describe(text)} with {describe(encoding)}"
        )
    return text.encode(encoding)


def _getattr(obj, name, *default):
    # mmengine's HistoryBuffer pickles its bound methods as getattr(buffer, "min"): on a
    # placeholder that yields another placeholder. On a real object it could reach anything.
    is_placeholder = isinstance(obj, Placeholder) or (
        isinstance(obj, type) and issubclass(obj, Placeholder)
    )
    if not is_placeholder:
        raise UnsafeGlobalError(
            "builtins.getattr", f" on a {type(obj).__name__} ({describe(name)})"
        )
    if not isinstance(name, str) or not name.isidentifier():
        raise pickle.UnpicklingError(f"getattr of {describe(name)}, not an attribute name")
    return placeholder_type(f"{obj.global_name}.{name}")()


def _reconstructor(cls, base, state=None):  # copyreg._reconstructor (protocol 0/1 objects)
    if isinstance(cls, type) and issubclass(cls, Placeholder):
        return cls(base, state)
    raise pickle.UnpicklingError(f"copyreg._reconstructor of {describe(cls)}")


def _newobj(cls, *args):  # copyreg.__newobj__
    if isinstance(cls, type) and issubclass(cls, (Placeholder, collections.OrderedDict)):
        return cls.__new__(cls, *args)
    raise pickle.UnpicklingError(f"copyreg.__newobj__ of {describe(cls)}")


ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _codecs_encode,
    ("builtins", "getattr"): _getattr,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copyreg", "__newobj__"): _newobj,
}
