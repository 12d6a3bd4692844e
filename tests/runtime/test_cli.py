"""scaseg-run end to end: outputs, exit codes, one-line errors, and clean interrupts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.cli import app, default_model_path

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def run_cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_run_writes_every_output(tmp_path, plain_model, small_video, decoded_frames):
    out, labels, stats = tmp_path / "o.mp4", tmp_path / "labels", tmp_path / "s.jsonl"
    result = run_cli(small_video, "--model", plain_model, "--out", out, "--labels-out", labels,
                     "--jsonl", stats, "--provider", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "done: 10 frames" in result.output
    assert decoded_frames(out) == (10, (80, 60))
    assert len(list(labels.glob("*.png"))) == 10 and (labels / ".scaseg-output").is_file()
    assert len(stats.read_text().splitlines()) == 10


def test_avc1_request_warns_and_falls_back(tmp_path, plain_model, small_video, decoded_frames):
    result = run_cli(
        small_video, "--model", plain_model, "--out", tmp_path / "o.mp4", "--codec", "avc1"
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"warning: codec avc1 is not available.*mp4v instead", result.output)
    assert decoded_frames(tmp_path / "o.mp4")[0] == 10


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["missing.mp4"], 2, "error: source missing.mp4 not found"),
        (["{video}", "--out", "{video}"], 2, "is the input"),
        (["{video}", "--out", "{existing}"], 2, "already exists; pass --force"),
        (
            ["{video}", "--provider", "cuda"],
            1,
            "--provider cuda was requested but CUDAExecutionProvider did not load",
        ),
        (["{video}", "--out", "x.gif"], 2, "video output must end in one of"),
        (["{video}", "--codec", "h264x"], 2, "codec must be a 4-character FourCC"),
        (["{video}", "--alpha", "2"], 2, "Invalid value for '--alpha'"),
    ],
)
def test_bad_input_is_one_line_with_exit_code(
    tmp_path, plain_model, small_video, monkeypatch, args, code, message
):
    import onnxruntime as ort

    if "cuda" in args and "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA may load here")
    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "existing.mp4"
    existing.write_bytes(b"old")
    filled = [a.format(video=small_video, existing=existing) for a in args]
    result = run_cli(*filled, "--model", plain_model)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert existing.read_bytes() == b"old"


def test_show_without_a_display_fails_before_loading(small_video, plain_model, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = run_cli(small_video, "--model", plain_model, "--show")
    assert result.exit_code == 2 and "--show needs a display" in result.output
    assert "CPUExecutionProvider" not in result.output  # refused before the model loaded


def test_no_model_anywhere_tells_the_user_what_to_do(small_video, monkeypatch, tmp_path):
    import runtime.bundled

    monkeypatch.delenv("SCASEG_MODEL", raising=False)
    monkeypatch.setattr(runtime.bundled, "BUNDLED_MODEL", tmp_path / "gone.onnx")
    assert default_model_path() is None
    result = run_cli(small_video)
    assert result.exit_code == 2
    assert "pass --model PATH" in result.output and "scaseg-export" in result.output


def test_scaseg_model_env_is_the_default(small_video, plain_model, monkeypatch, tmp_path):
    monkeypatch.setenv("SCASEG_MODEL", str(plain_model))
    assert default_model_path() == plain_model
    result = run_cli(small_video, "--max-frames", "3", "--out", tmp_path / "o.mp4")
    assert result.exit_code == 0 and "done: 3 frames" in result.output


def test_force_replaces_an_existing_output(tmp_path, plain_model, small_video, decoded_frames):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"old")
    result = run_cli(small_video, "--model", plain_model, "--out", out, "--force")
    assert result.exit_code == 0 and decoded_frames(out)[0] == 10


def test_debug_shows_the_traceback(plain_model):
    from runtime.io.source_types import SourceError

    plain = run_cli("missing.mp4", "--model", plain_model)
    assert plain.exit_code == 2 and isinstance(plain.exception, SystemExit)  # one line, no raise
    debug = run_cli("missing.mp4", "--model", plain_model, "--debug")
    assert isinstance(debug.exception, SourceError)  # re-raised: the runner got the traceback


def test_threads_and_device_reach_the_backend(small_video, plain_model, monkeypatch):
    import runtime.cli

    seen = {}

    def fake_execute(args):
        seen["options"] = args.options
        return 0

    monkeypatch.setattr(runtime.cli, "execute", fake_execute)
    result = run_cli(small_video, "--model", plain_model, "--threads", "3", "--device", "1")
    assert result.exit_code == 0, result.output
    assert seen["options"].intra_op_threads == 3 and seen["options"].device == 1


def test_missing_model_names_the_flag(small_video, tmp_path):
    result = run_cli(small_video, "--model", tmp_path / "gone.onnx")
    assert result.exit_code == 2
    assert "gone.onnx not found; pass --model" in result.output


def test_help_has_examples():
    result = run_cli("--help")
    assert result.exit_code == 0
    assert result.output.count("Example") >= 10


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", *args], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_frames(
    jsonl_dir: Path, proc: subprocess.Popen, minimum: int, timeout_s: float = 30.0
):
    """Wait until the run's (temp) JSON lines file shows `minimum` frames processed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        for path in jsonl_dir.glob(".s.*.tmp.jsonl"):
            if len(path.read_text().splitlines()) >= minimum:
                return
        time.sleep(0.1)
    raise AssertionError(f"run did not reach {minimum} frames: {proc.communicate(timeout=5)}")


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_leaves_a_playable_video_with_every_frame_so_far(
    tmp_path, plain_model, make_video, decoded_frames, signum, code
):
    video = make_video(tmp_path / "long.mp4", num_frames=50)
    proc = _start(
        [str(video), "--model", str(plain_model), "--out", "o.mp4", "--jsonl", "s.jsonl", "--loop"],
        tmp_path,
    )
    _wait_for_frames(tmp_path, proc, minimum=20)
    time.sleep(1.0)  # "after a few seconds" of running
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    reported = int(re.search(r"interrupted \(SIG\w+\) after (\d+) frames", stdout).group(1))
    assert reported > 20
    assert decoded_frames(tmp_path / "o.mp4") == (reported, (80, 60))
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert len(lines) == reported and json.loads(lines[-1])["frame"] == reported - 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4", "o.mp4", "s.jsonl"]


def test_segment_minutes_cuts_the_video_into_numbered_files(
    tmp_path, plain_model, make_video, decoded_frames
):
    clip = make_video(tmp_path / "clip.mp4", num_frames=25, fps=25.0)
    # 0.004 min at 25 FPS = 6 frames per file -> 6, 6, 6, 6, 1
    result = run_cli(clip, "--model", plain_model, "--out", tmp_path / "o.mp4",
                     "--segment-minutes", "0.004", "--provider", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("o_*.mp4"))
    assert [p.name for p in files] == [f"o_{i:05d}.mp4" for i in range(5)]
    assert [decoded_frames(p)[0] for p in files] == [6, 6, 6, 6, 1]
    assert "25 frames in 5 file(s)" in result.output
    again = run_cli(clip, "--model", plain_model, "--out", tmp_path / "o.mp4",
                    "--segment-minutes", "0.004")  # fmt: skip
    assert again.exit_code == 2 and "--force" in again.output
    bad = run_cli(
        clip, "--model", plain_model, "--out", tmp_path / "p.mp4", "--segment-minutes", "-1"
    )
    assert bad.exit_code == 2 and "--segment-minutes must be > 0" in bad.output
