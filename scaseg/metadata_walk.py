"""Bounded walks over what a checkpoint file holds, and short descriptions of it for messages.

An unpickled checkpoint is a graph, not a tree: the pickle memo lets a list contain itself, and
a few hundred bytes can nest tuples a million levels deep. Every later walk (class names, the
training config, our own recursion in messages) assumes what `check_tree` guarantees: no object
contains itself, nothing nests deeper than `metadata_depth`, and there are at most
`metadata_items` items in all. It walks without recursion, so the check itself cannot overflow.

`describe` names a value for an error message without printing it: a 64 MB string, a class
name with a newline or a million-item list each become a short line.
"""

from __future__ import annotations

import torch

from runtime.budgets import budget, check
from scaseg.errors import CheckpointError

_CONTAINERS = (dict, list, tuple, set, frozenset)
_DONE = object()


def _children(obj):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key
            yield value
    elif isinstance(obj, _CONTAINERS):
        yield from obj
    else:  # a placeholder: its arguments, state and items (scaseg.pickle_globals.Placeholder)
        yield from vars(obj).values()


def _is_container(obj) -> bool:
    return isinstance(obj, _CONTAINERS) or hasattr(type(obj), "global_name")


def check_tree(root, what: str) -> None:
    """Raise BudgetError when `root` nests deeper than `metadata_depth` or holds more than
    `metadata_items` items, CheckpointError when it contains itself."""
    if not _is_container(root):
        return
    max_depth, max_items = budget("metadata_depth").limit, budget("metadata_items").limit
    height: dict[int, int] = {}  # id -> levels at and below, for objects walked to the end
    on_path = {id(root)}
    frames = [[root, _children(root), 0]]  # object, its children still to see, tallest child
    items = 0
    while frames:
        frame = frames[-1]
        child = next(frame[1], _DONE)
        if child is _DONE:
            frames.pop()
            on_path.discard(id(frame[0]))
            height[id(frame[0])] = frame[2] + 1
            if frames:
                frames[-1][2] = max(frames[-1][2], frame[2] + 1)
            continue
        items += 1
        if items > max_items:
            check("metadata_items", items, what)
        if not _is_container(child):
            continue
        if id(child) in on_path:
            raise CheckpointError(
                f"{what} contains itself ({describe(child)} that holds itself, which the pickle "
                "memo allows but no training run saves); re-save the checkpoint"
            )
        depth = len(frames) + 1
        if id(child) in height:  # reached before by another path: its height is known
            if depth - 1 + height[id(child)] > max_depth:
                check("metadata_depth", depth - 1 + height[id(child)], what)
            frame[2] = max(frame[2], height[id(child)])
            continue
        if depth > max_depth:
            check("metadata_depth", depth, what)
        on_path.add(id(child))
        frames.append([child, _children(child), 0])


def describe(value, chars: int = 60) -> str:
    """A short one-line description of an untrusted value, never its full repr."""
    name = getattr(type(value), "global_name", None)
    if name is not None:
        return f"<placeholder {clip(name, chars)}>"
    if value is None or isinstance(value, (bool, float, complex)):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else f"an int of {value.bit_length():,} bits"
    if isinstance(value, str):
        return clip(value, chars)
    if isinstance(value, (bytes, bytearray)):
        return f"{type(value).__name__} of {len(value):,} bytes"
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {list(value.shape)}"
    if isinstance(value, _CONTAINERS):
        return f"a {type(value).__name__} of {len(value):,} items"
    return f"a {type(value).__name__}"


def name(key: str, chars: int = 120) -> str:
    """A key or name read from a file: as is when it is short printable text, else clipped."""
    return key if key.isprintable() and len(key) <= chars else clip(key, chars)


def clip(text: str, chars: int = 60) -> str:
    """`text` quoted with control characters escaped, cut to about `chars` characters."""
    shown = repr(text[:chars])
    return shown if len(text) <= chars else f"{shown[:-1]}...{shown[-1]} ({len(text):,} characters)"
