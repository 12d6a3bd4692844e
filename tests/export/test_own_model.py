"""A user's own model end to end: an mmengine checkpoint (HistoryBuffers in message_hub, numpy
scalars in the optimizer, custom classes and palette in meta.dataset_meta), exported with no flags
but --calib-data / --val-data, then scaseg-run and scaseg-eval on the artifacts.

Two models: 19 Cityscapes train-id classes (Cityscapes-layout validation data) and 2 classes
(road / not road; class names from a .txt file, an image folder + --val-masks). Both are the tiny
variant briefly trained on generated scenes relabelled into their class sets, so INT8 has
something to lose and mIoU means something.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from export import cli as export_cli
from export import eval_cli
from runtime import cli as run_cli
from runtime.classes import PRESETS
from scenes import render_scene, split_seeds
from tests.support.datasets import CITYSCAPES_IDS, make_cityscapes

pytestmark = pytest.mark.slow
SIZE = 64
CUSTOM_NAMES = tuple(f"site_{name.replace(' ', '_')}" for name, _ in PRESETS["cityscapes"])
CUSTOM_PALETTE = [[(17 * i) % 256, (91 * i) % 256, (203 * i) % 256] for i in range(19)]
ROAD_IDS = np.array([0, 1, 1, 1, 1, 1, 1, 1], np.uint8)  # demo class -> road (0) / not road (1)


def _train(num_classes: int, ids: np.ndarray, steps: int = 80, variant: str = "tiny"):
    from tests.support.training import train_tiny

    return train_tiny(num_classes, ids, steps=steps, size=SIZE, variant=variant)


def _frames(folder: Path, count: int, start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in split_seeds("calib", count, start):
        cv2.imwrite(str(folder / f"f_{seed}.jpg"), render_scene(seed, 96, 160)[0])
    return folder


def _export(*args) -> object:
    return CliRunner().invoke(export_cli.app, [str(a) for a in args], prog_name="scaseg-export")


def _eval(*args) -> object:
    return CliRunner().invoke(eval_cli.app, [str(a) for a in args], prog_name="scaseg-eval")


@pytest.fixture(scope="module")
def city_checkpoint(tmp_path_factory):
    from tests.support.checkpoints import save_mmengine_checkpoint

    model = _train(19, CITYSCAPES_IDS)
    path = tmp_path_factory.mktemp("own") / "iter_160000.pth"
    return save_mmengine_checkpoint(model, path, classes=CUSTOM_NAMES, palette=CUSTOM_PALETTE)


def test_mmengine_checkpoint_with_19_classes_end_to_end(city_checkpoint, tmp_path):
    val = make_cityscapes(tmp_path / "cityscapes", cities=(("frankfurt", 3), ("lindau", 3)))
    calib = _frames(tmp_path / "calib", 12)
    out = tmp_path / "artifacts"
    result = _export(
        "--checkpoint", city_checkpoint, "--precision", "all", "--input-size", f"{SIZE}x{SIZE}",
        "--calib-data", calib, "--calib-samples", 8, "--val-data", val.root, "--out", out,
        "--calib-cache", tmp_path / "cache",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "mmengine" in text and "variant tiny (inferred from tensor shapes)" in text
    assert "19 classes (checkpoint metadata)" in text
    assert "gate data: cityscapes layout" in text and "per-class IoU" in text
    for precision in ("fp32", "fp16", "int8"):
        meta = json.loads((out / f"iter_160000.{precision}.onnx.json").read_text())
        assert tuple(meta["class_names"]) == CUSTOM_NAMES
        assert [list(c) for c in meta["palette_rgb"]] == CUSTOM_PALETTE
        gate = meta["extra"]["gate"]
        assert gate["passed"] and "cityscapes layout" in gate["data"]
        assert gate["miou"] is not None and set(gate["per_class_iou"]) == set(CUSTOM_NAMES)
    int8 = json.loads((out / "iter_160000.int8.onnx.json").read_text())
    assert f"image folder {calib}" in int8["calibration"]["data"]
    assert int8["extra"]["checkpoint_format"] == "mmengine/mmseg 1.x"
    assert int8["extra"]["variant_source"] == "inferred from tensor shapes"
    assert int8["extra"]["random_decoder"] is False

    # scaseg-eval on every artifact and on the checkpoint itself, same Cityscapes data.
    scores = {}
    for name, model, extra in (
        ("torch", city_checkpoint, ["--input-size", f"{SIZE}x{SIZE}"]),
        *((p, out / f"iter_160000.{p}.onnx", ["--backend", "onnxruntime"])
          for p in ("fp32", "fp16", "int8")),
    ):  # fmt: skip
        json_out = tmp_path / f"{name}.json"
        r = _eval(model, "--val-data", val.root, "--json", json_out, *extra)
        assert r.exit_code == 0, r.output
        assert re.search(r"mIoU \d+\.\d+\s+aAcc \d+\.\d+", r.output)
        scores[name] = json.loads(json_out.read_text())
        assert list(scores[name]["per_class"]) == list(CUSTOM_NAMES)
        assert 0.0 <= scores[name]["miou"] <= 1.0 and scores[name]["images"] == 6
    assert abs(scores["fp32"]["miou"] - scores["torch"]["miou"]) < 0.001  # within 0.1 point
    assert scores["torch"]["miou"] > 0.2  # the model learnt something: the gate can lose it

    # scaseg-run on the INT8 artifact: label maps for every frame.
    labels = tmp_path / "labels"
    r = CliRunner().invoke(
        run_cli.app,
        [str(calib), "--model", str(out / "iter_160000.int8.onnx"), "--labels-out", str(labels),
         "--backend", "onnxruntime"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert len(list(labels.glob("*.png"))) == 12


def test_int8_of_a_user_checkpoint_without_calib_data_is_refused(city_checkpoint, tmp_path):
    out = tmp_path / "artifacts"
    result = _export("--checkpoint", city_checkpoint, "--precision", "int8", "--out", out,
                     "--input-size", f"{SIZE}x{SIZE}")  # fmt: skip
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "--calib-data" in lines[0] and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_two_class_model_with_a_class_file_and_explicit_masks(tmp_path):
    import torch

    model = _train(2, ROAD_IDS, steps=40)
    ckpt = tmp_path / "road.pth"
    torch.save({"state_dict": model.state_dict()}, ckpt)  # a plain state dict: no names in it
    classes = tmp_path / "classes.txt"
    classes.write_text("# road segmentation\nroad 128,64,128\nbackground 0,0,0\n")
    images, masks = tmp_path / "val" / "images", tmp_path / "val" / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for seed in split_seeds("val", 4, 60_000):
        frame, labels = render_scene(seed, 80, 96)
        cv2.imwrite(str(images / f"{seed}.png"), frame)
        cv2.imwrite(str(masks / f"{seed}.png"), ROAD_IDS[labels])
    out = tmp_path / "artifacts"
    result = _export(
        "--checkpoint", ckpt, "--precision", "all", "--input-size", f"{SIZE}x{SIZE}",
        "--classes", classes, "--calib-data", _frames(tmp_path / "calib", 6),
        "--calib-samples", 4, "--val-data", images, "--val-masks", masks, "--out", out,
        "--calib-cache", tmp_path / "cache",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "road.int8.onnx.json").read_text())
    assert meta["class_names"] == ["road", "background"]
    assert meta["palette_rgb"] == [[128, 64, 128], [0, 0, 0]]
    assert meta["extra"]["class_source"].startswith("--classes")
    r = _eval(out / "road.int8.onnx", "--val-data", images, "--val-masks", masks,
              "--json", tmp_path / "e.json", "--backend", "onnxruntime")  # fmt: skip
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert list(report["per_class"]) == ["road", "background"] and report["images"] == 4


def test_scaseg_t_mmengine_checkpoint_with_only_data_flags(tmp_path):
    """The bar as stated: a SCASeg-T mmengine checkpoint (custom names and palette in
    meta.dataset_meta, HistoryBuffers in message_hub) exports every precision at the default
    512x512 with no flag but --calib-data / --val-data; scaseg-eval's FP32 mIoU equals PyTorch's."""
    from tests.support.checkpoints import save_mmengine_checkpoint

    model = _train(19, CITYSCAPES_IDS, variant="t")  # 80 steps at 64x64: ~25 s
    ckpt = save_mmengine_checkpoint(model, tmp_path / "iter_160000.pth", CUSTOM_NAMES,
                                    CUSTOM_PALETTE)  # fmt: skip
    val = make_cityscapes(tmp_path / "cityscapes", cities=(("frankfurt", 3), ("lindau", 3)))
    out = tmp_path / "artifacts"
    result = _export("--checkpoint", ckpt, "--precision", "all", "--calib-data",
                     _frames(tmp_path / "calib", 12), "--val-data", val.root, "--out", out,
                     "--calib-cache", tmp_path / "cache")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "variant t (inferred from tensor shapes)" in " ".join(result.output.split())
    for precision in ("fp32", "fp16", "int8"):
        meta = json.loads((out / f"iter_160000.{precision}.onnx.json").read_text())
        assert meta["variant"] == "t" and meta["extra"]["gate"]["passed"]
        assert tuple(meta["class_names"]) == CUSTOM_NAMES
        assert [list(c) for c in meta["palette_rgb"]] == CUSTOM_PALETTE
    scores = []
    for model_path in (ckpt, out / "iter_160000.fp32.onnx"):
        json_out = tmp_path / f"{model_path.name}.json"
        r = _eval(model_path, "--val-data", val.root, "--json", json_out)
        assert r.exit_code == 0, r.output
        scores.append(json.loads(json_out.read_text())["miou"])
    assert abs(scores[0] - scores[1]) < 0.001
