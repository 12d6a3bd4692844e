"""The runtime's slide inference (numpy + OpenCV, one batched ONNX call per frame) against the
PyTorch reference written as mmseg runs it (export/slide_reference.py), on real frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from export.onnx_export import ExportOptions, ShapeRange, export_onnx
from export.slide_reference import slide_labels_torch, slide_logits_torch
from runtime.meta import ModelMeta, write_meta
from runtime.preprocess import Preprocess, normalise, resize_frame
from runtime.slide import Inference, merge_logits, windows
from tests.support.real_video import real_video_or_skip

DEMO = Path(__file__).resolve().parents[2] / "scaseg" / "weights" / "scaseg_t_demo.safetensors"


def _bikes_frame(index: int = 40) -> np.ndarray:
    """Frame `index` of bikes.mp4: 640x272 (w x h), a real street with cyclists."""
    capture = cv2.VideoCapture(str(real_video_or_skip()))
    try:
        for _ in range(index + 1):
            ok, frame = capture.read()
            assert ok, "bikes.mp4 ended early"
    finally:
        capture.release()
    assert frame.shape == (272, 640, 3)
    return frame


def _artifact(tmp_path, model, pp, inference, names, dynamic: ShapeRange) -> Path:
    """`model` exported to ONNX at the preprocess size with `dynamic` shapes, and its sidecar."""
    data, io = export_onnx(model, pp, ExportOptions(pp.height, pp.width, dynamic=dynamic))
    path = tmp_path / "model.fp32.onnx"
    path.write_bytes(data)
    k = int(model.num_classes)
    meta = ModelMeta(
        variant="test", precision="fp32", class_names=tuple(names[:k]),
        palette_rgb=tuple((i * 30 % 256, i * 70 % 256, i * 110 % 256) for i in range(k)),
        input=io.input, output=io.output, output_kind=io.output_kind,
        output_stride=io.output_stride, preprocess=pp, inference=inference,
    )  # fmt: skip
    write_meta(path, meta)
    return path


def _crop_batch(crops: int, side: int) -> ShapeRange:
    """Dynamic batch at a fixed crop size (H/W ranges of one value)."""
    return ShapeRange(batch=(1, crops, max(crops, 16)), height=(side,) * 3, width=(side,) * 3)


def _runtime_labels(path: Path, frame: np.ndarray) -> tuple[np.ndarray, tuple]:
    from runtime import Segmenter

    with Segmenter(path, provider="cpu") as seg:
        batch = seg.prepare(frame)
        return seg.postprocess(seg.infer(batch), frame.shape[:2]), batch.shape


NAMES = tuple(f"class{i}" for i in range(8))


def test_bilinear_resize_of_opencv_is_torchs_align_corners_false():
    """The claim runtime/slide.py rests on, against torch itself. Upsampling agrees to float32
    rounding; downsampling by a non-integer factor (the final resize to a frame smaller than
    the resized image) differs by up to ~4e-4: torch computes the source coordinates in
    float32, cv2 stays within 1e-6 of the exact float64 formula (tests/runtime/test_slide.py)."""
    rng = np.random.default_rng(0)
    for src, dst, atol in (
        ((16, 16), (64, 64), 1e-5), ((13, 7), (37, 50), 1e-5), ((256, 256), (1024, 1024), 1e-5),
        ((435, 1024), (272, 640), 1e-3), ((1024, 2048), (272, 640), 1e-3),
    ):  # fmt: skip
        plane = rng.normal(size=src).astype(np.float32)
        ours = cv2.resize(plane, dst[::-1], interpolation=cv2.INTER_LINEAR)
        ref = F.interpolate(
            torch.from_numpy(plane)[None, None], size=dst, mode="bilinear", align_corners=False
        )[0, 0].numpy()
        np.testing.assert_allclose(ours, ref, rtol=0, atol=atol)


def test_runtime_merge_equals_the_torch_slide_on_the_same_window_logits(tiny_model):
    """merge_logits over torch's own window logits == slide_logits_torch (no ONNX involved)."""
    pp = Preprocess(64, 64, resize="keep_ratio", scale=(256, 128))
    frame = _bikes_frame()
    image = normalise(resize_frame(frame, pp)[None], pp)  # 272x640 -> 109x256
    assert image.shape == (1, 3, 109, 256)
    crop, stride = (64, 64), (48, 48)
    wins = windows(109, 256, crop, stride)
    with torch.no_grad():
        ref = slide_logits_torch(tiny_model, torch.from_numpy(image), 8, crop, stride)[0].numpy()
        crops = np.stack([image[0, :, y1:y2, x1:x2] for y1, y2, x1, x2 in wins])
        crop_logits = tiny_model(torch.from_numpy(crops)).numpy()
    merged = merge_logits(crop_logits, wins, (109, 256), crop)
    np.testing.assert_allclose(merged, ref, rtol=0, atol=1e-4)


