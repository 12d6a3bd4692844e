"""The Python-backend model of a generated Triton repository runs on what its folder carries: the
runtime modules it imports, and nothing of scaseg's build side (scenes, export, calibration,
torch), which the test blocks."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from export.triton_repo import write_triton_repo
from tests.support.blocked_imports import run_blocked
from tests.support.deploy_models import build_model

SUPPORT = Path(__file__).resolve().parents[1] / "support"


def test_bundle_holds_only_what_serving_imports(tmp_path):
    onnx = build_model(tmp_path / "tiny.fp32.onnx")
    version = write_triton_repo([onnx], tmp_path / "repo", model_name="seg") / "seg" / "1"
    bundled = {p.relative_to(version).as_posix() for p in (version / "runtime").rglob("*.py")}
    assert {"runtime/segmenter.py", "runtime/preprocess.py", "runtime/meta.py"} <= bundled
    assert "runtime/backends/ort_backend.py" in bundled
    for left_out in ("runtime/cli.py", "runtime/io/sinks.py", "runtime/profiling/cli.py"):
        assert left_out not in bundled, left_out
    assert not (version / "runtime" / "models").exists()


def test_bundled_model_serves_with_build_side_packages_blocked(tmp_path):
    onnx = build_model(tmp_path / "tiny.fp32.onnx")
    version = write_triton_repo([onnx], tmp_path / "repo", model_name="seg") / "seg" / "1"
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    shutil.copy(SUPPORT / "fake_triton.py", stubs / "fake_triton.py")  # needs numpy only
    code = textwrap.dedent(
        f"""
        import importlib.util, json, sys
        sys.path.insert(0, {str(stubs)!r})
        import numpy as np
        from fake_triton import fake_pb_utils, image_tensor
        sys.modules["triton_python_backend_utils"] = fake_pb_utils()
        spec = importlib.util.spec_from_file_location("model", {str(version / "model.py")!r})
        model = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(model)
        m = model.TritonPythonModel()
        config = {{"name": "seg", "parameters": {{"artifact": {{"string_value": {onnx.name!r}}}}}}}
        m.initialize({{"model_config": json.dumps(config), "model_instance_kind": "CPU"}})
        frames = np.zeros((2, 30, 44, 3), np.uint8)
        (response,) = m.execute([{{"image": image_tensor(frames)}}])
        assert response.error is None, response.error
        print("SHAPE", response.output_tensors[0].as_numpy().shape)
        outside = sorted(
            n for n, mod in sys.modules.items()
            if n.split(".")[0] == "runtime"
            and not str(getattr(mod, "__file__", "") or "").startswith({str(version)!r})
        )
        print("OUTSIDE", outside)
        m.finalize()
        """
    )
    result = run_blocked(tmp_path, "-c", code, repo=False)
    assert result.returncode == 0, result.stderr
    assert "SHAPE (2, 30, 44)" in result.stdout
    assert "OUTSIDE []" in result.stdout  # every runtime module came from the bundle
