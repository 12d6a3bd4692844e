"""Read a pickle's opcodes before it is unpickled, and refuse what the unpickler would pay for.

The C unpickler trusts the stream: a length prefix of 2**63 makes it allocate that much before
reading, a memo index of 2**32 resizes its memo table to it, and a key made of a million nested
tuples is hashed recursively in C until the interpreter crashes. This scan walks the opcodes
(`pickletools.genops`, nothing is built), mirrors the stack with small records, and checks each
claim first: string and frame lengths against `pickle_object_bytes`, the opcode count against
`metadata_items`, nesting against `metadata_depth`, memo indices against the opcodes seen. It
also refuses edits torch.save never writes: BUILD or SETITEM aimed at a tensor, a storage or a
global (a BUILD on a tensor calls `Tensor.set_` and would bypass the view checks).
"""

from __future__ import annotations

import pickle
import pickletools

from runtime.budgets import budget, check
from runtime.errors import BudgetError
from scaseg.pickle_globals import NAME_CHARS

# Globals whose REDUCE result is a tensor (the unpickler maps them to its rebuild functions).
TENSOR_GLOBALS = frozenset(
    {
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2",
    }
)
STORAGE_GLOBALS = frozenset({"torch.storage._load_from_bytes"})
_GETS = {"GET", "BINGET", "LONG_BINGET"}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_EDITS = {"APPEND": 1, "SETITEM": 2, "BUILD": 1}  # opcode -> values popped above the target
_MARK_EDITS = {"APPENDS", "SETITEMS", "ADDITEMS"}
_CALLS = {"REDUCE": 2, "NEWOBJ": 2, "NEWOBJ_EX": 3, "INST": -1, "OBJ": -1}  # -1: to the mark
_TEXT_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
_SPECIAL = _GETS | _PUTS | _EDITS.keys() | _MARK_EDITS | _CALLS.keys() | {
    "MARK", "MEMOIZE", "DUP", "POP", "POP_MARK", "STOP", "PROTO", "FRAME", "GLOBAL",
    "STACK_GLOBAL", "PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4",
}  # fmt: skip
# Every other opcode pushes one new object: from the argument alone (a leaf: numbers, strings,
# empty containers) or from what it pops (n objects, or -1: down to the mark).
_LEAVES = {op.name for op in pickletools.opcodes if op.name not in _SPECIAL and not op.stack_before}
_BUILDERS = {
    op.name: -1 if pickletools.markobject in op.stack_before else len(op.stack_before)
    for op in pickletools.opcodes
    if op.name not in _SPECIAL and op.stack_before
}


class _Cell:
    """What the scan knows of one object on the stack: its nesting depth and, where it matters,
    whether it is a global, a tensor or a storage, and its text (for STACK_GLOBAL)."""

    __slots__ = ("depth", "kind", "text")

    def __init__(self, depth: int = 0, kind: str = "", text: str = "") -> None:
        self.depth, self.kind, self.text = depth, kind, text


_MARK = _Cell(kind="mark")


class _BoundedReader:
    """The pickle's bytes, refusing any single read longer than `pickle_object_bytes`."""

    def __init__(self, f, what: str) -> None:
        self._f, self._what = f, what
        self._limit = budget("pickle_object_bytes").limit

    def read(self, n: int = -1) -> bytes:
        if 0 <= n <= self._limit:
            return self._f.read(n)
        what = f"{self._what}: a string, bytes or frame of the pickle"
        check("pickle_object_bytes", max(n, self._limit + 1), what)
        return b""  # not reached: check raised

    def readline(self) -> bytes:
        line = self._f.readline(self._limit + 1)
        if len(line) > self._limit and not line.endswith(b"\n"):
            check("pickle_object_bytes", len(line), f"{self._what}: a text line of the pickle")
        return line


def scan_pickle(f, what: str, opcodes_seen: int = 0) -> int:
    """Check the pickle at `f`'s position (see the module docstring); `f` is left after STOP.
    `opcodes_seen` carries the count over from earlier pickles of the same file. Returns the new
    count. Raises BudgetError, or pickle.UnpicklingError for a malformed or edited stream."""
    scan = _Scan(what, opcodes_seen)
    try:
        for op, arg, _pos in pickletools.genops(_BoundedReader(f, what)):
            scan.step(op.name, arg)
    except BudgetError:
        raise
    except ValueError as err:  # genops: an unknown opcode, a truncated argument
        raise pickle.UnpicklingError(f"malformed or truncated pickle ({err})") from err
    if not scan.stopped:
        raise pickle.UnpicklingError("the pickle ends without its STOP opcode (truncated?)")
    return scan.opcodes


