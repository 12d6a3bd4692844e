"""The real commands (scaseg-run, scaseg-eval, scaseg-export) on hostile files: names that are
not UTF-8 (OpenCV segfaulted on them), FIFOs (the run hung), image headers that claim billions of
pixels, a video header that claims 60 million frames. Each ends in a clean run or in one error
line with exit 2, never a crash, a hang or a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.hostile_files import (
    lying_mkv,
    make_fifo,
    non_utf8_path,
    png_claiming,
    write_png,
)

REPO = Path(__file__).resolve().parents[2]


def _cli(module: str, argv: list, cwd: Path, timeout_s: float = 90) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    env.pop("SCASEG_MODEL", None)
    args = [sys.executable, "-m", module, *(os.fsencode(a) for a in argv)]
    done = subprocess.run(args, cwd=cwd, capture_output=True, timeout=timeout_s, env=env)
    out = done.stdout.decode("utf-8", "backslashreplace")
    err = done.stderr.decode("utf-8", "backslashreplace")
    return subprocess.CompletedProcess(done.args, done.returncode, out, err)


def _one_error(result: subprocess.CompletedProcess, *words: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"exit {result.returncode}: {output}"
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def _frames(folder: Path, count: int = 2) -> Path:
    folder.mkdir()
    for i in range(count):
        write_png(folder / f"f{i}.png", np.full((64, 64, 3), 40 * i, np.uint8))
    return folder


# --- scaseg-run -------------------------------------------------------------------------------


def test_run_reads_images_whose_names_are_not_utf8(tmp_path, plain_model):
    folder = _frames(tmp_path / "frames")
    write_png(non_utf8_path(folder, ".png"), np.zeros((64, 64, 3), np.uint8))
    result = _cli("runtime.cli", [folder, "--model", plain_model, "--out", "o.mp4"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr  # was -11: a segfault
    assert "done: 3 frames" in result.stdout


def test_run_refuses_a_video_name_that_is_not_utf8(tmp_path, plain_model, small_video):
    video = non_utf8_path(tmp_path, ".mp4")
    video.write_bytes(small_video.read_bytes())
    result = _cli("runtime.cli", [video, "--model", plain_model, "--out", "o.mp4"], tmp_path)
    _one_error(result, "fr\\xe9me.mp4", "not valid UTF-8", "rename it")


def test_run_skips_a_fifo_in_an_image_folder(tmp_path, plain_model):
    folder = _frames(tmp_path / "frames")
    make_fifo(folder / "f1b.png", unblock_after_s=60)
    result = _cli("runtime.cli", [folder, "--model", plain_model, "--out", "o.mp4"], tmp_path, 45)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning:" in result.stderr and "skipped 1 entry that is not a regular file" in (
        result.stderr
    )
    assert "done: 2 frames" in result.stdout


def test_run_refuses_an_image_claiming_billions_of_pixels(tmp_path, plain_model):
    (tmp_path / "huge.png").write_bytes(png_claiming(60000, 60000))
    result = _cli("runtime.cli", ["huge.png", "--model", plain_model, "--out", "o.mp4"], tmp_path)
    _one_error(result, "huge.png", "60000x60000", "SCASEG_MAX_IMAGE_PIXELS")
    assert not (tmp_path / "o.mp4").exists()


def test_run_does_not_believe_a_frame_count_the_file_cannot_hold(tmp_path, plain_model):
    video = lying_mkv(tmp_path / "lie.mkv", frames=3, claimed=60_000_000)
    result = _cli("runtime.cli", [video, "--model", plain_model, "--out", "o.mp4"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "its header claims 60,000,000 frames" in result.stderr
    assert "60000000" not in result.stdout + result.stderr  # no progress total, no "expected"
    assert "done: 3 frames" in result.stdout


# --- scaseg-eval ------------------------------------------------------------------------------


def _val_folders(tmp_path: Path) -> tuple[Path, Path]:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for name in ("a", os.fsdecode(b"fr\xe9me")):
        write_png(images / f"{name}.png", np.full((64, 64, 3), 80, np.uint8))
        write_png(masks / f"{name}.png", np.ones((64, 64), np.uint8))
    return images, masks


def test_eval_reads_pairs_whose_names_are_not_utf8(tmp_path, plain_model):
    images, masks = _val_folders(tmp_path)
    argv = [plain_model, "--val-data", images, "--val-masks", masks]
    result = _cli("export.eval_cli", argv, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr  # was -11: a segfault
    assert "mIoU" in result.stdout


def test_eval_refuses_a_mask_claiming_billions_of_pixels(tmp_path, plain_model):
    images, masks = _val_folders(tmp_path)
    (masks / "a.png").write_bytes(png_claiming(60000, 60000, 8, 0))
    argv = [plain_model, "--val-data", images, "--val-masks", masks]
    _one_error(_cli("export.eval_cli", argv, tmp_path), "mask", "a.png", "SCASEG_MAX_IMAGE_PIXELS")


# --- scaseg-export ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from scaseg.checkpoint import save_checkpoint
    from scaseg.model import build_model
    from scenes.classes import DEMO_CLASSES, DEMO_PALETTE_RGB

    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    info = {"variant": "tiny", "num_classes": 8, "class_names": list(DEMO_CLASSES[:8]),
            "palette_rgb": [list(c) for c in DEMO_PALETTE_RGB[:8]]}  # fmt: skip
    save_checkpoint(build_model("tiny", 8), path, info)
    return path


def _export_int8(ckpt: Path, calib: Path) -> list:
    return ["--checkpoint", ckpt, "--out", "out", "--calib-cache", "cache", "--engines", "no",
            "--input-size", "64x64", "--verify-frames", "2", "--calib-samples", "2",
            "--precision", "int8", "--calib-data", calib]  # fmt: skip


def test_export_names_a_calibration_image_that_is_not_utf8_escaped(tmp_path, tiny_checkpoint):
    folder = _frames(tmp_path / "calib")
    non_utf8_path(folder, ".png").write_bytes(png_claiming(60000, 60000))
    result = _cli("export.cli", _export_int8(tiny_checkpoint, folder), tmp_path)
    _one_error(result, "fr\\xe9me.png", "60000x60000", "SCASEG_MAX_IMAGE_PIXELS")


def test_export_refuses_a_calibration_video_name_that_is_not_utf8(tmp_path, tiny_checkpoint):
    video = non_utf8_path(tmp_path, ".mkv")
    lying_mkv(tmp_path / "ok.mkv", frames=3, claimed=3).rename(video)
    result = _cli("export.cli", _export_int8(tiny_checkpoint, video), tmp_path)
    _one_error(result, "fr\\xe9me.mkv", "not valid UTF-8", "rename it")
