"""module_closure: the files a bundle needs, found by reading imports (never by running them)."""

from __future__ import annotations

import pytest

from export.module_closure import module_closure


def _tree(root, files: dict[str, str]):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_follows_absolute_relative_lazy_and_submodule_imports(tmp_path):
    pkg = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import x\ndef f():\n    from . import c\n",
        "pkg/b.py": "import os\nx = 1\n",
        "pkg/c.py": "from .sub.d import y\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/d.py": "from .. import e\ny = 2\n",
        "pkg/e.py": "",
        "pkg/unused.py": "import pkg.a\n",
    })  # fmt: skip
    files = [p.as_posix() for p in module_closure(pkg, ["pkg.a"])]
    assert files == [
        "pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/c.py", "pkg/e.py",
        "pkg/sub/__init__.py", "pkg/sub/d.py",
    ]  # fmt: skip


def test_names_that_are_not_submodules_are_not_files(tmp_path):
    pkg = _tree(tmp_path, {"pkg/__init__.py": "VALUE = 1\n", "pkg/a.py": "from pkg import VALUE\n"})
    assert [p.as_posix() for p in module_closure(pkg, ["pkg.a"])] == [
        "pkg/__init__.py",
        "pkg/a.py",
    ]


def test_a_stale_entry_is_an_internal_error(tmp_path):
    pkg = _tree(tmp_path, {"pkg/__init__.py": ""})
    with pytest.raises(RuntimeError, match="internal"):
        module_closure(pkg, ["pkg.gone"])
