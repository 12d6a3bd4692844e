"""Reading a user's JSON file (sidecar, class file, profile report) within budgets.

The file's size is checked before it is read (`json_bytes`); json.loads turns deep nesting into a
RecursionError and over-long numbers into a ValueError, both translated here into the caller's
error type; the parsed value is then walked once for its nesting depth (`metadata_depth`) and
item count (`metadata_items`), so no reader downstream meets a million-element list or a
structure nested a thousand deep.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from runtime.budgets import budget, check
from runtime.errors import UserInputError


def read_json(path: str | os.PathLike, error: type[UserInputError], fix: str) -> object:
    """The parsed content of `path`; `error` (a UserInputError subclass) for text that is not
    JSON, with `fix` (how to repair it) appended; BudgetError when over a budget."""
    path = Path(path)
    text = read_text(path, error, fix, "JSON file")
    try:
        value = json.loads(text)
    except RecursionError as err:  # nested past Python's recursion limit (about 1000 levels)
        depth = budget("metadata_depth").limit
        raise error(f"{path} nests its JSON far deeper than {depth} levels; {fix}") from err
    except ValueError as err:  # json.JSONDecodeError, and ints over Python's digit limit
        raise error(f"{path} is not valid JSON ({err}); {fix}") from err
    check_structure(value, str(path))
    return value


def read_text(path: Path, error: type[UserInputError], fix: str, what: str) -> str:
    """A small text file (sidecar, class file) as UTF-8 text, its size checked against
    `json_bytes` before and while reading; `error` with `fix` when it is not UTF-8."""
    limit = budget("json_bytes").limit
    check("json_bytes", path.stat().st_size, f"{what} {path}")
    with open(path, "rb") as f:
        data = f.read(limit + 1)  # the file may grow (or be a pipe) after stat
    check("json_bytes", len(data), f"{what} {path}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(
            f"{what} {path} is not UTF-8 text ({err.reason} at byte {err.start}); {fix}"
        ) from err


def check_structure(value: object, what: str) -> None:
    """BudgetError when `value` nests deeper than `metadata_depth` or holds more than
    `metadata_items` containers and scalars; iterative, so any depth is safe to walk."""
    max_depth, max_items = budget("metadata_depth").limit, budget("metadata_items").limit
    stack, items = [(value, 1)], 0
    while stack:
        node, depth = stack.pop()
        items += 1
        if isinstance(node, dict):
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if items + len(stack) + len(children) > max_items:
            check("metadata_items", items + len(stack) + len(children), f"{what}: its JSON")
        if children and depth + 1 > max_depth:
            check("metadata_depth", depth + 1, f"{what}: its JSON")
        stack.extend((child, depth + 1) for child in children)
