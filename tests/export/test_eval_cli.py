"""scaseg-eval on artifacts and checkpoints, over validation sets in the real layouts: the printed
table and the JSON agree with a direct evaluation, and bad input is one line with exit code 2."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from export import eval_cli
from export.evaluate import evaluate
from runtime.segmenter import Segmenter
from runtime.val_data import find_val_set
from tests.support.datasets import Faults, make_ade20k, make_cityscapes, make_mmseg
from tests.support.tiny_onnx import build_tiny_model

runner = CliRunner()


def _run(args: list[str]):
    return runner.invoke(eval_cli.app, [str(a) for a in args], prog_name="scaseg-eval")


def _one_error_line(result, match: str) -> None:
    """Exit 2 and one error line, last (a mismatch found while scoring follows the model and
    data lines), with no traceback."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("scaseg-eval: error:")]
    assert result.exit_code == 2, result.output
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    assert "Traceback" not in result.output
    assert match in " ".join(errors[0].split()), errors[0]


def test_artifact_on_cityscapes_layout_prints_and_writes_the_direct_miou(tmp_path):
    model = build_tiny_model(tmp_path / "m19.fp32.onnx", num_classes=19)
    data = make_cityscapes(tmp_path / "cityscapes")
    out = tmp_path / "eval.json"
    result = _run([model, "--val-data", data.root, "--json", out, "--provider", "cpu"])
    assert result.exit_code == 0, result.output
    seg = Segmenter(model, provider="cpu")
    val = find_val_set(data.root)
    direct = evaluate(seg, ((f, m) for _, _, f, m in val.samples()), 19)
    printed = float(re.search(r"mIoU (\d+\.\d+)", result.output).group(1))
    assert abs(printed - 100 * direct.miou) < 0.01
    report = json.loads(out.read_text())
    assert abs(report["miou"] - direct.miou) < 1e-9 and report["images"] == 3
    assert abs(report["aacc"] - direct.pixel_accuracy) < 1e-9
    assert list(report["per_class"]) == list(seg.meta.class_names)
    assert "cityscapes layout" in report["data"] and report["model"] == str(model)


def test_max_images_picks_evenly_and_unpaired_files_are_reported(tmp_path):
    model = build_tiny_model(tmp_path / "m8.fp32.onnx", num_classes=8)
    data = make_mmseg(tmp_path / "ds", count=5, faults=Faults(unpaired_image=True))
    out = tmp_path / "e.json"
    result = _run([model, "--val-data", data.root, "--max-images", 2, "--json", out])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["images"] == 2
    assert any("without a mask" in w and "99.jpg" in w for w in report["warnings"])


def test_out_of_range_mask_values_are_reported_with_file_and_count(tmp_path):
    model = build_tiny_model(tmp_path / "m8.fp32.onnx", num_classes=8)
    data = make_mmseg(tmp_path / "ds", count=3, faults=Faults(out_of_range=40))
    out = tmp_path / "e.json"
    result = _run([model, "--val-data", data.root, "--json", out])
    assert result.exit_code == 0, result.output
    (warning,) = json.loads(out.read_text())["warnings"]
    assert "00.png (value 40: 10 px)" in warning


def test_generated_scenes_for_a_demo_class_model(tmp_path):
    model = build_tiny_model(tmp_path / "m8.fp32.onnx", num_classes=8)
    out = tmp_path / "e.json"
    result = _run([model, "--val-data", "generated", "--max-images", 2, "--json", out])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["images"] == 2


@pytest.mark.parametrize(
    ("make_args", "match"),
    [
        (lambda t, m: [m, "--val-data", t / "nowhere"], "does not exist"),
        (lambda t, m: [m, "--val-data", _empty(t)], "layout"),
        (lambda t, m: [m, "--val-data", make_mmseg(t / "d", split="train").root], "no split"),
        (lambda t, m: [m, "--val-data", _no_pairs(t)], "no image/mask pairs"),
        # ADE20K masks (150 classes) for a 8-class model: most pixels have no class.
        (lambda t, m: [m, "--val-data", make_ade20k(t / "ade").root], "class-count mismatch"),
        (lambda t, m: [m, "--val-data", "generated", "--classes", "voc"], "apply to checkpoints"),
        (lambda t, m: [t / "m.txt", "--val-data", "generated"], "does not exist"),
        (lambda t, m: [_touch(t / "m.h5"), "--val-data", "generated"], "unknown model type"),
    ],
    ids=["missing", "wrong-layout", "wrong-split", "no-pairs", "class-mismatch", "artifact-flag",
         "no-model", "model-type"],
)  # fmt: skip
def test_bad_input_is_one_line(tmp_path, make_args, match):
    model = build_tiny_model(tmp_path / "m8.fp32.onnx", num_classes=8)
    out = tmp_path / "e.json"
    result = _run([*make_args(tmp_path, model), "--json", out])
    _one_error_line(result, match)
    assert not out.exists()