class _Scan:
    def __init__(self, what: str, opcodes: int) -> None:
        self.what, self.opcodes, self.stopped = what, opcodes, False
        self.stack: list[_Cell] = []
        self.memo: dict[int, _Cell] = {}
        self.max_items = budget("metadata_items").limit
        self.max_depth = budget("metadata_depth").limit
        self.max_bytes = budget("pickle_object_bytes").limit

    def step(self, name: str, arg) -> None:
        # Ordered by how often torch.save writes each opcode: this runs once per opcode.
        self.opcodes += 1
        if self.opcodes > self.max_items:
            check("metadata_items", self.opcodes, f"{self.what}: its pickle (opcodes)")
        if name in _PUTS:
            if not 0 <= arg <= self.opcodes:  # a real pickler numbers its memo from 0 up
                raise pickle.UnpicklingError(f"memo index {arg} out of order")
            self.memo[arg] = self._top()
        elif name in _GETS:
            if arg not in self.memo:
                raise pickle.UnpicklingError(f"memo index {arg} used before it is set")
            self.stack.append(self.memo[arg])
        elif name in _LEAVES:
            text = arg if name in _TEXT_OPS and len(arg) <= NAME_CHARS else ""
            self.stack.append(_Cell(0, "text", text) if text else _Cell())
        elif name == "MARK":
            self.stack.append(_MARK)
        elif name in _BUILDERS:
            self._push(self._pop_to_mark() if _BUILDERS[name] < 0 else self._pop(_BUILDERS[name]))
        elif name in _CALLS:
            self._call(name, arg)
        elif name in _EDITS or name in _MARK_EDITS:
            values = self._pop_to_mark() if name in _MARK_EDITS else self._pop(_EDITS[name])
            self._edit(name, self._top(), values)
        else:
            self._other(name, arg)

    def _other(self, name: str, arg) -> None:
        if name == "MEMOIZE":
            self.memo[len(self.memo)] = self._top()
        elif name == "DUP":
            self.stack.append(self._top())
        elif name == "POP":
            if self.stack and self.stack[-1] is _MARK:
                self._pop_mark_only()  # as the C unpickler does: POP on a mark pops the mark
            else:
                self._pop()
        elif name == "POP_MARK":
            self._pop_to_mark()
        elif name == "STOP":
            self._pop()
            if self.stack:
                raise pickle.UnpicklingError(
                    f"malformed pickle: {len(self.stack)} objects left over at its STOP opcode"
                )
            self.stopped = True
        elif name == "PROTO" and arg > pickle.HIGHEST_PROTOCOL:
            raise pickle.UnpicklingError(f"pickle protocol {arg} is newer than this Python's")
        elif name == "FRAME" and arg > self.max_bytes:
            check("pickle_object_bytes", arg, f"{self.what}: a frame of its pickle")
        elif name == "GLOBAL":
            self.stack.append(_Cell(kind="global", text=self._name(*str(arg).split(" ", 1))))
        elif name == "STACK_GLOBAL":
            module, attr = self._pop(2)
            if module.kind != "text" or attr.kind != "text":
                raise pickle.UnpicklingError("STACK_GLOBAL of names that are not plain text")
            self.stack.append(_Cell(kind="global", text=self._name(module.text, attr.text)))
        elif name in ("PERSID", "BINPERSID"):
            self._push(self._pop(1) if name == "BINPERSID" else [], kind="storage")
        elif name not in ("PROTO", "FRAME"):  # EXT1/2/4 (copyreg's registry) and anything new
            raise pickle.UnpicklingError(f"opcode {name}, which torch.save never writes")

    def _call(self, name: str, arg) -> None:
        if name == "INST":
            callee = self._name(*str(arg).split(" ", 1))
            popped = self._pop_to_mark()
        elif name == "OBJ":
            popped = self._pop_to_mark()
            callee = popped[-1].text if popped else ""  # the first object after the mark
        else:
            popped = self._pop(_CALLS[name])
            callee = popped[0].text
        kind = "tensor" if callee in TENSOR_GLOBALS else ""
        self._push(popped, kind="storage" if callee in STORAGE_GLOBALS else kind)

    def _edit(self, name: str, target: _Cell, values: list[_Cell]) -> None:
        if target.kind in ("tensor", "storage", "global"):
            raise pickle.UnpicklingError(
                f"{name} on a {target.kind} after it was built, which torch.save never writes"
            )
        if values:
            self._deepen(target, 1 + max([v.depth for v in values]))

    def _push(self, popped: list[_Cell], kind: str = "") -> None:
        cell = _Cell(0, kind)
        if popped:
            self._deepen(cell, 1 + max([c.depth for c in popped]))
        self.stack.append(cell)

    def _deepen(self, cell: _Cell, depth: int) -> None:
        if depth > cell.depth:
            cell.depth = depth
            if depth > self.max_depth:
                check("metadata_depth", depth, f"{self.what}: its pickle")

    def _name(self, module: str, attr: str) -> str:
        if len(module) + len(attr) > NAME_CHARS:
            raise pickle.UnpicklingError(
                f"a global named with {len(module) + len(attr):,} characters"
            )
        return f"{module}.{attr}"

    def _top(self) -> _Cell:
        if not self.stack or self.stack[-1] is _MARK:
            raise pickle.UnpicklingError("malformed pickle: an opcode without its object")
        return self.stack[-1]

    def _pop(self, n: int = 1) -> list[_Cell]:
        """The top n objects, deepest first (in the order they were pushed)."""
        popped = []
        for _ in range(n):
            popped.append(self._top())
            self.stack.pop()
        return popped[::-1]

    def _pop_to_mark(self) -> list[_Cell]:
        popped = []
        while self.stack and self.stack[-1] is not _MARK:
            popped.append(self.stack.pop())
        self._pop_mark_only()
        return popped

    def _pop_mark_only(self) -> None:
        if not self.stack or self.stack[-1] is not _MARK:
            raise pickle.UnpicklingError("malformed pickle: no mark to pop")
        self.stack.pop()
