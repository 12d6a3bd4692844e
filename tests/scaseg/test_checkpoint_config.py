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


@pytest.mark.parametrize(
    ("norm", "warning"),
    [
        ("mean=[1, 2, 3], std=[0, 1, 1]", "std [0, 1, 1] must be > 0"),
        ("mean=[1, 2, 3], std=[-58.4, 57.1, 57.4]", "std [-58.4, 57.1, 57.4] must be > 0"),
        ("mean=[1e999, 2, 3], std=[1, 1, 1]", "mean [inf, 2, 3] is not finite"),
        ("mean=[1, 2, 3], std=[1, 1, 1e999]", "std [1, 1, inf] is not finite"),
        ("mean=[1, 2, 3], std=[1, 1, 1], bgr_to_rgb='yes'", "colour order is not True/False"),
    ],
)
def test_a_normalisation_that_cannot_be_used_is_ignored_with_a_reason(norm, warning):
    info = read_preprocess_config({"meta": {"cfg": f"data_preprocessor = dict({norm})\n"}})
    assert "preprocess" not in info
    assert warning in info["metadata_warnings"][0], info["metadata_warnings"]


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "-" * 100_000 + "1",  # the parser's stack
        "x = " + "+".join(["1"] * 100_000),  # the AST's depth
        "x = dict(mean=[" + "1+" * 900 + "1, 2, 3], std=[1, 1, 1])",  # literal_eval's recursion
    ],
    ids=["unary", "binop", "nested-value"],
)
def test_config_text_that_nests_deep_is_a_warning_not_a_crash(text):
    info = read_preprocess_config({"meta": {"cfg": text}})
    assert "preprocess" not in info


def test_config_text_over_its_budget_is_refused_before_it_is_parsed():
    from runtime.errors import BudgetError

    text = "x = 1\n" * 200_000
    with pytest.raises(BudgetError, match=r"meta\.cfg needs 1,200,000 characters.*CONFIG_TEXT"):
        read_preprocess_config({"meta": {"cfg": text}}, "checkpoint big.pth")
