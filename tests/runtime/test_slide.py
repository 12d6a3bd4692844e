"""Slide inference as mmseg scores Cityscapes: windows, keep-ratio sizes, crop cutting, logits
merging, the sidecar's inference section and the Segmenter running it (tiny ONNX models)."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from runtime.errors import BudgetError, UserInputError
from runtime.meta import MetaError, ModelMeta, TensorSpec, read_meta, sidecar_path, write_meta
from runtime.preprocess import Preprocess, keep_ratio_size, normalise
from runtime.slide import (
    Inference,
    cut_crops,
    cut_crops_nhwc,
    labels_from_logits,
    labels_from_padded_logits,
    merge_logits,
    window_count,
    windows,
)

# --- a numpy reference of torch's bilinear resize (align_corners=False, no antialias) ----------


def _axis_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) interpolation weights: sample at (i + 0.5) * src / dst - 0.5, clamped at 0,
    the two neighbours weighted linearly, the last one repeated at the far border (torch's
    upsample_bilinear2d with align_corners=False)."""
    m = np.zeros((dst, src), np.float64)
    for i in range(dst):
        x = max((i + 0.5) * src / dst - 0.5, 0.0)
        x0 = min(int(x), src - 1)
        x1 = min(x0 + 1, src - 1)
        frac = x - x0 if x0 < src - 1 else 0.0
        m[i, x0] += 1.0 - frac
        m[i, x1] += frac
    return m