def _empty(tmp_path):
    folder = tmp_path / "empty_ds"
    (folder / "stuff").mkdir(parents=True)
    return folder


def _no_pairs(tmp_path):
    data = make_mmseg(tmp_path / "np", count=2)
    for _, mask in data.pairs:
        mask.rename(mask.with_name("x" + mask.name))
    return data.root


def _touch(path):
    path.write_bytes(b"x")
    return path


def test_checkpoint_miou_equals_its_fp32_artifact(tiny_checkpoint, tmp_path):
    """PyTorch on the checkpoint and ONNX Runtime on its FP32 export score the same pairs the
    same way (within 0.1 mIoU point; in practice identical)."""
    from export.pipeline import export_artifacts
    from export.request import ExportRequest

    export_artifacts(
        ExportRequest(checkpoint=tiny_checkpoint, out=tmp_path / "art", height=64, width=64,
                      verify=False)
    )  # fmt: skip
    data = make_mmseg(tmp_path / "ds", count=3)
    results = {}
    for name, model, extra in (
        ("torch", tiny_checkpoint, ["--input-size", "64x64"]),
        ("onnx", tmp_path / "art" / "tiny.fp32.onnx", ["--provider", "cpu"]),
    ):
        out = tmp_path / f"{name}.json"
        result = _run([model, "--val-data", data.root, "--json", out, *extra])
        assert result.exit_code == 0, result.output
        results[name] = json.loads(out.read_text())
    assert abs(results["torch"]["miou"] - results["onnx"]["miou"]) < 1e-3
    assert results["torch"]["per_class"].keys() == results["onnx"]["per_class"].keys()