def test_tiny_model_slide_through_onnx_agrees_with_the_torch_reference(tiny_model, tmp_path):
    pp = Preprocess(64, 64, resize="keep_ratio", scale=(256, 128))
    inference = Inference("slide", (64, 64), (48, 48))
    path = _artifact(tmp_path, tiny_model, pp, inference, NAMES, _crop_batch(10, 64))
    frame = _bikes_frame()
    labels, shape = _runtime_labels(path, frame)
    assert shape == (10, 3, 64, 64)  # 109x256: 2 rows x 5 columns of windows, one call
    expected = slide_labels_torch(tiny_model, frame, pp, inference)
    assert labels.shape == expected.shape == (272, 640)
    agreement = float((labels == expected).mean())
    print(f"tiny slide agreement: {agreement:.4%}")
    assert agreement >= 0.995, agreement


def test_tiny_model_keep_ratio_whole_agrees_with_the_torch_reference(tiny_model, tmp_path):
    """Whole mode: 109x256 padded to 128x256 with zeros, logits cut back, as mmseg."""
    pp = Preprocess(128, 256, resize="keep_ratio", scale=(256, 128))
    dynamic = ShapeRange(batch=(1, 1, 1), height=(64, 128, 256), width=(64, 256, 256))
    path = _artifact(tmp_path, tiny_model, pp, Inference(), NAMES, dynamic)
    frame = _bikes_frame()
    labels, shape = _runtime_labels(path, frame)
    assert shape == (1, 3, 128, 256)
    expected = slide_labels_torch(tiny_model, frame, pp, Inference())
    agreement = float((labels == expected).mean())
    print(f"tiny keep-ratio whole agreement: {agreement:.4%}")
    assert agreement >= 0.995, agreement


@pytest.mark.slow
def test_demo_model_slide_on_a_real_frame_agrees_with_the_torch_reference(tmp_path):
    """The bundled SCASeg-T, keep-ratio (1024, 512) -> 435x1024, crop 256 stride 192: 10
    windows in one ONNX Runtime call vs mmseg's window-by-window PyTorch computation.
    Measured: 100.00% of the 174,080 pixels agree (CPU, onnxruntime, torch FP32)."""
    from scaseg.checkpoint import load_model

    model, info = load_model(DEMO)
    model = model.float().eval()
    norm = info["preprocess"]
    pp = Preprocess(256, 256, color=norm["color"], mean=tuple(norm["mean"]),
                    std=tuple(norm["std"]), resize="keep_ratio", scale=(1024, 512))  # fmt: skip
    inference = Inference("slide", (256, 256), (192, 192))
    path = _artifact(tmp_path, model, pp, inference, info["class_names"], _crop_batch(10, 256))
    frame = _bikes_frame()
    labels, shape = _runtime_labels(path, frame)
    assert shape == (10, 3, 256, 256)
    expected = slide_labels_torch(model, frame, pp, inference)
    agreement = float((labels == expected).mean())
    print(f"demo slide agreement: {agreement:.4%}")
    assert agreement >= 0.995, agreement
    assert len(np.unique(expected)) >= 3  # a real segmentation, not one class everywhere


@pytest.mark.slow
def test_undersized_windows_differ_from_mmseg_only_by_the_padding(tiny_model, tmp_path):
    """Resized 272x640 -> 32x75 under a 64x64 crop: mmseg runs 32x64 windows, the runtime pads
    them to 64x64. With the padding put into the torch reference too they agree; without it
    the labels differ where the padding changed the model's context (documented in
    runtime/slide.py; on the demo model at scale (1024, 224), 224x527 under crop 256, only
    80.3% of a bikes frame agreed)."""
    pp = Preprocess(64, 64, resize="keep_ratio", scale=(256, 32))
    inference = Inference("slide", (64, 64), (48, 48))
    path = _artifact(tmp_path, tiny_model, pp, inference, NAMES, _crop_batch(2, 64))
    frame = _bikes_frame()
    labels, shape = _runtime_labels(path, frame)
    assert shape == (2, 3, 64, 64)  # 32x75: 1 row x 2 columns, each padded by 32 rows

    padded = _PaddedToCrop(tiny_model, (64, 64))
    same = float((labels == slide_labels_torch(padded, frame, pp, inference)).mean())
    print(f"undersized windows, padded in both: {same:.4%} agree")
    assert same >= 0.995
    unpadded = float((labels == slide_labels_torch(tiny_model, frame, pp, inference)).mean())
    print(f"undersized windows, padded vs mmseg's unpadded: {unpadded:.2%} agree")


class _PaddedToCrop(torch.nn.Module):
    """The model run as the runtime runs a window: zero-padded to the crop, logits cut back."""

    def __init__(self, model: torch.nn.Module, crop: tuple[int, int]):
        super().__init__()
        self.model, self.crop, self.num_classes = model, crop, model.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        x = F.pad(x, (0, self.crop[1] - w, 0, self.crop[0] - h))
        up = F.interpolate(self.model(x), size=self.crop, mode="bilinear", align_corners=False)
        return up[:, :, :h, :w]


def test_reference_refuses_a_stride_that_leaves_gaps(tiny_model):
    with pytest.raises(ValueError, match="leaves pixels outside"):
        slide_logits_torch(tiny_model, torch.zeros(1, 3, 64, 160), 8, (64, 64), (64, 80))


def test_stretch_slide_is_one_window(tiny_model):
    inference = Inference("slide", (64, 64), (48, 48))
    labels = slide_labels_torch(tiny_model, _bikes_frame(), Preprocess(64, 64), inference)
    assert labels.shape == (272, 640) and labels.dtype == np.uint8
