"""scaseg-export through typer's CliRunner: bad inputs (exit 2, one line, no files), the accuracy
gate failing on purpose (exit 1, per-class message), the happy path, and the engine note."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from export import cli
from tests.support.datasets import make_mmseg

runner = CliRunner()
# Generated calibration scenes: the tiny test checkpoints are not the bundled demo model, so
# INT8 needs its --calib-data named.
FAST = ["--input-size", "64x64", "--verify-frames", "2", "--calib-samples", "2",
        "--calib-data", "generated"]  # fmt: skip


def _run(args: list[str]):
    return runner.invoke(cli.app, list(args), prog_name="scaseg-export")


def _assert_bad_input(result, out_dir, match: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output  # one line, no traceback
    assert lines[0].startswith("scaseg-export: error:") and match in lines[0], lines[0]
    assert not out_dir.exists() or not any(out_dir.iterdir()), list(out_dir.iterdir())


def _args(ckpt, out, cache, *extra):
    return [
        "--checkpoint",
        str(ckpt),
        "--out",
        str(out),
        "--calib-cache",
        str(cache),
        *FAST,
        *extra,
    ]


def test_missing_checkpoint(tmp_path):
    out = tmp_path / "out"
    result = _run(_args(tmp_path / "nope.safetensors", out, tmp_path / "c"))
    _assert_bad_input(result, out, "does not exist")


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage" * 100)
    out = tmp_path / "out"
    _assert_bad_input(_run(_args(bad, out, tmp_path / "c")), out, "cannot read safetensors")


def test_wrong_class_count(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    result = _run(_args(tiny_checkpoint, out, tmp_path / "c", "--num-classes", "19"))
    _assert_bad_input(result, out, "has 8 classes but --num-classes 19")


@pytest.mark.parametrize("size", ["100x64", "64x70", "abc"])
def test_unsupported_size(tiny_checkpoint, tmp_path, size):
    out = tmp_path / "out"
    result = _run([*_args(tiny_checkpoint, out, tmp_path / "c"), "--input-size", size])
    assert result.exit_code == 2, result.output
    assert "multiple of 32" in result.output or "expected HxW" in result.output
    assert not out.exists()


def _int8(ckpt, tmp_path, calib) -> tuple:
    out = tmp_path / "out"
    args = _args(ckpt, out, tmp_path / "c", "--precision", "int8", "--calib-data", str(calib))
    return _run(args), out


def test_missing_calibration_folder(tiny_checkpoint, tmp_path):
    result, out = _int8(tiny_checkpoint, tmp_path, tmp_path / "no_such_dir")
    _assert_bad_input(result, out, "does not exist")


def test_empty_calibration_folder(tiny_checkpoint, tmp_path):
    (tmp_path / "empty").mkdir()
    result, out = _int8(tiny_checkpoint, tmp_path, tmp_path / "empty")
    _assert_bad_input(result, out, "has no images")


def test_non_image_files_in_calibration_folder(tiny_checkpoint, tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (folder / "notes.txt").write_text("hello")
    result, out = _int8(tiny_checkpoint, tmp_path, folder)
    _assert_bad_input(result, out, "not images: notes.txt")


def test_corrupt_image_in_calibration_folder(tiny_checkpoint, tmp_path):
    folder = tmp_path / "calib"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    result, out = _int8(tiny_checkpoint, tmp_path, folder)
    _assert_bad_input(result, out, "cannot decode image")


def test_unreadable_calibration_folder(tiny_checkpoint, tmp_path, monkeypatch):
    folder = tmp_path / "calib"
    folder.mkdir()
    import calibration.sources as sources

    # Root can read anything, so the permission check is simulated rather than chmod-ed.
    monkeypatch.setattr(sources, "_readable", lambda path: False)
    result, out = _int8(tiny_checkpoint, tmp_path, folder)
    _assert_bad_input(result, out, "is not readable")


def test_existing_artifact_needs_force(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiny.fp32.onnx").write_bytes(b"old")
    result = _run(_args(tiny_checkpoint, out, tmp_path / "c", "--no-verify"))
    assert result.exit_code == 2 and "pass --force" in result.output
    assert (out / "tiny.fp32.onnx").read_bytes() == b"old"  # nothing overwritten


@pytest.mark.slow
def test_all_precisions_written_with_sidecars_and_engine_note(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    # The untrained tiny model's logits are nearly tied, so INT8 flips many of them; this test is
    # about the files, not the budget (the trained model's gate is tested below).
    args = _args(tiny_checkpoint, out, tmp_path / "c", "--precision", "all", "--name", "m")
    result = _run([*args, "--int8-agreement", "80"])
    assert result.exit_code == 0, result.output
    for precision in ("fp32", "fp16", "int8"):
        meta = json.loads((out / f"m.{precision}.onnx.json").read_text())
        assert meta["precision"] == precision and meta["variant"] == "tiny"
        assert meta["input"]["name"] == "input" and meta["output"]["name"] == "logits"
        assert meta["extra"]["gate"]["passed"] is True
    int8 = json.loads((out / "m.int8.onnx.json").read_text())
    assert int8["calibration"]["method"] == "mse" and int8["calibration"]["samples"] == 2
    assert int8["hashes"]["calibration_data"] and int8["hashes"]["source_onnx"]
    assert json.loads((out / "m.fp16.onnx.json").read_text())["fp32_nodes"]
    assert "engines must be built on the target" in result.output
    assert f"scaseg-export build-engine {out}/m.int8.onnx" in result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"m.{p}.onnx{s}" for p in ("fp32", "fp16", "int8") for s in ("", ".json")
    )
    # The same export again (forced) reuses the calibration cache.
    again = _run(
        [*_args(tiny_checkpoint, out, tmp_path / "c", "--precision", "int8", "--name", "m"),
         "--force", "--int8-agreement", "80"]
    )  # fmt: skip
    assert again.exit_code == 0 and "cache hit" in again.output


@pytest.mark.slow
def test_gate_fails_on_deliberately_broken_int8_calibration(
    trained_tiny_checkpoint, tmp_path, monkeypatch
):
    """Every activation range shrunk 50x (corrupt scales): INT8 saturates and must fail the gate.

    (Constant-black calibration frames were tried first: on this model MinMax ranges from black
    frames still cost only ~0.4 mIoU points, so they do not make a reliable failure.)"""
    import export.int8.stage as stage

    real = stage.compute_ranges

    def broken(*args, **kwargs):
        return {k: (lo / 50, hi / 50) for k, (lo, hi) in real(*args, **kwargs).items()}

    monkeypatch.setattr(stage, "compute_ranges", broken)
    out = tmp_path / "out"
    val = make_mmseg(tmp_path / "val", count=8)  # generated scenes with their masks, demo ids
    args = _args(trained_tiny_checkpoint, out, tmp_path / "c", "--precision", "all")
    result = _run([*args, "--val-data", str(val.root)])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "int8 argmax agreement with PyTorch FP32" in text and "per-class agreement" in text
    assert "int8 mIoU" in text and "points below FP32" in text and "over by" in text
    assert "per-class IoU change (points): " in text and "road" in text
    assert (out / "tiny_trained.fp32.onnx").exists()  # the passing variants are written
    assert (out / "tiny_trained.fp16.onnx.json").exists()
    assert not (out / "tiny_trained.int8.onnx").exists()  # the failing one is not


def test_no_verify_skips_the_gate(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    result = _run(_args(tiny_checkpoint, out, tmp_path / "c", "--no-verify", "--engines", "no"))
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "tiny.fp32.onnx.json").read_text())
    assert "gate" not in meta["extra"]


def test_build_engine_without_tensorrt_is_a_one_line_error(tmp_path):
    onnx_file = tmp_path / "m.fp16.onnx"
    result = _run(["build-engine", str(onnx_file)])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_build_engine_builds_on_the_gpu_given_by_device(tmp_path, monkeypatch):
    import runtime.cuda_mem
    from export import trt_build

    onnx_file = tmp_path / "m.fp16.onnx"
    onnx_file.write_bytes(b"onnx")
    opened = []

    def fake_open_cuda(device=0, need_graphs=False):  # a fake: records which GPU was asked for
        opened.append(device)
        raise RuntimeError(f"fake CUDA: stop after opening GPU {device}")

    for name in ("read_meta", "check_external_data", "preflight"):
        monkeypatch.setattr(trt_build, name, lambda *a, **k: None)
    monkeypatch.setattr(trt_build.tc, "import_tensorrt", lambda: object())
    monkeypatch.setattr(runtime.cuda_mem, "open_cuda", fake_open_cuda)
    result = _run(["build-engine", str(onnx_file), "--device", "1"])
    assert opened == [1], result.output
    assert result.exit_code == 1 and "fake CUDA: stop after opening GPU 1" in result.output


def test_build_engine_is_a_listed_subcommand_and_export_still_runs_without_one():
    result = _run(["--help"])
    assert result.exit_code == 0 and "build-engine" in result.output
    result = _run(["--precision", "int9"])  # the export's own options, no subcommand
    assert result.exit_code == 2 and "int9" in result.output


def test_build_command_names_a_non_default_gpu(tmp_path):
    from export.trt_build import EngineOptions, build_command

    assert "--device" not in build_command(tmp_path / "m.onnx", EngineOptions())
    assert build_command(tmp_path / "m.onnx", EngineOptions(device=2)).endswith("--device 2")


def test_full_output_disk_is_one_line_naming_the_folder_and_leaves_nothing(
    tiny_checkpoint, tmp_path
):
    """A real 1 MiB tmpfs as --out: the tiny model's ONNX (~2 MB) does not fit."""
    from tests.support.tmpfs import small_tmpfs

    with small_tmpfs(tmp_path, "1m") as disk:
        out = disk / "art"
        result = _run(_args(tiny_checkpoint, out, tmp_path / "c"))
        lines = [
            line for line in result.output.splitlines() if line.startswith("scaseg-export: error:")
        ]
        assert result.exit_code == 1, result.output
        assert len(lines) == 1 and f"no space left on the disk of {out}" in lines[0], result.output
        assert "choose another --out" in lines[0] and "Traceback" not in result.output
        assert not out.exists() or list(out.iterdir()) == []  # no temp file, no partial artifact


