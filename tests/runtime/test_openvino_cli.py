"""scaseg-run / scaseg-profile with --backend openvino, --device and --ov-precision, through the real
CLIs in subprocesses (real exit codes and stderr), OpenVINO included or blocked."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("openvino")
from runtime.meta import read_meta, write_meta
from tests.support.tiny_onnx import build_tiny_model

REPO = Path(__file__).resolve().parents[2]
# Installed as sitecustomize in the child: `import openvino` fails as where it is not installed.
BLOCK_OPENVINO = textwrap.dedent(
    """
    import sys

    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "openvino":
                raise ImportError(f"{name} is blocked by test_openvino_cli")
            return None

    sys.meta_path.insert(0, _Blocker())
    """
)


def _cli(module: str, *args: str, tmp: Path, block_openvino: bool = False):
    paths = [str(REPO)]
    if block_openvino:
        (tmp / "site").mkdir(exist_ok=True)
        (tmp / "site" / "sitecustomize.py").write_text(BLOCK_OPENVINO)
        paths.insert(0, str(tmp / "site"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=tmp, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.fixture
def setup(tmp_path):
    model = build_tiny_model(tmp_path / "tiny.onnx")
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (48, 80, 3), np.uint8))
    return model, image


def _read_labels(path: Path) -> np.ndarray:
    """Class ids of a palettised label PNG (cv2 would return its colours)."""
    image = pytest.importorskip("PIL.Image")
    return np.asarray(image.open(path))


def _one_line_error(result, code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_run_on_openvino_writes_the_same_labels_as_onnx_runtime(setup, tmp_path):
    model, image = setup
    labels = {}
    for backend in ("openvino", "onnxruntime"):
        out = tmp_path / f"labels_{backend}"
        result = _cli("runtime.cli", str(image), "-m", str(model), "--backend", backend,
                      "--labels-out", str(out), tmp=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        (png,) = out.glob("*.png")
        labels[backend] = _read_labels(png)
    assert "on openvino" in _stderr_first(
        tmp_path, model, image
    ) and "inference precision f32" in _stderr_first(tmp_path, model, image)
    assert (labels["openvino"] == labels["onnxruntime"]).mean() == 1.0


def _stderr_first(tmp_path, model, image) -> str:
    result = _cli("runtime.cli", str(image), "-m", str(model), "--backend", "openvino",
                  "--jsonl", str(tmp_path / "x.jsonl"), "--force", tmp=tmp_path)  # fmt: skip
    return result.stderr.splitlines()[0]


def test_openvino_not_installed_is_one_line_with_the_install_hint(setup, tmp_path):
    model, image = setup
    result = _cli("runtime.cli", str(image), "-m", str(model), "--backend", "openvino",
                  "--jsonl", str(tmp_path / "s.jsonl"), tmp=tmp_path, block_openvino=True)  # fmt: skip
    line = _one_line_error(result, code=1)
    assert "openvino is needed to run .onnx models on OpenVINO" in line
    assert "pip install 'scaseg[openvino]'" in line
    assert not (tmp_path / "s.jsonl").exists()


def test_auto_without_openvino_runs_onnx_runtime_and_says_why(setup, tmp_path):
    model, image = setup
    write_meta(model, _gated(read_meta(model)))
    result = _cli("runtime.cli", str(image), "-m", str(model), "--jsonl", str(tmp_path / "s.jsonl"),
                  tmp=tmp_path, block_openvino=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "onnxruntime" in result.stderr and "(auto: OpenVINO is not installed" in result.stderr


def test_auto_picks_openvino_for_a_verified_artifact(setup, tmp_path):
    model, image = setup
    write_meta(model, _gated(read_meta(model)))
    result = _cli("runtime.cli", str(image), "-m", str(model), "--jsonl", str(tmp_path / "s.jsonl"),
                  tmp=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        "on openvino" in result.stderr and "(auto: x86 CPU, verified on OpenVINO" in result.stderr
    )


def test_device_that_does_not_exist_lists_the_available_ones(setup, tmp_path):
    model, image = setup
    result = _cli("runtime.cli", str(image), "-m", str(model), "--backend", "openvino",
                  "--device", "NPU", "--jsonl", str(tmp_path / "s.jsonl"), tmp=tmp_path)  # fmt: skip
    line = _one_line_error(result)
    assert "--device NPU: OpenVINO has no device NPU here; available: CPU" in line


def test_openvino_on_an_engine_is_refused(tmp_path):
    engine = build_tiny_model(tmp_path / "tiny.engine")
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    result = _cli("runtime.cli", str(image), "-m", str(engine), "--backend", "openvino",
                  "--jsonl", str(tmp_path / "s.jsonl"), tmp=tmp_path)  # fmt: skip
    line = _one_line_error(result)
    assert "--backend openvino runs .onnx models; tiny.engine is a TensorRT engine" in line


def test_ov_precision_on_onnx_runtime_is_refused(setup, tmp_path):
    model, image = setup
    result = _cli("runtime.cli", str(image), "-m", str(model), "--backend", "onnxruntime",
                  "--ov-precision", "bf16", "--jsonl", str(tmp_path / "s.jsonl"), tmp=tmp_path)  # fmt: skip
    assert "--ov-precision applies to OpenVINO" in _one_line_error(result)


def test_profile_on_openvino_with_layers_records_precision_and_device(setup, tmp_path):
    model, _ = setup
    out = tmp_path / "prof"
    result = _cli("runtime.profiling.cli", str(model), "--backend", "openvino", "--ov-precision", "f32",
                  "--frames", "3", "--warmup", "1", "--layers", "--layer-runs", "2", "--no-png",
                  "--out", str(out), tmp=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "profile.json").read_text())
    backend = report["environment"]["backend"]
    assert backend["inference_precision"] == "f32" and backend["device"] == "CPU"
    assert report["environment"]["versions"]["openvino"]
    assert "PERF_COUNT" in report["layers"]["source"]
    assert any(t["op_type"] == "Convolution" for t in report["layers"]["op_types"])


def _gated(meta):
    gate = {
        "openvino": {
            "passed": True,
            "agreement": 0.999,
            "inference_precision": "f32",
            "latency_ms": 1.0,
        }
    }
    return dataclasses.replace(meta, extra={**meta.extra, "gate": gate})


@pytest.mark.slow
def test_label_maps_on_a_real_street_video_agree_with_onnx_runtime(tmp_path):
    """scaseg-run on real frames (bikes.mp4): OpenVINO FP32 (f32) gives ONNX Runtime's label maps;
    the INT8 (Q/DQ, exporter's quantizer) artifact on OpenVINO stays close to them."""
    from export.int8.quantize import quantize_int8
    from runtime.meta import sha256_file
    from tests.support.real_video import real_video_or_skip

    video = real_video_or_skip()
    fp32 = build_tiny_model(tmp_path / "tiny.fp32.onnx")
    int8 = tmp_path / "tiny.int8.onnx"
    quantize_int8(fp32, int8, {"input": (-2.2, 2.7)}, "minmax")  # the normalised pixel range
    meta = read_meta(fp32)
    write_meta(
        int8, dataclasses.replace(meta, precision="int8", hashes={"artifact": sha256_file(int8)})
    )

    def labels(model, backend):
        out = tmp_path / f"{model.stem}_{backend}"
        result = _cli("runtime.cli", str(video), "-m", str(model), "--backend", backend,
                      "--labels-out", str(out), "--max-frames", "40", tmp=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return [_read_labels(p) for p in sorted(out.glob("*.png"))]

    ref = labels(fp32, "onnxruntime")
    assert len(ref) == 40
    for model, minimum in ((fp32, 0.999), (int8, 0.95)):
        got = labels(model, "openvino")
        agree = np.mean([np.mean(a == b) for a, b in zip(got, ref, strict=True)])
        assert agree >= minimum, (model.name, agree)
