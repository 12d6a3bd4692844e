"""The one preprocessing definition: layouts, colour order, odd inputs, and label postprocessing."""

import json

import cv2
import numpy as np
import pytest

from runtime.errors import UserInputError
from runtime.preprocess import (
    Preprocess,
    as_bgr8,
    labels_to_frame,
    logits_to_labels,
    normalise,
    preprocess,
    preprocess_uint8,
    resize_frame,
    resize_keep_ratio,
    resized_argmax,
    resized_size,
)


def test_preprocess_makes_normalised_rgb_nchw():
    pp = Preprocess(32, 64)
    frame = np.zeros((10, 20, 3), np.uint8)
    frame[..., 2] = 255  # pure red in BGR
    x = preprocess(frame, pp)
    assert x.shape == (1, 3, 32, 64) and x.dtype == np.float32 and x.flags.c_contiguous
    assert np.allclose(x[0, 0], (255 - 123.675) / 58.395)  # channel 0 is red after BGR->RGB
    assert np.allclose(x[0, 2], (0 - 103.53) / 57.375)


def test_bgr_models_keep_the_channel_order():
    pp = Preprocess(8, 8, color="bgr", mean=(0, 0, 0), std=(1, 1, 1))
    frame = np.zeros((8, 8, 3), np.uint8)
    frame[..., 0] = 7
    assert np.all(preprocess(frame, pp)[0, 0] == 7)


@pytest.mark.parametrize(
    "frame",
    [
        np.full((7, 13), 90, np.uint8),  # grayscale, odd size
        np.full((7, 13, 1), 90, np.uint8),
        np.full((5, 9, 4), 90, np.uint8),  # BGRA
        np.full((6, 6, 3), 90 * 257, np.uint16),  # 16-bit
        np.full((1, 1, 3), 90, np.uint8),
    ],
)
def test_odd_frames_become_bgr8(frame):
    out = as_bgr8(frame)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert np.all(out == 90)
    assert preprocess(frame, Preprocess(32, 32)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (np.zeros((0, 4, 3), np.uint8), "shape"),
        (np.zeros((4, 4, 2), np.uint8), "channels"),
        (np.zeros((4, 4, 3), np.int64), "dtype"),
        ("not an image", "shape"),
    ],
)
def test_bad_frames_are_rejected_with_a_reason(frame, match):
    with pytest.raises(ValueError, match=match):
        as_bgr8(frame)


def test_uint8_input_matches_what_normalise_sees():
    pp = Preprocess(16, 16)
    frame = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    raw = preprocess_uint8(frame, pp)
    assert raw.shape == (1, 16, 16, 3) and raw.dtype == np.uint8
    assert np.array_equal(normalise(raw, pp), preprocess(frame, pp))


def test_logits_to_labels_matches_upsample_then_argmax():
    torch = pytest.importorskip("torch")
    pp = Preprocess(64, 96)
    logits = np.random.default_rng(1).standard_normal((5, 16, 24)).astype(np.float32)
    up = torch.nn.functional.interpolate(
        torch.from_numpy(logits)[None], size=(64, 96), mode="bilinear", align_corners=False
    )
    expected = up[0].argmax(0).numpy()
    assert (logits_to_labels(logits, pp) == expected).mean() > 0.999


def test_labels_go_back_to_frame_size_with_nearest():
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    big = labels_to_frame(labels, (4, 6))
    assert big.shape == (4, 6) and set(np.unique(big)) == {0, 1, 2, 3}


def test_config_is_validated():
    with pytest.raises(ValueError, match="color"):
        Preprocess(8, 8, color="yuv")
    with pytest.raises(ValueError, match="positive"):
        Preprocess(0, 8)
    assert Preprocess.from_dict(Preprocess(8, 16).to_dict()) == Preprocess(8, 16)


@pytest.mark.parametrize("color", ["rgb", "bgr"])
def test_normalise_is_bit_identical_to_the_broadcast_formula(color):
    """The plane-by-plane fast path computes exactly (x - mean) * (1 / std) in float32."""
    pp = Preprocess(24, 40, color=color)
    batch = np.random.default_rng(2).integers(0, 256, (2, 24, 40, 3), dtype=np.uint8)
    x = batch[..., ::-1] if color == "rgb" else batch
    inv_std = 1.0 / np.asarray(pp.std, np.float32)
    expected = ((x.astype(np.float32) - np.asarray(pp.mean, np.float32)) * inv_std).transpose(
        0, 3, 1, 2
    )
    out = normalise(batch, pp)
    assert out.flags.c_contiguous and out.dtype == np.float32
    assert np.array_equal(out, expected)


