"""scaseg-profile and scaseg-run --profile end to end on tiny real ONNX models."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from runtime.cli import app as run_app
from runtime.profiling.cli import app
from tests.support.blocked_imports import run_blocked
from tests.support.profile_reports import make_report

runner = CliRunner()
ALL_STAGES = ["decode", "preprocess", "infer", "postprocess", "encode"]


def profile(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_profile_writes_every_file_with_every_field(tmp_path, plain_model):
    out = tmp_path / "prof"
    result = profile(plain_model, "--frames", 6, "--warmup", 2, "--layers", "--layer-runs", 2,
                     "--out", out, "--provider", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["layers.csv", "op_types.csv", "profile.json", "profile.png", "stages.csv"]
    report = json.loads((out / "profile.json").read_text())
    assert list(report["stages"]) == ALL_STAGES  # no h2d/d2h on ONNX Runtime CPU
    assert report["end_to_end"]["count"] == 6 and report["run"]["mode"] == "sequential"
    assert report["run"]["source"] == "generated"
    assert report["layers"]["runs"] == 2 and report["layers"]["layers"]
    assert report["memory"]["rss_peak_mb"] > 0
    env = report["environment"]
    assert env["backend"]["providers_loaded"] == ["CPUExecutionProvider"]
    assert env["versions"]["onnxruntime"] and env["cpu"]["model"]
    assert "end to end" in result.output and "top 10 layers" in result.output


def test_profile_of_a_video_source(tmp_path, plain_model, small_video):
    result = profile(plain_model, "--frames", 12, "--warmup", 0, "--source", small_video,
                     "--out", tmp_path / "p", "--no-png")  # fmt: skip
    assert result.exit_code == 0, result.output  # 10-frame video, looped to 12 frames
    report = json.loads((tmp_path / "p" / "profile.json").read_text())
    assert report["end_to_end"]["count"] == 12 and not (tmp_path / "p" / "profile.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a MODEL to profile"),
        (["missing.onnx"], "model missing.onnx not found"),
        (["{model}", "--source", "nope.mp4"], "source nope.mp4 not found"),
        (["{model}", "--out", "{existing}"], "already exists; pass --force"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, plain_model, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "old"
    existing.mkdir()
    (existing / "profile.json").write_text("{}")
    result = profile(*(a.format(model=plain_model, existing=existing) for a in args))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cuda_graph_is_for_tensorrt_engines_only(tmp_path, plain_model):
    result = profile(plain_model, "--cuda-graph", "--out", tmp_path / "prof")
    assert result.exit_code == 2, result.output
    assert "--cuda-graph applies to TensorRT engines" in result.output


def test_cuda_graph_and_threads_reach_the_backend(tmp_path, plain_model, monkeypatch):
    import runtime.profiling.cli

    seen = {}
    monkeypatch.setattr(runtime.profiling.cli, "execute", lambda args: seen.update(args=args))
    result = profile(plain_model, "--cuda-graph", "--threads", "2", "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    assert seen["args"].options.cuda_graph and seen["args"].options.intra_op_threads == 2


def _write(path, report):
    path.write_text(json.dumps(report))
    return path


def test_compare_prints_ratios_and_fails_over_a_threshold(tmp_path):
    a = _write(tmp_path / "a.json", make_report(10.0))
    b = _write(tmp_path / "b.json", make_report(20.0))
    result = profile("--compare", a, b)
    assert result.exit_code == 0, result.output
    assert "B / A" in result.output and "1.95x" in result.output  # infer p50 20.5 / 10.5
    assert profile("--compare", a, b, "--fail-over", "1.5").exit_code == 1
    assert profile("--compare", a, b, "--fail-over", "2.0").exit_code == 0
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    result = profile("--compare", a, bad)
    assert result.exit_code == 2 and "schema_version None" in result.output


def test_scaseg_run_profile_times_the_pipelined_run(tmp_path, plain_model, small_video):
    prof = tmp_path / "runprof"
    result = runner.invoke(run_app, [str(small_video), "--model", str(plain_model), "--out",
                                     str(tmp_path / "o.mp4"), "--profile", str(prof)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "done: 10 frames" in result.output  # scaseg-run's own summary is unchanged
    report = json.loads((prof / "profile.json").read_text())
    assert report["tool"] == "scaseg-run --profile" and report["run"]["mode"] == "pipelined"
    assert list(report["stages"]) == ALL_STAGES
    assert report["end_to_end"]["count"] == 5  # 10 frames - 5 warm-up (the default)
    assert (prof / "profile.png").exists() and (tmp_path / "o.mp4").exists()


def test_scaseg_run_profile_refuses_to_overwrite_a_report(tmp_path, plain_model, small_video):
    prof = tmp_path / "p"
    prof.mkdir()
    (prof / "profile.json").write_text("{}")
    result = runner.invoke(
        run_app, [str(small_video), "--model", str(plain_model), "--profile", str(prof)]
    )
    assert result.exit_code == 2 and "already exists; pass --force" in result.output


def test_profile_help_and_imports_need_no_heavy_modules(tmp_path):
    result = run_blocked(tmp_path, "-m", "runtime.profiling.cli", "--help")
    assert result.returncode == 0, result.stderr
    assert "--compare" in result.stdout and "--layers" in result.stdout
    code = (
        "import sys, runtime.profiling.profiler, runtime.profiling.report, runtime.profiling.envinfo, runtime.profiling.layer_profile\n"
        "heavy = ('torch', 'tensorrt', 'pycuda', 'cuda', 'onnxruntime', 'onnx', 'matplotlib')\n"
        "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    result = run_blocked(tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout


def test_engine_without_tensorrt_is_a_one_line_error(tmp_path):
    from tests.support.tiny_onnx import build_tiny_model

    engine = build_tiny_model(
        tmp_path / "m.fp16.engine",  # a sidecar and placeholder bytes: TensorRT never gets that far
        precision="fp16",
        engine={"tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7"},
    )
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "frame.png"), np.zeros((8, 8, 3), np.uint8))
    result = run_blocked(
        tmp_path, "-m", "runtime.profiling.cli", str(engine), "--frames", "1",
        "--source", str(tmp_path / "frame.png"),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "tensorrt is needed to run .engine files but is not installed" in result.stderr
    assert "Traceback" not in result.stderr
