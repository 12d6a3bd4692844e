"""`import runtime`, `import runtime.cli` and `scaseg-run --help` work with torch, tensorrt and
pycuda blocked, and import none of the heavy optional modules."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("torch", "tensorrt", "pycuda", "cuda", "scaseg", "export", "calibration")

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


def run_blocked(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
        "COLUMNS": "120",
    }
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_blocker_really_blocks(tmp_path):
    result = run_blocked(tmp_path, "-c", "import torch")
    assert result.returncode != 0 and "blocked by test_import_isolation" in result.stderr


def test_import_runtime_and_cli_without_heavy_modules(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        import runtime, runtime.cli, runtime.segmenter, runtime.pipeline
        from runtime import Segmenter
        heavy = ("torch", "tensorrt", "pycuda", "cuda", "onnxruntime", "onnx", "openvino")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
        print("LOADED", loaded)
        """
    )
    result = run_blocked(tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout


def test_scaseg_run_help_without_heavy_modules(tmp_path):
    result = run_blocked(tmp_path, "-m", "runtime.cli", "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout and "--model" in result.stdout


def test_engine_without_tensorrt_is_a_one_line_error(tmp_path):
    import cv2
    import numpy as np

    from tests.tiny_onnx import build_tiny_model

    engine = build_tiny_model(
        tmp_path / "m.fp16.engine",  # a sidecar and placeholder bytes: TensorRT never gets that far
        precision="fp16",
        engine={"tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7"},
    )
    cv2.imwrite(str(tmp_path / "frame.png"), np.zeros((8, 8, 3), np.uint8))
    result = run_blocked(tmp_path, "-m", "runtime.cli", "frame.png", "--model", str(engine))
    assert result.returncode == 1, result.stderr
    assert "tensorrt is needed to run .engine files but is not installed" in result.stderr
    assert "Traceback" not in result.stderr