@pytest.mark.parametrize(
    ("classes", "dtype", "labels_dtype"),
    [(8, np.float32, np.uint8), (19, np.float16, np.uint8), (150, np.float32, np.uint8),
     (300, np.float32, np.int32), (1, np.float32, np.uint8)],
)  # fmt: skip
def test_logits_to_labels_any_class_count_equals_plane_upsample_then_argmax(
    classes, dtype, labels_dtype
):
    """150-class (ADE20K) logits once failed: OpenCV cannot resize a 150-channel image."""
    import cv2

    pp = Preprocess(64, 96)
    logits = np.random.default_rng(classes).standard_normal((classes, 16, 24)).astype(dtype)
    planes = [
        cv2.resize(p.astype(np.float32), (96, 64), interpolation=cv2.INTER_LINEAR) for p in logits
    ]
    labels = logits_to_labels(logits, pp)
    assert labels.dtype == labels_dtype
    assert np.array_equal(labels, np.stack(planes).argmax(0))


def test_logits_to_labels_ties_keep_the_lower_class_like_argmax():
    pp = Preprocess(8, 8)
    logits = np.zeros((4, 2, 2), np.float32)
    logits[2] = logits[3] = 1.0
    assert np.all(logits_to_labels(logits, pp) == 2)
    same_size = np.random.default_rng(3).standard_normal((5, 8, 8)).astype(np.float32)
    assert np.array_equal(logits_to_labels(same_size, pp), same_size.argmax(0))


# --- keep-ratio resizing (mmseg's test-time Resize(scale, keep_ratio=True)) ----------------


def test_preprocess_keep_ratio_needs_a_scale_and_stretch_refuses_one():
    pp = Preprocess(1024, 1024, resize="keep_ratio", scale=[2048, 1024])
    assert pp.scale == (2048, 1024)
    assert Preprocess.from_dict(json.loads(json.dumps(pp.to_dict()))) == pp
    with pytest.raises(UserInputError, match="needs scale=\\(long, short\\)"):
        Preprocess(64, 64, resize="keep_ratio")
    with pytest.raises(UserInputError, match="got \\(2048, 0\\)"):
        Preprocess(64, 64, resize="keep_ratio", scale=(2048, 0))
    with pytest.raises(UserInputError, match="only used with resize='keep_ratio'"):
        Preprocess(64, 64, scale=(2048, 1024))
    assert "scale" not in Preprocess(64, 64).to_dict()  # stretch sidecars are unchanged
    assert Preprocess.from_dict({"height": 8, "width": 8}) == Preprocess(8, 8)


def test_resize_keep_ratio_is_cv2_bilinear_at_the_mmcv_size():
    frame = np.random.default_rng(4).integers(0, 256, (272, 640, 3), np.uint8)
    pp = Preprocess(256, 256, resize="keep_ratio", scale=(1024, 512))
    out = resize_keep_ratio(frame, pp)
    assert out.shape == (435, 1024, 3)
    assert np.array_equal(out, cv2.resize(frame, (1024, 435), interpolation=cv2.INTER_LINEAR))
    assert resize_keep_ratio(out, pp) is out  # already at its size: no copy


def test_resize_frame_follows_the_mode_and_resized_size_predicts_it():
    frame = np.zeros((45, 77, 3), np.uint8)
    stretch, keep = Preprocess(32, 64), Preprocess(32, 64, resize="keep_ratio", scale=(100, 60))
    assert (
        resize_frame(frame, stretch).shape == (32, 64, 3) == (*resized_size((45, 77), stretch), 3)
    )
    assert resize_frame(frame, keep).shape == (58, 100, 3) == (*resized_size((45, 77), keep), 3)
    assert preprocess(frame, keep).shape == (1, 3, 32, 64)  # the graph's input size, as before


def test_resized_argmax_is_logits_to_labels_at_any_size():
    logits = np.random.default_rng(9).normal(size=(6, 8, 12)).astype(np.float32)
    assert np.array_equal(
        resized_argmax(logits, (32, 48)), logits_to_labels(logits, Preprocess(32, 48))
    )
    assert resized_argmax(logits, (8, 12)).shape == (8, 12)  # no resize needed