def _bilinear(plane: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return (
        _axis_matrix(plane.shape[0], hw[0])
        @ plane.astype(np.float64)
        @ _axis_matrix(plane.shape[1], hw[1]).T
    )


def _labels(logits: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return np.stack([_bilinear(p, hw) for p in logits]).argmax(0).astype(np.uint8)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of equal labels: float32 OpenCV against a float64 reference (or two engines) may
    flip a near-tie on another CPU, so label maps are compared by agreement, not bit for bit."""
    assert a.shape == b.shape
    return float((a == b).mean())


@pytest.mark.parametrize(
    ("src", "dst"),
    [((16, 16), (64, 64)), ((5, 7), (20, 28)), ((7, 5), (23, 11)),  # up: x4 and odd factors
     ((64, 64), (40, 40)), ((64, 64), (32, 32)), ((64, 48), (16, 12)),  # down: 0.625, 2x, 4x
     ((9, 13), (9, 31)), ((1, 6), (4, 6))],
)  # fmt: skip
def test_cv2_inter_linear_is_torch_bilinear_align_corners_false(src, dst):
    """The claim runtime.slide relies on (checked against torch itself in
    tests/export/test_slide_reference.py): up- and down-sampling alike, 2x down included
    (where cv2 switches to INTER_AREA, the same 2x2 mean there)."""
    plane = np.random.default_rng(0).normal(size=src).astype(np.float32)
    got = cv2.resize(plane, (dst[1], dst[0]), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(got, _bilinear(plane, dst), rtol=0, atol=2e-6)


# --- windows and keep-ratio sizes, by hand -------------------------------------------------------


def test_cityscapes_windows_by_hand():
    """1024x2048 at crop 1024 stride 768: h_grids = (0 + 767) // 768 + 1 = 1,
    w_grids = (1024 + 767) // 768 + 1 = 3; the third window (x 1536..2560) is pulled back to
    end at 2048."""
    wins = windows(1024, 2048, (1024, 1024), (768, 768))
    assert wins == [(0, 1024, 0, 1024), (0, 1024, 768, 1792), (0, 1024, 1024, 2048)]


def test_bikes_at_scale_1024_512_by_hand():
    """640x272 frame, keep-ratio (1024, 512): factor min(1024/640, 512/272) = 1.6, so
    435x1024 (272 * 1.6 = 435.2); crop 256 stride 192: (435-256+191)//192+1 = 2 rows,
    (1024-256+191)//192+1 = 5 columns."""
    assert keep_ratio_size(272, 640, (1024, 512)) == (435, 1024)
    wins = windows(435, 1024, (256, 256), (192, 192))
    assert len(wins) == 10
    assert wins[:5] == [(0, 256, x, x + 256) for x in (0, 192, 384, 576, 768)]
    assert wins[5:] == [(179, 435, x, x + 256) for x in (0, 192, 384, 576, 768)]


@pytest.mark.parametrize(
    ("hw", "scale", "expected"),
    [
        ((1024, 2048), (2048, 1024), (1024, 2048)),  # Cityscapes: unchanged
        ((272, 640), (2048, 1024), (870, 2048)),  # factor min(3.2, 3.76) = 3.2: 870.4 -> 870
        ((640, 272), (2048, 1024), (2048, 870)),  # portrait: the same factor
        ((512, 683), (2048, 512), (512, 683)),  # ADE20K-style: short side at most 512
        ((1000, 1000), (2048, 1024), (1024, 1024)),
        ((3, 5), (2048, 1024), (1024, 1707)),  # min(409.6, 341.33): 5 * 341.33 = 1706.7
        ((1, 10000), (2048, 1024), (1, 2048)),  # 0.2 rounds to 0: kept at one pixel
    ],
)
def test_keep_ratio_size_as_mmcv_rescale_size(hw, scale, expected):
    assert keep_ratio_size(*hw, scale) == expected
    assert keep_ratio_size(*hw, scale[::-1]) == expected  # only the larger and smaller count


def test_an_image_smaller_than_the_crop_is_one_window():
    assert windows(200, 300, (256, 512), (192, 384)) == [(0, 200, 0, 300)]
    assert window_count(200, 300, (256, 512), (192, 384)) == 1
    assert window_count(1024, 2048, (1024, 1024), (768, 768)) == 3
    assert windows(200, 700, (256, 512), (192, 384)) == [(0, 200, 0, 512), (0, 200, 188, 700)]


@pytest.mark.parametrize("size", [(64, 64), (65, 200), (100, 63), (300, 301), (1, 1)])
@pytest.mark.parametrize("geometry", [((64, 64), (48, 48)), ((64, 32), (64, 17)), ((8, 8), (1, 3))])
def test_windows_cover_every_pixel_and_stay_inside(size, geometry):
    (h, w), ((ch, cw), stride) = size, geometry
    count = np.zeros(size, np.int32)
    for y1, y2, x1, x2 in windows(h, w, (ch, cw), stride):
        assert 0 <= y1 < y2 <= h and 0 <= x1 < x2 <= w
        assert (y2 - y1, x2 - x1) == (min(ch, h), min(cw, w))  # whole wherever the image allows
        count[y1:y2, x1:x2] += 1
    assert count.min() >= 1


# --- cutting and merging ----------------------------------------------------------------------


def test_cut_crops_pads_undersized_windows_with_zeros():
    image = np.arange(1 * 3 * 40 * 100, dtype=np.float32).reshape(1, 3, 40, 100) + 1
    wins = windows(40, 100, (64, 64), (48, 48))
    assert wins == [(0, 40, 0, 64), (0, 40, 36, 100)]
    crops = cut_crops(image, wins, (64, 64))
    assert crops.shape == (2, 3, 64, 64) and crops.dtype == np.float32
    assert np.array_equal(crops[1, :, :40], image[0, :, :, 36:100])
    assert not crops[:, :, 40:].any()  # the padding is zeros (after normalisation)
    nhwc = np.ascontiguousarray(image.transpose(0, 2, 3, 1) % 251).astype(np.uint8) + 1
    crops8 = cut_crops_nhwc(nhwc, wins, (64, 64))
    assert crops8.shape == (2, 64, 64, 3) and crops8.dtype == np.uint8
    assert np.array_equal(crops8[1, :40], nhwc[0, :, 36:100]) and not crops8[:, 40:].any()


def test_merge_averages_overlapping_windows():
    """Window i predicts the constant i + 1 for class 0: where windows overlap the merged logit
    is the mean of theirs."""
    wins = windows(16, 40, (16, 16), (12, 12))
    assert [w[2] for w in wins] == [0, 12, 24]  # the last pulled back from 36 to 24
    crop_logits = np.zeros((3, 2, 4, 4), np.float32)
    for i in range(3):
        crop_logits[i, 0] = i + 1
        crop_logits[i, 1] = -(i + 1)
    merged = merge_logits(crop_logits, wins, (16, 40), (16, 16))
    assert merged.shape == (2, 16, 40) and merged.dtype == np.float32
    expected = np.empty(40, np.float32)
    expected[:12], expected[12:16], expected[16:24] = 1, 1.5, 2
    expected[24:28], expected[28:] = 2.5, 3
    np.testing.assert_allclose(merged[0], np.broadcast_to(expected, (16, 40)))
    np.testing.assert_allclose(merged[1], -merged[0])


def test_merge_equals_the_reference_and_drops_what_padding_added():
    """Logits of a padded window are resized to the crop's size, then cut to the real region;
    the padded rows' logits never reach the image."""
    rng = np.random.default_rng(1)
    crop, stride, hw = (32, 32), (24, 24), (20, 70)  # shorter than the crop: padded windows
    wins = windows(*hw, crop, stride)
    crop_logits = rng.normal(size=(len(wins), 3, 8, 8)).astype(np.float32)
    total, count = np.zeros((3, *hw)), np.zeros(hw)
    for logits, (y1, y2, x1, x2) in zip(crop_logits, wins):
        up = np.stack([_bilinear(p, crop) for p in logits])
        total[:, y1:y2, x1:x2] += up[:, : y2 - y1, : x2 - x1]
        count[y1:y2, x1:x2] += 1
    merged = merge_logits(crop_logits, wins, hw, crop)
    np.testing.assert_allclose(merged, total / count, rtol=0, atol=1e-5)
    crop_logits[:, :, 6:] = 1e6  # logit rows 6.. reach crop rows 22..: the padding only
    np.testing.assert_allclose(merge_logits(crop_logits, wins, hw, crop), merged, atol=0.1)


def test_labels_from_logits_resize_each_plane_then_argmax():
    logits = np.random.default_rng(2).normal(size=(5, 24, 40)).astype(np.float32)
    for frame_hw in ((24, 40), (15, 25), (61, 99)):
        assert _agreement(labels_from_logits(logits, frame_hw), _labels(logits, frame_hw)) > 0.999


def test_padded_whole_logits_are_cut_at_input_scale_then_resized():
    """mmseg's order: logits to the padded input size, padding cut, then the frame size."""
    logits = np.random.default_rng(3).normal(size=(4, 16, 24)).astype(np.float32)
    padded, image, frame = (64, 96), (50, 90), (37, 71)
    full = np.stack([_bilinear(p, padded) for p in logits])[:, :50, :90]
    expected = np.stack([_bilinear(p, frame) for p in full]).argmax(0)
    assert _agreement(labels_from_padded_logits(logits, padded, image, frame), expected) > 0.999
    same = np.stack([_bilinear(p, padded) for p in logits])[:, :50, :90].argmax(0)
    assert _agreement(labels_from_padded_logits(logits, padded, image, image), same) > 0.999


# --- Inference and Preprocess validation --------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "tile"}, "mode must be one of whole, slide"),
        ({"mode": "slide"}, "needs crop as \\(h, w\\)"),
        ({"mode": "slide", "crop": (64, 64)}, "needs stride as \\(h, w\\)"),
        ({"mode": "slide", "crop": (0, 64), "stride": (32, 32)}, "two positive whole numbers"),
        ({"mode": "slide", "crop": (64, 64), "stride": (32, True)}, "got \\(32, True\\)"),
        ({"mode": "slide", "crop": (64, 64), "stride": (32, 32.0)}, "stride"),
        ({"mode": "slide", "crop": (64, 64), "stride": (80, 32)}, "larger than the crop.*height"),
        ({"mode": "slide", "crop": (64, 64), "stride": (32, 65)}, "uncovered; use a stride <="),
        ({"mode": "whole", "crop": (64, 64)}, "takes no crop or stride"),
    ],
)
def test_inference_settings_are_validated(kwargs, match):
    with pytest.raises(UserInputError, match=match):
        Inference(**kwargs)


