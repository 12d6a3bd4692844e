"""A user's mmseg checkpoint whose training config scores it with slide inference, as mmseg's
SegNeXt Cityscapes configs do (test_cfg mode='slide', the test pipeline's keep-ratio Resize),
scaled down so the test is fast: crop 256 stride 192, Resize(scale=(1024, 512)).

`scaseg-export --checkpoint THAT.pth` with no slide flags must read both from the config, export
a crop-sized graph with a dynamic window batch, pass its gate, and the artifact must then label
real frames as mmseg would (export/slide_reference.py, PyTorch window by window) through
runtime.Segmenter and scaseg-run. A checkpoint whose config says whole mode and has no Resize
exports as before: stretched frames, whole inference.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("mmengine")

from runtime.meta import sidecar_path
from tests.support.real_video import real_video_or_skip

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scaseg" / "weights" / "scaseg_t_demo.safetensors"
CROP, STRIDE, SCALE = (256, 256), (192, 192), (1024, 512)
FRAME_INDICES = (20, 125, 230)  # spread over bikes.mp4's 250 frames

# The shape of mmseg's SegNeXt Cityscapes config as mmengine dumps it into meta["cfg"]
# (variables inlined), at a smaller scale.
SLIDE_CONFIG = """\
crop_size = (256, 256)
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(256, 256))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(256, 256)),
    backbone=dict(type='MSCAN', embed_dims=[32, 64, 160, 256], depths=[3, 3, 5, 2]),
    decode_head=dict(type='LightHamHead', num_classes=8),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(256, 256), stride=(192, 192)))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1024, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
