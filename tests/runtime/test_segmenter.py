"""Segmenter: any frame in, labels at the frame's size out, identical across artifact variants."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.meta import MetaError, read_meta
from runtime.preprocess import labels_to_frame, logits_to_labels, preprocess


@pytest.fixture(scope="module")
def seg(plain_model):
    from runtime import Segmenter  # the public import path

    with Segmenter(plain_model, provider="cpu") as s:
        yield s


def _frame(h=45, w=77, seed=0) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize(
    "frame",
    [
        _frame(),  # odd size, BGR
        cv2.cvtColor(_frame(), cv2.COLOR_BGR2GRAY),  # (H,W)
        cv2.cvtColor(_frame(), cv2.COLOR_BGR2GRAY)[..., None],  # (H,W,1)
        cv2.cvtColor(_frame(), cv2.COLOR_BGR2BGRA),  # 4 channels
        _frame().astype(np.uint16) * 257,  # 16-bit
        _frame(1, 1),  # a single pixel
    ],
    ids=["odd-bgr", "gray", "gray-hw1", "bgra", "uint16", "1x1"],
)
def test_any_frame_gives_labels_at_its_size(seg, frame):
    labels = seg(frame)
    assert labels.shape == frame.shape[:2] and labels.dtype == np.uint8
    assert labels.max() < seg.meta.num_classes


def test_bgra_and_gray_match_their_bgr_equivalents(seg):
    bgr = _frame()
    assert np.array_equal(seg(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)), seg(bgr))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(seg(gray), seg(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)))


def test_labels_equal_the_export_time_computation(seg, plain_model):
    """Same preprocessing and postprocessing as an evaluation written directly on onnxruntime."""
    import onnxruntime as ort

    meta = read_meta(plain_model)
    session = ort.InferenceSession(str(plain_model), providers=["CPUExecutionProvider"])
    frame = _frame(90, 160, seed=4)
    logits = session.run(None, {"input": preprocess(frame, meta.preprocess)})[0][0]
    expected = labels_to_frame(logits_to_labels(logits, meta.preprocess), frame.shape[:2])
    assert np.array_equal(seg(frame), expected)


def test_fused_artifact_agrees_with_the_plain_one(seg, fused_model):
    from runtime import Segmenter

    fused = Segmenter(fused_model, provider="cpu")
    assert fused.meta.fused_preprocess and fused.meta.fused_argmax
    for seed in range(3):
        frame = _frame(64, 64, seed)
        agreement = float((fused(frame) == seg(frame)).mean())
        assert agreement > 0.99, agreement


def test_stage_times_are_reported(seg):
    labels, times = seg.segment_timed(_frame())
    assert labels.shape == (45, 77)
    assert times.infer_ms > 0 and times.total_ms >= times.infer_ms


def test_iter_source_yields_frames_and_labels(seg, tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), _frame(30 + i, 40, seed=i))
    results = list(seg.iter_source(str(tmp_path), max_frames=2))
    assert len(results) == 2
    frame, labels = results[1]
    assert frame.shape == (31, 40, 3) and labels.shape == (31, 40)


class FakeWrongBackend:
    """A fake backend whose output does not match its sidecar (K=3 logits for 4 classes)."""

    def __init__(self, meta):
        self.meta = meta
        self.description = "fake"

    def infer(self, batch):
        return np.zeros((1, 3, 16, 16), np.float32)

    def close(self):
        pass


def test_output_that_contradicts_the_sidecar_is_an_error(plain_model):
    from runtime import Segmenter

    seg = Segmenter(FakeWrongBackend(read_meta(plain_model)))
    with pytest.raises(MetaError, match="does not hold 4 class logits"):
        seg(_frame())
