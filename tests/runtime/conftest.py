"""Tiny real ONNX models (built with onnx.helper, no torch) with sidecars, and tiny videos.

The models follow the artifact contract: a plain graph ("input" float32 NCHW -> "logits" at
stride 4) and the fused variants (uint8 NHWC BGR "image" input; Resize+ArgMax+Cast "labels"
output), static or dynamic. A stride-4 convolution stands in for SCASeg.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from tests.support.tiny_onnx import build_tiny_model

NUM_CLASSES = 4
build_model = build_tiny_model  # (path, fused_preprocess=, fused_argmax=, dynamic=, ...) -> path


@pytest.fixture(scope="session")
def make_model():
    """build_model(path, fused_preprocess=..., fused_argmax=..., dynamic=..., ...) -> path."""
    return build_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def plain_model(model_dir) -> Path:
    return build_model(model_dir / "tiny.fp32.onnx")


@pytest.fixture(scope="session")
def fused_model(model_dir) -> Path:
    return build_model(model_dir / "tiny_fused.fp32.onnx", fused_preprocess=True, fused_argmax=True)


def write_video(
    path: Path, num_frames: int = 10, size_wh: tuple[int, int] = (80, 60), fps: float = 25.0
) -> Path:
    """A small MJPG/mp4v video of moving colour blocks (fast to write and decode)."""
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size_wh)
    assert writer.isOpened()
    w, h = size_wh
    for i in range(num_frames):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, :] = (40, 80, 120)
        x = (i * 5) % max(w - 20, 1)
        frame[h // 4 : h // 2, x : x + 20] = (200, 30, 30)
        frame[h // 2 :, :] = (90, 90, 90)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def small_video(tmp_path) -> Path:
    return write_video(tmp_path / "clip.mp4")


@pytest.fixture(scope="session")
def make_video():
    """write_video(path, num_frames=10, size_wh=(80, 60), fps=25.0) -> path."""
    return write_video


@pytest.fixture(scope="session")
def decoded_frames():
    """count_frames(path) -> (frames that decode, (width, height))."""
    return count_frames


def count_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """Frames actually decodable (not the container's claim) and (width, height)."""
    cap = cv2.VideoCapture(str(path))
    n, size = 0, (0, 0)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        size = (frame.shape[1], frame.shape[0])
    cap.release()
    return n, size
