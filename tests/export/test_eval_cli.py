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
