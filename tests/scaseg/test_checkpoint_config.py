"""The input normalisation a checkpoint was trained with, read (never executed) from the config
text mmengine and mmcv store in its meta."""

from __future__ import annotations

import pytest

from scaseg.checkpoint_config import read_preprocess_config

MMSEG1_CFG = """
crop_size = (512, 512)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size)
model = dict(type='EncoderDecoder', data_preprocessor=data_preprocessor)
"""
MMSEG0_CFG = """
img_norm_cfg = dict(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], to_rgb=False)
test_pipeline = [dict(type='Normalize', **img_norm_cfg)]
"""


def test_mmengine_data_preprocessor():
    info = read_preprocess_config({"meta": {"cfg": MMSEG1_CFG}})
    assert info["preprocess"] == {
        "color": "rgb", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]
    }  # fmt: skip
    assert info["preprocess_from"] == "meta.cfg (training config)"


def test_mmseg0x_img_norm_cfg_in_bgr():
    info = read_preprocess_config({"meta": {"config": MMSEG0_CFG}})
    assert info["preprocess"] == {"color": "bgr", "mean": [0.0] * 3, "std": [255.0] * 3}


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("model = dict(type='EncoderDecoder')", {}),
        ("def broken(:\n", "not parseable Python"),
        ("a = dict(mean=[1, 2, 3], std=[1, 1, 1])\nb = dict(mean=[0, 0, 0], std=[2, 2, 2])",
         "more than one input normalisation"),
        ("a = dict(mean=[1, 2], std=[1, 1, 1])", {}),  # not three channels: not ours
    ],
)  # fmt: skip
def test_absent_unreadable_or_ambiguous_configs(text, expect):
    info = read_preprocess_config({"meta": {"cfg": text}})
    if isinstance(expect, dict):
        assert info == expect
    else:
        assert "preprocess" not in info and expect in info["metadata_warnings"][0]


def test_config_text_is_parsed_never_run(tmp_path):
    marker = tmp_path / "ran"
    text = (
        f"__import__('pathlib').Path({str(marker)!r}).write_text('x')\n"
        f"data_preprocessor = dict(mean=[1, 2, 3], std=[4, 5, 6], bgr_to_rgb=True)\n"
    )
    info = read_preprocess_config({"meta": {"cfg": text}})
    assert info["preprocess"]["mean"] == [1.0, 2.0, 3.0] and not marker.exists()