def test_artifact_evaluation_runs_where_torch_is_not_installed(tmp_path):
    """On a device only the runtime's dependencies are installed: scaseg-eval on an artifact
    never imports torch, scaseg or calibration (they are blocked in this child process)."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    blocker = textwrap.dedent(
        """
        import sys

        class _Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "tensorrt", "pycuda", "scaseg", "calibration"):
                    raise ImportError(f"{name} is not installed on this device (blocked)")
                return None

        sys.meta_path.insert(0, _Blocker())
        """
    )
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(blocker)
    model = build_tiny_model(tmp_path / "m8.fp32.onnx", num_classes=8)
    data = make_mmseg(tmp_path / "ds", count=2)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(repo)])}
    out = tmp_path / "e.json"
    done = subprocess.run(
        [sys.executable, "-m", "export.eval_cli", str(model), "--val-data", str(data.root),
         "--json", str(out), "--backend", "onnxruntime"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["images"] == 2


# --- slide inference and keep-ratio resizing (mmseg's test_cfg and test-time Resize) ----------

SLIDE_FLAGS = ["--inference", "slide", "--slide-crop", "64x64", "--slide-stride", "48x48",
               "--resize", "keep-ratio", "--resize-scale", "256x128"]  # fmt: skip


def test_checkpoint_slide_miou_equals_its_slide_artifact(tiny_checkpoint, tmp_path):
    """The flags score the checkpoint as the export runs it: 64x128 images, keep-ratio to
    128x256, 3 x 5 windows of 64x64. PyTorch (export/slide_reference.py, window by window) and
    the slide ONNX through the runtime (one batched call) give the same mIoU."""
    from export.pipeline import export_artifacts
    from export.request import ExportRequest

    export_artifacts(
        ExportRequest(checkpoint=tiny_checkpoint, out=tmp_path / "art", verify=False,
                      inference="slide", slide_crop=(64, 64), slide_stride=(48, 48),
                      resize="keep_ratio", resize_scale=(256, 128))
    )  # fmt: skip
    data = make_mmseg(tmp_path / "ds", count=3)
    results = {}
    for name, model, extra in (
        ("torch", tiny_checkpoint, SLIDE_FLAGS),
        ("onnx", tmp_path / "art" / "tiny.fp32.onnx", ["--provider", "cpu"]),
    ):
        out = tmp_path / f"{name}.json"
        result = _run([model, "--val-data", data.root, "--json", out, *extra])
        assert result.exit_code == 0, result.output
        results[name] = json.loads(out.read_text())
    assert "slide crop 64x64 stride 48x48" in results["torch"]["runs"]
    assert "keep-ratio resize to (256, 128)" in results["torch"]["runs"]
    assert abs(results["torch"]["miou"] - results["onnx"]["miou"]) < 1e-3
    assert abs(results["torch"]["aacc"] - results["onnx"]["aacc"]) < 1e-3


def test_checkpoint_config_asks_for_slide_and_flags_override_it(tmp_path):
    """An mmengine checkpoint whose config says slide + keep-ratio is scored that way with no
    flags; --inference whole --resize stretch scores it the old way."""
    from scaseg.model import build_model
    from scenes.classes import DEMO_CLASSES, DEMO_PALETTE_RGB
    from tests.support.checkpoints import save_mmengine_checkpoint

    cfg = (
        "model = dict(type='EncoderDecoder', test_cfg=dict(mode='slide', crop_size=(64, 64), "
        "stride=(48, 48)))\n"
        "test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(256, 128), "
        "keep_ratio=True), dict(type='PackSegInputs')]\n"
    )
    palette = [list(c) for c in DEMO_PALETTE_RGB]
    ckpt = save_mmengine_checkpoint(
        build_model("tiny", 8), tmp_path / "m.pth", DEMO_CLASSES, palette, cfg=cfg
    )
    data = make_mmseg(tmp_path / "ds", count=2)
    runs = {}
    for name, extra in (("config", []), ("flags", ["--inference", "whole", "--resize", "stretch"])):
        out = tmp_path / f"{name}.json"
        result = _run([ckpt, "--val-data", data.root, "--json", out, "--input-size", "64x64",
                       *extra])  # fmt: skip
        assert result.exit_code == 0, result.output
        runs[name] = json.loads(out.read_text())["runs"]
    assert "slide crop 64x64 stride 48x48" in runs["config"], runs
    assert "training config" in runs["config"], runs
    assert "64x64 input, whole inference, stretch" in runs["flags"], runs


def test_torch_segmenter_gives_frame_size_labels(tiny_model):
    """Every path of torch_segmenter answers at the frame's size (the metric needs it)."""
    import numpy as np

    from export.evaluate import torch_segmenter
    from runtime.preprocess import Preprocess
    from runtime.slide import Inference

    frame = np.random.default_rng(0).integers(0, 256, (48, 80, 3), np.uint8)
    keep = Preprocess(64, 64, resize="keep_ratio", scale=(128, 64))
    for pp, inference in (
        (Preprocess(64, 64), None),
        (keep, Inference()),
        (keep, Inference("slide", (64, 64), (48, 48))),
    ):
        labels = torch_segmenter(tiny_model, pp, inference)(frame)
        assert labels.shape == (48, 80) and labels.dtype == np.uint8


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--resize", "keep-ratio"], "needs its scale"),
        (["--inference", "slide", "--resize", "keep-ratio", "--resize-scale", "256x128"],
         "needs a crop and a stride"),
        (["--slide-crop", "64x64"], "add --inference slide"),
        ([*SLIDE_FLAGS[:2], "--slide-crop", "60x60", "--slide-stride", "48x48", *SLIDE_FLAGS[6:]],
         "not a multiple of 32"),
    ],
    ids=["no-scale", "no-crop", "crop-without-slide", "odd-crop"],
)  # fmt: skip
def test_bad_slide_flags_for_a_checkpoint_are_one_line(tiny_checkpoint, tmp_path, extra, match):
    out = tmp_path / "e.json"
    result = _run([tiny_checkpoint, "--val-data", "generated", "--json", out, *extra])
    _one_error_line(result, match)
    assert not out.exists()


def test_slide_flags_are_refused_for_an_artifact(tmp_path):
    model = build_tiny_model(tmp_path / "m8.fp32.onnx", num_classes=8)
    result = _run([model, "--val-data", "generated", *SLIDE_FLAGS[:2]])
    _one_error_line(result, "--inference apply to checkpoints")
