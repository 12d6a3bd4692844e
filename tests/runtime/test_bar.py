"""The issue's bar on a CPU: a generated 640x360 video through scaseg-run gives a video with the
input's frame count and size, and label maps identical to an export-time style evaluation of the
same artifact on the same decoded frames (hence the same mIoU).

Uses $SCASEG_MODEL or the demo model where one exists, else the tiny test model.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from runtime.cli import app, default_model_path
from runtime.meta import read_meta
from runtime.metrics import ConfusionMatrix, argmax_agreement
from runtime.preprocess import labels_to_frame, logits_to_labels, preprocess, preprocess_uint8
from runtime.scenes import split_seeds, write_scene_video

NUM_FRAMES = 12


def reference_segment(model_path):
    """frame_bgr -> labels the way an export-time check computes them: a plain CPU session fed by
    runtime.preprocess, no runtime backend or pipeline involved."""
    import onnxruntime as ort

    meta = read_meta(model_path)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    pp = meta.preprocess

    def segment(frame_bgr: np.ndarray) -> np.ndarray:
        x = preprocess_uint8(frame_bgr, pp) if meta.fused_preprocess else preprocess(frame_bgr, pp)
        out = session.run([meta.output.name], {meta.input.name: x})[0][0]
        labels = out.astype(np.uint8) if meta.fused_argmax else logits_to_labels(out, pp)
        return labels_to_frame(labels, frame_bgr.shape[:2])

    return segment, meta


def decode(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (ok_frame := cap.read())[0]:
        frames.append(ok_frame[1])
    return frames


def test_cli_labels_match_export_time_evaluation(tmp_path, make_model, decoded_frames):
    model = default_model_path()
    if model is None or not model.is_file():
        model = make_model(tmp_path / "tiny8.fp32.onnx", num_classes=8)  # the scenes' 8 classes
    video, truth_dir = tmp_path / "scene.mp4", tmp_path / "truth"
    write_scene_video(video, split_seeds("bench", 1)[0], 360, 640, NUM_FRAMES, labels_dir=truth_dir)
    result = CliRunner().invoke(
        app,
        [str(video), "--model", str(model), "--out", str(tmp_path / "out.mp4"),
         "--labels-out", str(tmp_path / "labels"), "--provider", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert decoded_frames(tmp_path / "out.mp4") == (NUM_FRAMES, (640, 360))

    segment, meta = reference_segment(model)
    cm_cli, cm_ref = ConfusionMatrix(meta.num_classes), ConfusionMatrix(meta.num_classes)
    frames = decode(video)
    assert len(frames) == NUM_FRAMES
    for i, frame_bgr in enumerate(frames):
        truth = cv2.imread(str(truth_dir / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        # Palettised PNGs: read the indices, not the colours.
        cli_labels = _read_palette_png(tmp_path / "labels" / f"{i:06d}.png")
        ref_labels = segment(frame_bgr)
        assert argmax_agreement(cli_labels, ref_labels) == 1.0
        cm_cli.update(cli_labels, truth)
        cm_ref.update(ref_labels, truth)
    assert cm_cli.miou() == cm_ref.miou()


def _read_palette_png(path) -> np.ndarray:
    pil = pytest.importorskip("PIL.Image")
    return np.asarray(pil.open(path))
