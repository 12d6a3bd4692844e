"""The demo model shipped in the runtime package: it is what scaseg-export makes from the shipped
weights (the two cannot drift), and a plain `pip install '.[cpu]'` with no torch runs it as
scaseg-run's default model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.bundled import BUNDLED_MODEL, bundled_model
from runtime.meta import read_meta, sha256_file

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "scaseg" / "weights" / "scaseg_t_demo.safetensors"


def test_bundled_model_is_there_with_its_sidecar_and_passes_its_hash_check():
    from runtime.meta import check_artifact_hash

    assert bundled_model() == BUNDLED_MODEL
    meta = read_meta(BUNDLED_MODEL)
    check_artifact_hash(BUNDLED_MODEL, meta)
    assert meta.precision == "fp32" and meta.variant == "t" and meta.extra["gate"]["passed"]
    assert meta.hashes["checkpoint"] == sha256_file(WEIGHTS)  # made from the shipped weights


@pytest.mark.slow
def test_bundled_model_is_what_the_export_makes_from_the_shipped_weights(tmp_path):
    """Same weights, same graph ops, same contract; bytes may differ with exporter versions.

    Weights are compared with a tolerance, not bit for bit: BatchNorm folding rounds differently
    on different CPUs (one ulp, 1.2e-7, between the Intel Xeon that wrote the shipped file and an
    AMD EPYC), so float equality would fail on a machine that is not wrong."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from export.pipeline import export_artifacts
    from export.request import ExportRequest

    export_artifacts(ExportRequest(out=tmp_path, name="scaseg_t_demo", verify=False))
    fresh, shipped = (onnx.load(str(p)) for p in (tmp_path / BUNDLED_MODEL.name, BUNDLED_MODEL))
    assert [n.op_type for n in fresh.graph.node] == [n.op_type for n in shipped.graph.node]
    weights = {t.name: numpy_helper.to_array(t) for t in shipped.graph.initializer}
    assert len(weights) == len(fresh.graph.initializer)
    for tensor in fresh.graph.initializer:
        fresh_w, shipped_w = numpy_helper.to_array(tensor), weights[tensor.name]
        assert fresh_w.dtype == shipped_w.dtype and fresh_w.shape == shipped_w.shape, tensor.name
        if np.issubdtype(fresh_w.dtype, np.floating):
            # a few ulps of float32 (relative 1e-6); anything larger is a different model
            np.testing.assert_allclose(fresh_w, shipped_w, rtol=1e-6, atol=1e-7,
                                       err_msg=tensor.name)  # fmt: skip
        else:
            np.testing.assert_array_equal(fresh_w, shipped_w, err_msg=tensor.name)
    a, b = read_meta(tmp_path / BUNDLED_MODEL.name), read_meta(BUNDLED_MODEL)
    for field in ("class_names", "palette_rgb", "input", "output", "preprocess", "output_kind"):
        assert getattr(a, field) == getattr(b, field), field


@pytest.mark.slow
@pytest.mark.parametrize("tree", ["repository", "runtime-stage"])
def test_fresh_install_without_torch_runs_the_default_model(tmp_path, tree):
    """A non-editable install of the cpu extra in a new venv (no torch, no export step), then
    `scaseg-run VIDEO --out o.mp4` with no --model, from a folder outside the repository.

    `runtime-stage` installs only what the Dockerfile's runtime stages copy (no scaseg/, export/,
    calibration/ or scenes/), so the runtime image is known to work without the build side."""
    from scenes import write_scene_video

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check"]  # fmt: skip
    only = runtime_stage_copies() if tree == "runtime-stage" else None
    src = _tracked_copy(tmp_path / "src", only)  # setuptools builds in the source tree: not ours
    if only is not None:
        assert not (src / "export").exists() and not (src / "scenes").exists()
    done = subprocess.run([*pip, f"{src}[cpu]"], capture_output=True, text=True, timeout=900)
    if done.returncode != 0 and "NewConnectionError" in done.stderr:
        pytest.skip("no network to the package index")
    assert done.returncode == 0, done.stderr[-2000:]
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode != 0  # the runtime install brought no torch
    video = tmp_path / "clip.mp4"
    write_scene_video(video, 0, 120, 160, 3)
    env = {k: v for k, v in os.environ.items() if k not in ("SCASEG_MODEL", "PYTHONPATH")}
    work = tmp_path / "elsewhere"
    work.mkdir()
    run = subprocess.run(
        [str(venv / "bin" / "scaseg-run"), str(video), "--out", "o.mp4", "--jsonl", "s.jsonl"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "scaseg_t_demo.fp32.onnx" in run.stderr and (work / "o.mp4").stat().st_size > 0
    lines = (work / "s.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)


def runtime_stage_copies() -> list[str]:
    """What the Dockerfile's runtime-cpu stage COPYs from the build context."""
    import re

    text = (REPO / "Dockerfile").read_text()
    stage = text.split("AS runtime-cpu", 1)[1].split("\nFROM ", 1)[0]
    sources = [m.split()[:-1] for m in re.findall(r"^COPY\s+(.+)$", stage, re.MULTILINE)]
    return [name.rstrip("/") for names in sources for name in names]


def _tracked_copy(dst: Path, only: list[str] | None = None) -> Path:
    """The repository's files git tracks or would track (not .venv, build or caches) under dst;
    with `only`, just those files and folders."""
    import shutil

    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True,
                            check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if only is not None and not any(name == o or name.startswith(f"{o}/") for o in only):
            continue
        source = REPO / name
        if source.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dst / name)
    return dst