def test_inference_to_dict_is_the_sidecar_form():
    # Read back through runtime/meta.py's field checks (tests below), not a second parser.
    slide = Inference("slide", (1024, 1024), (768, 768))
    assert slide.to_dict() == {"mode": "slide", "crop": [1024, 1024], "stride": [768, 768]}
    assert Inference("slide", (64, 48), (64, 1)).stride == (64, 1)  # multiples not required
    assert Inference().to_dict() == {"mode": "whole"}


# --- the sidecar's inference section ----------------------------------------------------------


def _meta(**kw) -> ModelMeta:
    base = dict(
        variant="tiny", precision="fp32", class_names=("a", "b"), palette_rgb=((1, 2, 3), (4, 5, 6)),
        input=TensorSpec("input", "float32", "NCHW", ("batch", 3, 64, 64),
                         profile=((1, 3, 64, 64), (4, 3, 64, 64), (16, 3, 64, 64))),
        output=TensorSpec("logits", "float32", "NCHW", ("batch", 2, 16, 16)),
        output_kind="logits", output_stride=4,
        preprocess=Preprocess(64, 64, resize="keep_ratio", scale=(256, 128)),
        inference=Inference("slide", (64, 64), (48, 48)),
    )  # fmt: skip
    base.update(kw)
    return ModelMeta(**base)


