"""Which modules of a package a set of entry modules can import: the files a bundle must carry.

The walk reads each module's source with `ast` and follows every import of the package, at module
level or inside functions (the runtime imports its backends lazily), so nothing is executed and
optional dependencies need not be installed. A name imported from a package (`from runtime import
trt_compat`) counts when it is a submodule. Package `__init__.py` files on the way are included,
because Python runs them when a submodule is imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from runtime.errors import RunError


def module_closure(root: Path, entries: Iterable[str]) -> list[Path]:
    """Files (relative to root's parent) of the modules reachable from `entries` within root's
    package. `root` is the package folder (e.g. .../runtime); entries are dotted names in it."""
    package = root.name
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(root, name)
        if path is None:
            raise RunError(f"internal error: {name} is not a module of {root} (a stale entry list)")
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run too
        todo += _imports(path, name, package, root)
    files = {_module_file(root, n) for n in seen}
    return sorted(f.relative_to(root.parent) for f in files if f is not None)


def _module_file(root: Path, name: str) -> Path | None:
    parts = name.split(".")[1:]
    base = root.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    module = base.with_suffix(".py")
    return module if parts and module.is_file() else None


def _imports(path: Path, name: str, package: str, root: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == package]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, is_package)
            if base is None or base.split(".")[0] != package:
                continue
            found.append(base)
            for alias in node.names:  # `from runtime import trt_compat`: a submodule
                if _module_file(root, f"{base}.{alias.name}") is not None:
                    found.append(f"{base}.{alias.name}")
    return found


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str | None:
    if not node.level:
        return node.module
    parts = name.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    if keep <= 0:
        return None
    base = ".".join(parts[:keep])
    return f"{base}.{node.module}" if node.module else base
