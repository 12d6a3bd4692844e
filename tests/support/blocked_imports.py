"""Run Python in a child process where torch, tensorrt, pycuda and our heavy packages are blocked."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCKED = ("torch", "tensorrt", "pycuda", "cuda", "scaseg", "export", "calibration", "scenes")

# Installed as sitecustomize in the child: any import of a blocked package raises ImportError,
# exactly as on a device where they are not installed.
SITECUSTOMIZE = textwrap.dedent(
    f"""
    import sys

    BLOCKED = {BLOCKED!r}

    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked by test_import_isolation")
            return None

    sys.meta_path.insert(0, _Blocker())
    """
)


def run_blocked(tmp_path: Path, *args: str, repo: bool = True) -> subprocess.CompletedProcess:
    """`repo=False` leaves this source tree off PYTHONPATH (for code that must carry its own)."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *([str(REPO)] if repo else [])]),
        "COLUMNS": "120",
    }
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