def test_sidecar_inference_round_trip_and_absent_section(tmp_path):
    artifact = tmp_path / "m.onnx"
    write_meta(artifact, _meta())
    data = json.loads(sidecar_path(artifact).read_text())
    assert data["inference"] == {"mode": "slide", "crop": [64, 64], "stride": [48, 48]}
    assert data["preprocess"]["resize"] == "keep_ratio" and data["preprocess"]["scale"] == [
        256,
        128,
    ]
    assert read_meta(artifact) == _meta()
    whole = _meta(preprocess=Preprocess(64, 64), inference=Inference())
    data = whole.to_dict()
    del data["inference"]  # a sidecar written before slide inference existed
    sidecar_path(artifact).write_text(json.dumps(data))
    assert read_meta(artifact).inference == Inference()


def _edited(tmp_path, edit) -> str:
    artifact = tmp_path / "m.onnx"
    data = _meta().to_dict()
    edit(data)
    sidecar_path(artifact).write_text(json.dumps(data))
    with pytest.raises(MetaError) as err:
        read_meta(artifact)
    return str(err.value)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d["inference"].update(mode="tile"), "inference.mode is 'tile', expected one of"),
        (lambda d: d["inference"].update(crop=[64, "64"]), "inference.crop is \\[64, '64'\\]"),
        (lambda d: d["inference"].update(stride=[96, 48]), "larger than the crop"),
        (lambda d: d["inference"].pop("stride"), "inference.stride is missing"),
        (lambda d: d.update(inference={"mode": "whole", "crop": [64, 64]}),
         "inference.crop is \\[64, 64\\], expected nothing with mode 'whole'"),
        (lambda d: d.update(inference=[1]), "inference must be a JSON object"),
        (lambda d: d["preprocess"].pop("scale"), "preprocess.scale is missing"),
        (lambda d: d["preprocess"].update(scale=[0, 5]), "preprocess.scale is \\[0, 5\\]"),
        (lambda d: d["preprocess"].update(resize="stretch"),
         "preprocess.scale is \\[256, 128\\], expected null or absent with resize 'stretch'"),
        (lambda d: d["inference"].update(crop=[32, 32], stride=[16, 16]),
         "crop 32x32 is not the model input size 64x64"),
        (lambda d: d["input"].update(shape=[1, 3, 64, 64], profile=None),
         "fixes the batch to 1; re-export with a dynamic batch"),
        (lambda d: d["input"].update(
            shape=["batch", 3, "height", "width"],
            profile=[[1, 3, 96, 96], [1, 3, 96, 96], [4, 3, 128, 128]]),
         "crop 64x64 is outside the input profile"),
        (lambda d: d.update(
            output_kind="labels", fused_argmax=True,
            output={"name": "labels", "dtype": "int32", "layout": "NHW", "shape": ["batch", 64, 64]}),
         "averages the windows' logits.*without --fuse-argmax"),
        (lambda d: d.update(inference={"mode": "whole"}),
         "resize 'keep_ratio' in whole inference needs a graph with dynamic height and width"),
    ],
)  # fmt: skip
def test_inconsistent_inference_sidecars_are_refused(tmp_path, edit, match):
    import re

    message = _edited(tmp_path, edit)
    assert re.search(match, message), message
    assert "\n" not in message


