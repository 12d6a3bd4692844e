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


# --- read_inference_config: how mmseg scores the checkpoint -----------------------------------

CITYSCAPES_CFG = """
crop_size = (1024, 1024)
data_preprocessor = dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=crop_size)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(768, 768)))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1,
    dataset=dict(type='CityscapesDataset', data_root='data/cityscapes/', pipeline=test_pipeline))
"""
SLIDE = {"mode": "slide", "crop": (1024, 1024), "stride": (768, 768)}
KEEP = {"mode": "keep_ratio", "scale": (2048, 1024)}


def _inference(text: str, key: str = "cfg") -> dict:
    from scaseg.checkpoint_config import read_inference_config

    return read_inference_config({"meta": {key: text}})


def test_mmseg1_cityscapes_slide_and_keep_ratio():
    info = _inference(CITYSCAPES_CFG)
    assert info == {
        "inference": SLIDE,
        "resize": KEEP,
        "inference_from": "meta.cfg (training config)",
    }


def test_mmengine_dump_style_inline_pipeline_and_top_level_test_cfg():
    """A dumped config repeats the pipeline inline; the two agree, so it is read once."""
    text = (
        "test_cfg = dict(mode='slide', crop_size=(1024, 1024), stride=(768, 768))\n"
        "test_pipeline = [dict(type='Resize', scale=(2048, 1024), keep_ratio=True)]\n"
        "test_dataloader = dict(dataset=dict(pipeline=["
        "dict(type='LoadImageFromFile'), dict(keep_ratio=True, scale=(2048, 1024), type='Resize')"
        "]))\n"
    )
    assert _inference(text) == {
        "inference": SLIDE, "resize": KEEP, "inference_from": "meta.cfg (training config)"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "inference", "resize"),
    [
        ("model = dict(test_cfg=dict(mode='whole'))", {"mode": "whole"}, None),
        ("model = dict(test_cfg=dict())", {"mode": "whole"}, None),  # mmseg's default mode
        ("model = dict(type='EncoderDecoder')", None, None),
        ("model = dict()\nmodel.test_cfg = dict(mode='slide', crop_size=(512, 512), "
         "stride=(341, 341))", {"mode": "slide", "crop": (512, 512), "stride": (341, 341)}, None),
        ("model = dict()\nmodel['test_cfg'] = {'mode': 'whole'}", {"mode": "whole"}, None),
        ("test_pipeline = [dict(type='Resize', scale=(512, 512))]", None,
         {"mode": "stretch", "scale": (512, 512)}),  # mmcv 2.x: keep_ratio defaults to False
        ("test_pipeline = [dict(type='Resize', scale=1024, keep_ratio=True)]", None,
         {"mode": "keep_ratio", "scale": (1024, 1024)}),
        ("s = (2048, 512)\np = [dict(type='Resize', scale=s, keep_ratio=True)]\n"
         "test_dataloader = dict(dataset=dict(pipeline=p))", None,
         {"mode": "keep_ratio", "scale": (2048, 512)}),
    ],
)  # fmt: skip
def test_inference_config_forms(text, inference, resize):
    info = _inference(text)
    assert info.get("inference") == inference and info.get("resize") == resize
    assert "metadata_warnings" not in info


def test_mmseg0x_multi_scale_flip_aug_without_flip():
    text = """
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiScaleFlipAug', img_scale=(2048, 1024), flip=False,
         transforms=[dict(type='Resize', keep_ratio=True), dict(type='Normalize', **img_norm_cfg),
                     dict(type='ImageToTensor', keys=['img'])])]
data = dict(samples_per_gpu=2, test=dict(type='CityscapesDataset', pipeline=test_pipeline))
model = dict(type='EncoderDecoder', test_cfg=dict(mode='slide', crop_size=(769, 769),
             stride=(513, 513)))
"""
    info = _inference(text, "config")
    assert info["resize"] == KEEP  # mmseg 0.x's Resize keeps the ratio by default
    assert info["inference"] == {"mode": "slide", "crop": (769, 769), "stride": (513, 513)}
    assert "metadata_warnings" not in info


