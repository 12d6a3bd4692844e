"""`import runtime`, `import runtime.cli` and `scaseg-run --help` work with torch, tensorrt and
pycuda blocked, and import none of the heavy optional modules."""

from __future__ import annotations

import textwrap

from tests.support.blocked_imports import run_blocked


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

    from tests.support.tiny_onnx import build_tiny_model

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


def test_every_runtime_module_imports_without_scenes_export_calibration_or_torch(tmp_path):
    """What ships to a device: each runtime module imports with the build-side packages absent."""
    code = textwrap.dedent(
        """
        import importlib, pkgutil, runtime
        names = [m.name for m in pkgutil.walk_packages(runtime.__path__, "runtime.")]
        for name in names:
            importlib.import_module(name)
        print("IMPORTED", len(names))
        """
    )
    result = run_blocked(tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr
    count = int(result.stdout.split("IMPORTED")[1])
    assert count >= 40  # the walk really found the package's modules (io/, profiling/, backends/)


def test_profile_generated_source_runs_without_the_scene_generator(tmp_path):
    """scaseg-profile's default source is made by the runtime itself, so it works on a device."""
    import json

    from tests.support.tiny_onnx import build_tiny_model

    model = build_tiny_model(tmp_path / "m.fp32.onnx")
    result = run_blocked(
        tmp_path, "-m", "runtime.profiling.cli", str(model), "--frames", "3", "--warmup", "1",
        "--no-png", "--out", str(tmp_path / "prof"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "prof" / "profile.json").read_text())
    assert report["run"]["source"] == "generated"


def test_no_runtime_source_imports_the_build_side_even_lazily():
    """Read, not run: an import inside a function would pass the blocked-import tests until the
    code path is taken."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "runtime"
    banned = {"torch", "scaseg", "export", "calibration", "scenes"}
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            found += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in banned]
    assert found == []