def test_segmenter_refuses_slide_with_fused_argmax_built_in_code():
    labels = TensorSpec("labels", "int32", "NHW", ("batch", 64, 64))
    meta = _meta(output=labels, output_kind="labels", fused_argmax=True)

    class Backend:
        description = "fake"

        def __init__(self):
            self.meta = meta

    from runtime import Segmenter

    with pytest.raises(MetaError, match="model: slide inference averages the windows' logits"):
        Segmenter(Backend())


# --- Segmenter on a tiny ONNX model ------------------------------------------------------------


def _slide_model(make_model, tmp_path, *, fused: bool = False, max_batch: int = 16, **pp_kw):
    path = make_model(tmp_path / "slide.onnx", dynamic=True, batches=(1, 4, max_batch),
                      fused_preprocess=fused)  # fmt: skip
    meta = read_meta(path)
    pp = replace(meta.preprocess, **pp_kw)
    write_meta(path, replace(meta, preprocess=pp, inference=Inference("slide", (64, 64), (48, 48))))
    return path


def _reference_slide(session, name, frame, pp, crop, stride) -> np.ndarray:
    """mmseg's slide written out directly: windows one by one at their own size, numpy
    bilinear resizes, sum / count, resize to the frame, argmax."""
    h, w = keep_ratio_size(*frame.shape[:2], pp.scale)
    image = normalise(cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)[None], pp)
    (ch, cw), (sh, sw) = crop, stride
    total, count = None, np.zeros((h, w))
    for hi in range(max(h - ch + sh - 1, 0) // sh + 1):
        for wi in range(max(w - cw + sw - 1, 0) // sw + 1):
            y2, x2 = min(hi * sh + ch, h), min(wi * sw + cw, w)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            (logits,) = session.run(None, {name: image[:, :, y1:y2, x1:x2]})[0]
            total = np.zeros((logits.shape[0], h, w)) if total is None else total
            total[:, y1:y2, x1:x2] += np.stack([_bilinear(p, (y2 - y1, x2 - x1)) for p in logits])
            count[y1:y2, x1:x2] += 1
    return _labels(total / count, frame.shape[:2])


def test_segmenter_slides_like_the_reference(make_model, tmp_path):
    import onnxruntime as ort

    from runtime import Segmenter

    path = _slide_model(make_model, tmp_path, resize="keep_ratio", scale=(200, 100))
    frame = cv2.resize(
        np.random.default_rng(5).integers(0, 256, (9, 16, 3), np.uint8), (150, 90),
        interpolation=cv2.INTER_LINEAR,
    )  # fmt: skip
    with Segmenter(path, provider="cpu") as seg:
        pp = seg.meta.preprocess
        batch = seg.prepare(frame)  # 150x90 -> 100x167 (factor 1.111): 2 x 4 windows
        assert batch.shape == (8, 3, 64, 64) and batch.dtype == np.float32
        output = seg.infer(batch)
        assert output.shape == (8, 4, 16, 16)
        labels = seg.postprocess(output, frame.shape[:2])
        assert labels.shape == (90, 150) and labels.dtype == np.uint8
        assert np.array_equal(seg(frame), labels)
        timed, times = seg.segment_timed(frame)
        assert np.array_equal(timed, labels) and times.total_ms > 0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = _reference_slide(session, "input", frame, pp, (64, 64), (48, 48))
    agreement = float((labels == expected).mean())
    assert agreement >= 0.999, agreement


def test_segmenter_slides_fused_preprocessing_graphs(make_model, tmp_path):
    from runtime import Segmenter

    frame = np.random.default_rng(6).integers(0, 256, (90, 150, 3), np.uint8)
    plain = _slide_model(make_model, tmp_path, resize="keep_ratio", scale=(200, 100))
    fused_dir = tmp_path / "fused"
    fused_dir.mkdir()
    fused = _slide_model(make_model, fused_dir, fused=True, resize="keep_ratio", scale=(200, 100))
    with Segmenter(plain, provider="cpu") as a, Segmenter(fused, provider="cpu") as b:
        batch = b.prepare(frame)
        assert batch.shape == (8, 64, 64, 3) and batch.dtype == np.uint8
        assert _agreement(a(frame), b(frame)) > 0.999  # no padded window: the same inputs


def test_segmenter_undersized_and_stretched_frames(make_model, tmp_path):
    from runtime import Segmenter

    path = _slide_model(make_model, tmp_path, resize="keep_ratio", scale=(40, 40))
    frame = np.random.default_rng(7).integers(0, 256, (30, 50, 3), np.uint8)
    with Segmenter(path, provider="cpu") as seg:
        batch = seg.prepare(frame)  # resized to 24x40: one window, padded to 64x64
        assert batch.shape == (1, 3, 64, 64) and not batch[0, :, 24:].any()
        assert not batch[0, :, :, 40:].any() and batch[0, :, :24, :40].any()
        assert seg(frame).shape == (30, 50)
    (tmp_path / "stretch").mkdir()
    stretch = _slide_model(make_model, tmp_path / "stretch", resize="stretch")
    with Segmenter(stretch, provider="cpu") as seg:  # stretched to the crop: one window
        assert seg.prepare(frame).shape == (1, 3, 64, 64) and seg(frame).shape == (30, 50)


def test_too_many_windows_are_refused_before_inference(make_model, tmp_path, monkeypatch):
    from runtime import Segmenter

    path = _slide_model(make_model, tmp_path, max_batch=4, resize="keep_ratio", scale=(200, 100))
    frame = np.zeros((90, 150, 3), np.uint8)
    match = r"needs 8 windows.*takes at most 4 per call"
    with Segmenter(path, provider="cpu") as seg, pytest.raises(UserInputError, match=match):
        seg.prepare(frame)
    path = _slide_model(make_model, tmp_path, max_batch=64, resize="keep_ratio", scale=(200, 100))
    monkeypatch.setenv("SCASEG_MAX_BATCH", "5")
    match = r"slide crop 64x64 stride 48x48.*SCASEG_MAX_BATCH=8"
    with Segmenter(path, provider="cpu") as seg, pytest.raises(BudgetError, match=match):
        seg.prepare(frame)


def test_keep_ratio_whole_pads_to_32_and_cuts_back(make_model, tmp_path):
    import onnxruntime as ort

    from runtime import Segmenter

    path = make_model(tmp_path / "whole.onnx", dynamic=True)
    meta = read_meta(path)
    pp = replace(meta.preprocess, resize="keep_ratio", scale=(100, 60))
    write_meta(path, replace(meta, preprocess=pp))
    frame = np.random.default_rng(8).integers(0, 256, (45, 77, 3), np.uint8)
    with Segmenter(path, provider="cpu") as seg:
        batch = seg.prepare(frame)  # 45x77 -> 58x100 (factor 100/77) -> padded 64x128
        assert batch.shape == (1, 3, 64, 128) and not batch[0, :, 58:].any()
        assert not batch[0, :, :, 100:].any()
        labels = seg(frame)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": batch})[0]
    full = np.stack([_bilinear(p, (64, 128)) for p in logits])[:, :58, :100]
    expected = np.stack([_bilinear(p, (45, 77)) for p in full]).argmax(0)
    assert labels.shape == (45, 77) and (labels == expected).mean() >= 0.999
