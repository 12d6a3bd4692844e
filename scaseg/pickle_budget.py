"""What a checkpoint pickle may make the unpickler allocate or view, checked before it is paid.

A pickle calls the callables it names with arguments it chooses: `bytearray(2_500_000_000)` is
58 bytes of pickle, `list(range(10**10))` a few more. The builtins the unpickler allows are
wrapped here so that a size taken from the pickle is checked first: bytes and text against
`pickle_object_bytes`, element counts against `metadata_items`. They are plain functions, not
the types, so NEWOBJ (`tuple.__new__(tuple, range(...))`) cannot reach the types either.

Tensor views are checked against their storage before `Tensor.set_` sees them: torch would
grow a storage to fit a view that reaches past its end, and the tensor would then show whatever
memory lay there. Elements are counted by the sizes a view claims (`tensor_elements`), so a
stride-0 view cannot claim ten million classes out of a few bytes.
"""

from __future__ import annotations

import functools
import math
import pickle
import sys
from dataclasses import dataclass

import torch

from runtime.budgets import check
from scaseg.metadata_walk import describe

MAX_DIMS = 64  # torch's own limit on tensor dimensions
_INDEX_LIMIT = 1 << 62  # sizes, strides and offsets beyond this are nonsense, not big models


@dataclass
class LoadTally:
    """Running totals over one checkpoint file; `what` names it in messages."""

    what: str
    opcodes: int = 0
    elements: int = 0
    nested: int = 0  # storages pickled as torch.save bytes inside the pickle (one level only)


def _size_of(value) -> int:
    """Bytes or items that building something from `value` costs (an int is taken as a count)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return min(max(value, 0), sys.maxsize)
    try:
        return len(value)
    except OverflowError:  # range(10**20)
        return sys.maxsize
    except TypeError:  # scalars, placeholders
        return 0


def _bounded(name: str, build, key: str):
    def bounded(what: str, *args):
        if args:  # the source; further arguments are encodings and errors
            check(key, _size_of(args[0]), f"{what}: {name}({describe(args[0])}) in its pickle")
        return build(*args)

    return bounded


_NUMBERS = (int, float, complex, bool, type(None))
_bounded_str = _bounded("builtins.str", str, "pickle_object_bytes")


def _str(what: str, *args) -> str:
    # str() of a container is its repr: a list of a million references to one 64 MB string
    # would be 64 TB of text. Only text and numbers are turned into text.
    if not args or isinstance(args[0], _NUMBERS):
        return str(*args)  # Python itself refuses ints of over 4300 digits
    if not isinstance(args[0], (str, bytes, bytearray)):
        raise pickle.UnpicklingError(
            f"builtins.str of {describe(args[0])}: only of text or numbers"
        )
    return _bounded_str(what, *args)


_BOUNDED = {
    "bytes": _bounded("builtins.bytes", bytes, "pickle_object_bytes"),
    "bytearray": _bounded("builtins.bytearray", bytearray, "pickle_object_bytes"),
    "str": _str,
    "list": _bounded("builtins.list", list, "metadata_items"),
    "tuple": _bounded("builtins.tuple", tuple, "metadata_items"),
    "set": _bounded("builtins.set", set, "metadata_items"),
    "frozenset": _bounded("builtins.frozenset", frozenset, "metadata_items"),
    "dict": _bounded("builtins.dict", dict, "metadata_items"),
    "torch.Size": _bounded("torch.Size", torch.Size, "metadata_items"),
}
# Nothing here allocates from its arguments (range is lazy; int() refuses over 4300 digits).
_PLAIN = {
    "complex": complex, "slice": slice, "int": int, "float": float, "bool": bool,
    "range": range, "object": object,
}  # fmt: skip
SAFE_BUILTINS = frozenset(_BOUNDED.keys() - {"torch.Size"} | _PLAIN.keys())


def safe_builtin(name: str, what: str):
    """The builtin (or "torch.Size") the unpickler gives a pickle that names it: the ones that
    allocate from their argument check it first; `what` names the file in the error. Plain
    functions, not the types, so NEWOBJ (`tuple.__new__(tuple, range(...))`) cannot reach them."""
    if name in _PLAIN:
        return _PLAIN[name]
    return functools.partial(_BOUNDED[name], what)


def index(value, name: str) -> int:
    """A size, stride, offset or count read from the pickle: a plain int in 0 .. 2**62."""
    if type(value) is not int or not 0 <= value < _INDEX_LIMIT:
        raise pickle.UnpicklingError(
            f"a tensor {name} of {describe(value)}; expected a whole number >= 0"
        )
    return value


def check_view(tally: LoadTally, nbytes: int, element_size: int, offset, size, stride) -> None:
    """Refuse a view (offset, size, stride; in elements) that reaches past its storage of
    `nbytes`, or whose claimed elements overrun `tensor_elements` with the file's others."""
    offset = index(offset, "storage offset")
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
        raise pickle.UnpicklingError(
            f"a tensor with size {describe(size)} and stride {describe(stride)}; expected tuples"
        )
    if len(size) != len(stride) or len(size) > MAX_DIMS:
        raise pickle.UnpicklingError(
            f"a tensor with {len(size)} sizes and {len(stride)} strides; expected as many of "
            f"each, at most {MAX_DIMS}"
        )
    size = [index(n, "size") for n in size]
    stride = [index(s, "stride") for s in stride]
    numel = math.prod(size)
    tally.elements += numel
    check("tensor_elements", min(tally.elements, sys.maxsize), f"{tally.what}: its tensors")
    if numel == 0:
        return
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if (last + 1) * element_size > nbytes:
        raise pickle.UnpicklingError(
            f"a tensor view (size {tuple(size)}, stride {tuple(stride)}, offset {offset}) "
            f"reaches byte {(last + 1) * element_size:,} of a storage of {nbytes:,} bytes"
        )


def check_storage(what: str, key: str, nbytes: int, claimed: int, available: int) -> int:
    """A storage of `nbytes` (its record's element count x element size) before it is
    allocated: within `zip_member_bytes`, and with the `claimed` bytes of the stream's earlier
    storages within the `available` bytes the stream still holds (storages are read from the
    file, never invented). Returns the new claimed total."""
    check("zip_member_bytes", nbytes, f"{what}: storage {key}")
    if claimed + nbytes > available:
        raise pickle.UnpicklingError(
            f"its storages claim {claimed + nbytes:,} bytes but only {available:,} bytes "
            "follow the pickle (truncated or edited?)"
        )
    return claimed + nbytes
