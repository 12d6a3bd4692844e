"""The packages' module-level import graphs have no cycles (TYPE_CHECKING imports count: a cycle
there is a cycle in the design). Imports inside functions, the way heavy or optional modules are
loaded lazily, are not module-level and do not count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "export", "calibration", "scaseg")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(path: Path) -> set[str]:
    found: set[str] = set()

    def visit(nodes) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", ()):
                    visit(handler.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def _cycles(package: str) -> list[list[str]]:
    modules = {_module_name(p): p for p in (REPO / package).rglob("*.py")}
    graph = {m: sorted(i for i in _module_level_imports(p) if i in modules and i != m)
             for m, p in modules.items()}  # fmt: skip
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def walk(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in graph[module]:
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                walk(target)
        stack.pop()
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            walk(module)
    return cycles


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    assert _cycles(package) == []