@pytest.mark.parametrize(
    ("filename", "expect"),
    [
        (None, "set TMPDIR to a disk with room"),
        ("{tmp}/scaseg-export-x/model.onnx", "disk of {tmp}/scaseg-export-x while writing into it; nothing was placed half-written. Free some space or set TMPDIR"),
        ("/data/art/.m.fp32.abc.tmp.onnx", "disk of /data/art while writing into it; nothing was placed half-written. Free some space or choose another --out"),
    ],
)  # fmt: skip
def test_disk_full_messages_say_which_disk_and_the_fix(filename, expect):
    import errno
    import tempfile

    tmp = tempfile.gettempdir()
    err = OSError(errno.ENOSPC, "No space left on device", filename and filename.format(tmp=tmp))
    assert expect.format(tmp=tmp) in cli._disk_full(err)
    assert cli._disk_full(OSError(errno.EACCES, "Permission denied", "/x")) is None


def test_original_segnext_names_are_remapped_and_reported(tiny_model, tmp_path):
    """An mmseg 0.x checkpoint with the SegNeXt release's key names (mlp.dwconv.dwconv.*) and
    CLASSES/PALETTE in meta exports with no extra flag; the report and sidecar say what was
    renamed and where the classes came from."""
    from tests.support.checkpoints import save_mmseg0x_checkpoint

    names = [f"k{i}" for i in range(8)]
    palette = [[i, 2 * i, 3 * i] for i in range(8)]
    ckpt = save_mmseg0x_checkpoint(tiny_model, tmp_path / "segnext.pth", names, palette, True)
    out = tmp_path / "out"
    result = _run(_args(ckpt, out, tmp_path / "c", "--no-verify"))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "mmseg 0.x" in text and "remapped" in text and "mlp.dwconv.dwconv." in text
    meta = json.loads((out / "segnext.fp32.onnx.json").read_text())
    assert meta["class_names"] == names and meta["palette_rgb"] == palette
    (rule, count), *_ = meta["extra"]["remapped_keys"]
    assert "mlp.dwconv.dwconv." in rule and count > 0