"""

WHOLE_CONFIG = """\
model = dict(type='EncoderDecoder', backbone=dict(type='MSCAN'), test_cfg=dict(mode='whole'))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
"""


def _save(model, info: dict, path: Path, cfg: str) -> Path:
    from tests.support.checkpoints import save_mmengine_checkpoint

    return save_mmengine_checkpoint(
        model, path, tuple(info["class_names"]), [list(c) for c in info["palette_rgb"]], cfg=cfg
    )


def _export(args: list) -> str:
    from export import cli

    result = CliRunner().invoke(cli.app, [str(a) for a in args], prog_name="scaseg-export")
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def _bikes_frames() -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(real_video_or_skip()))
    frames = []
    try:
        for index in FRAME_INDICES:
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = capture.read()
            assert ok, f"bikes.mp4 has no frame {index}"
            frames.append(frame)
    finally:
        capture.release()
    assert all(f.shape == (272, 640, 3) for f in frames)
    return frames


@pytest.fixture(scope="module")
def demo():
    from scaseg.checkpoint import load_model

    model, info = load_model(DEMO)
    return model.float().eval(), info


@pytest.fixture(scope="module")
def slide_export(demo, tmp_path_factory) -> dict:
    """The demo weights as an mmengine checkpoint with the slide config, exported with no
    slide flags (FP32, the default gate on 2 frames)."""
    model, info = demo
    work = tmp_path_factory.mktemp("slide_checkpoint")
    ckpt = _save(model, info, work / "segnext_demo_cityscapes.pth", SLIDE_CONFIG)
    out = work / "artifacts"
    output = _export(["--checkpoint", ckpt, "--out", out, "--verify-frames", 2])
    onnx = out / "segnext_demo_cityscapes.fp32.onnx"
    return {"onnx": onnx, "output": output, "sidecar": json.loads(sidecar_path(onnx).read_text())}


@pytest.mark.slow
def test_export_reads_slide_and_keep_ratio_from_the_config(slide_export):
    sidecar, output = slide_export["sidecar"], slide_export["output"]
    assert sidecar["inference"] == {"mode": "slide", "crop": list(CROP), "stride": list(STRIDE)}
    pp = sidecar["preprocess"]
    assert (pp["resize"], pp["scale"]) == ("keep_ratio", list(SCALE))
    assert (pp["height"], pp["width"], pp["color"]) == (256, 256, "rgb")
    # A crop-sized graph; the batch is the windows of a frame: at most 3 x 5 (a 512x1024
    # landscape frame, or 5 x 3 for a portrait one); bikes.mp4's 435x1024 needs 2 x 5.
    assert sidecar["input"]["shape"] == ["batch", 3, 256, 256]
    assert [p[0] for p in sidecar["input"]["profile"]] == [1, 15, 15]
    gate = sidecar["extra"]["gate"]
    assert gate["passed"] and gate["agreement"] >= 0.999, gate
    assert "slide crop 256x256 stride 192x192 inference" in output
    assert "training config" in output


@pytest.mark.slow
def test_artifact_labels_real_frames_as_mmseg_would(slide_export, demo):
    """runtime.Segmenter (10 windows, one ONNX Runtime call, numpy/OpenCV merge) against the
    PyTorch reference (window by window, torch's resizes) on 3 bikes.mp4 frames. Measured on
    CPU (onnxruntime, torch FP32): 100.0000%, 99.9994% (one pixel), 100.0000% of each frame's
    174,080 pixels agree."""
    from export.slide_reference import slide_labels_torch
    from runtime import Segmenter
    from runtime.preprocess import Preprocess
    from runtime.slide import Inference

    model, info = demo
    norm = info["preprocess"]
    pp = Preprocess(*CROP, color=norm["color"], mean=tuple(norm["mean"]),
                    std=tuple(norm["std"]), resize="keep_ratio", scale=SCALE)  # fmt: skip
    inference = Inference("slide", CROP, STRIDE)
    agreements = []
    with Segmenter(slide_export["onnx"], provider="cpu") as seg:
        assert seg.meta.preprocess == pp and seg.meta.inference == inference
        for frame in _bikes_frames():
            assert seg.prepare(frame).shape == (10, 3, 256, 256)  # 435x1024: 2 x 5 windows
            labels = seg(frame)
            expected = slide_labels_torch(model, frame, pp, inference)
            assert labels.shape == expected.shape == frame.shape[:2]
            assert len(np.unique(expected)) >= 3  # a real segmentation, not one class
            agreements.append(float((labels == expected).mean()))
    print("slide checkpoint agreement per frame: " + ", ".join(f"{a:.4%}" for a in agreements))
    assert min(agreements) >= 0.995, agreements


@pytest.mark.slow
def test_scaseg_run_writes_the_overlay_video(slide_export, tmp_path):
    from runtime.cli import app

    out = tmp_path / "overlay.mp4"
    args = [real_video_or_skip(), "--model", slide_export["onnx"], "--out", out,
            "--max-frames", 3, "--provider", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "done: 3 frames" in " ".join(result.output.split())
    capture = cv2.VideoCapture(str(out))
    try:
        size = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        decoded = 0
        while capture.read()[0]:
            decoded += 1
    finally:
        capture.release()
    assert decoded == 3 and size == (640, 272)


@pytest.mark.slow
def test_scaseg_eval_scores_the_checkpoint_as_its_artifact(slide_export, tmp_path):
    """scaseg-eval with no flags scores the checkpoint with its config's slide inference
    (PyTorch) and the artifact with its sidecar's (runtime): the same mIoU on the same frames."""
    from export import eval_cli

    ckpt = slide_export["onnx"].parents[1] / "segnext_demo_cityscapes.pth"
    reports = {}
    for name, model in (("torch", ckpt), ("onnx", slide_export["onnx"])):
        out = tmp_path / f"{name}.json"
        args = [model, "--val-data", "generated", "--max-images", 2, "--json", out]
        result = CliRunner().invoke(eval_cli.app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        reports[name] = json.loads(out.read_text())
    mious = {name: round(report["miou"], 6) for name, report in reports.items()}
    print(f"slide checkpoint mIoU on 2 generated scenes: {mious}")
    assert "slide crop 256x256 stride 192x192" in reports["torch"]["runs"]
    assert abs(reports["torch"]["miou"] - reports["onnx"]["miou"]) < 1e-3, reports


def test_whole_config_without_resize_exports_as_before(tmp_path):
    """test_cfg mode='whole' and no Resize in the test pipeline: stretched frames at
    --input-size, whole inference, a static (1,3,H,W) graph, as before slide existed."""
    from scaseg.model import build_model
    from scenes.classes import DEMO_CLASSES, DEMO_PALETTE_RGB

    info = {"class_names": DEMO_CLASSES, "palette_rgb": DEMO_PALETTE_RGB}
    ckpt = _save(build_model("tiny", 8), info, tmp_path / "whole.pth", WHOLE_CONFIG)
    out = tmp_path / "artifacts"
    output = _export(["--checkpoint", ckpt, "--out", out, "--input-size", "64x64",
                      "--no-verify", "--engines", "no"])  # fmt: skip
    sidecar = json.loads(sidecar_path(out / "whole.fp32.onnx").read_text())
    assert sidecar["inference"] == {"mode": "whole"}
    assert sidecar["preprocess"]["resize"] == "stretch" and "scale" not in sidecar["preprocess"]
    assert sidecar["input"]["shape"] == [1, 3, 64, 64] and sidecar["input"]["profile"] is None
    assert "whole inference, stretch" in output
