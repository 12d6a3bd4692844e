"""Atomic placement: a failing writer leaves nothing at the final path; --force semantics."""

from __future__ import annotations

import pytest

from export import artifacts
from runtime.meta import ModelMeta, TensorSpec
from runtime.preprocess import Preprocess

META = ModelMeta(
    variant="tiny",
    precision="fp32",
    class_names=("a",),
    palette_rgb=((0, 0, 0),),
    input=TensorSpec("input", "float32", "NCHW", (1, 3, 64, 64)),
    output=TensorSpec("logits", "float32", "NCHW", (1, 1, 16, 16)),
    output_kind="logits",
    output_stride=4,
    preprocess=Preprocess(64, 64),
)


def test_failing_copy_leaves_nothing(tmp_path, monkeypatch):
    staged = tmp_path / "staged.onnx"
    staged.write_bytes(b"x" * 1000)
    target = tmp_path / "out" / "m.fp32.onnx"

    def half_then_crash(src, dst):
        with open(dst, "wb") as f:
            f.write(b"x" * 10)  # a partial write, then the writer dies
        raise OSError("disk full")

    monkeypatch.setattr(artifacts.shutil, "copyfile", half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        artifacts.place(staged, target, META, force=False)
    assert list(target.parent.iterdir()) == []  # no artifact, no sidecar, no temp file


def test_failing_sidecar_removes_the_artifact(tmp_path, monkeypatch):
    staged = tmp_path / "staged.onnx"
    staged.write_bytes(b"model")
    target = tmp_path / "m.fp32.onnx"

    def broken_meta(path, meta):
        raise OSError("cannot write sidecar")

    monkeypatch.setattr(artifacts, "write_meta", broken_meta)
    with pytest.raises(OSError):
        artifacts.place(staged, target, META, force=False)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["staged.onnx"]


def test_place_writes_artifact_and_sidecar_and_needs_force_to_replace(tmp_path):
    staged = tmp_path / "staged.onnx"
    staged.write_bytes(b"v1")
    target = tmp_path / "m.fp32.onnx"
    artifacts.place(staged, target, META, force=False)
    assert target.read_bytes() == b"v1" and (tmp_path / "m.fp32.onnx.json").is_file()
    with pytest.raises(FileExistsError, match="force=True"):
        artifacts.preflight([target], force=False)
    staged.write_bytes(b"v2")
    artifacts.place(staged, target, META, force=True)
    assert target.read_bytes() == b"v2"


@pytest.mark.slow
def test_a_crash_mid_export_leaves_no_files(tiny_checkpoint, tmp_path, monkeypatch):
    import export.int8.stage as stage
    import export.pipeline as pipeline
    from export.request import ExportRequest

    def crash(*args, **kwargs):
        raise RuntimeError("quantizer crashed")

    monkeypatch.setattr(stage, "quantize_int8", crash)
    out = tmp_path / "out"
    request = ExportRequest(
        checkpoint=tiny_checkpoint, out=out, precisions=("fp32", "int8"), height=64, width=64,
        calib_samples=1, calib_data="generated", verify=False, calib_cache=tmp_path / "cache",
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="quantizer crashed"):
        pipeline.export_artifacts(request)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("name", ["a/b", "m.onnx", "", "-x"])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError, match="--name"):
        artifacts.check_name(name)