@pytest.mark.parametrize(
    ("text", "kept", "warning"),
    [
        ("model = dict(test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(768, 768)))",
         {}, "stride (768, 768) is larger than its crop_size (512, 512)"),
        ("model = dict(test_cfg=dict(mode='slide', crop_size=512, stride=(256, 256)))",
         {}, "crop_size is 512, expected (h, w)"),
        ("model = dict(test_cfg=dict(mode='slide', crop_size=(512, 512)))",
         {}, "stride is missing"),
        ("model = dict(test_cfg=dict(mode='tiles'))", {}, "mode 'tiles' is not 'whole' or 'slide'"),
        ("model = dict(test_cfg=cfg_from_somewhere())", {}, "is cfg_from_somewhere(), not a dict"),
        ("test_cfg = dict(mode='whole')\nmodel = dict(test_cfg=dict(mode='slide', "
         "crop_size=(8, 8), stride=(8, 8)))", {}, "more than one test_cfg"),
        ("test_pipeline = [dict(type='Resize', scale=(512, 512))]\ntest_dataloader = dict("
         "dataset=dict(pipeline=[dict(type='Resize', scale=(512, 512), keep_ratio=True)]))",
         {}, "more than one test pipeline Resize"),
        ("test_pipeline = [dict(type='LoadImageFromFile')]", {}, "has no Resize step"),
        ("test_pipeline = [dict(type='Resize', scale=(1, 2)), dict(type='Resize', scale=(3, 4))]",
         {}, "has 2 Resize steps"),
        ("test_pipeline = [dict(type='RandomResize', scale=(2048, 1024))]", {}, "RandomResize"),
        ("test_pipeline = [dict(type='Resize', scale_factor=0.5)]", {}, "scale_factor"),
        ("test_pipeline = [dict(type='Resize', scale=(2048, -1), keep_ratio=True)]",
         {}, "scale is (2048, -1), expected 2 whole numbers > 0"),
        ("test_pipeline = [dict(type='Resize', scale=(2048, 1024), keep_ratio='yes')]",
         {}, "keep_ratio is 'yes', not True/False"),
        ("test_pipeline = make_pipeline()", {}, "not a list of steps"),
        ("test_pipeline = [dict(type='MultiScaleFlipAug', img_scale=(2048, 1024), flip=True, "
         "transforms=[dict(type='Resize', keep_ratio=True)])]", {}, "flip augmentation"),
        ("model = dict(test_cfg=dict(mode='whole'))\ntest_pipeline = [dict(type='Pad')]",
         {"inference": {"mode": "whole"}}, "has no Resize step"),
    ],
)  # fmt: skip
def test_unusable_or_contradictory_inference_configs_warn(text, kept, warning):
    info = _inference(text)
    assert {k: info[k] for k in ("inference", "resize") if k in info} == kept
    assert any(warning in w for w in info["metadata_warnings"]), info["metadata_warnings"]
    assert all(w.endswith("ignored") or "none was used" in w for w in info["metadata_warnings"])


def test_inference_config_is_parsed_never_run_and_budgeted(tmp_path):
    from runtime.errors import BudgetError
    from scaseg.checkpoint_config import read_inference_config

    marker = tmp_path / "ran"
    text = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')\n" + CITYSCAPES_CFG
    assert _inference(text)["inference"] == SLIDE and not marker.exists()
    assert "metadata_warnings" in _inference("def broken(:\n")
    assert _inference("a = b\nb = a\nmodel = dict(test_cfg=a)")["metadata_warnings"]  # a cycle
    assert read_inference_config({"meta": {}}) == read_inference_config("no meta") == {}
    with pytest.raises(BudgetError, match=r"meta\.cfg needs 1,200,000 characters"):
        read_inference_config({"meta": {"cfg": "x = 1\n" * 200_000}}, "checkpoint big.pth")
