"""Model settings of the wrong type or out of range are a ModelConfigError naming the field:
they may come from a checkpoint's metadata, and a bare TypeError would be reported as a bug."""

from __future__ import annotations

import pytest

from scaseg.config import DecoderConfig, EncoderConfig, ModelConfig, variant_config
from scaseg.errors import ModelConfigError


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"heads": "abcd"}, "heads must have 4 entries"),
        ({"heads": (1, 2, "5", 8)}, "heads entries must be a whole number, got '5'"),
        ({"ffn_ratio": "4"}, "ffn_ratio must be a finite number, got '4'"),
        ({"ffn_ratio": float("nan")}, "ffn_ratio must be a finite number, got nan"),
        ({"ffn_ratio": 1000.0}, "ffn_ratio must be in (0.0, 16.0], got 1000.0"),
        ({"embed_dim": 10**9}, "embed_dim must be in [1, 4096]"),
        ({"embed_dim": 2.5}, "embed_dim must be a whole number, got 2.5"),
        ({"mix_dim": [64]}, "mix_dim must be a whole number, got [64]"),
        ({"lpm_kernel": 4}, "lpm_kernel must be odd"),
        ({"lpm": "yes"}, "lpm must be True or False, got 'yes'"),
        ({"attn_scale": -1.0}, "attn_scale must be in (0.0, inf]"),
        ({"dropout": 1.0}, "dropout must be in [0.0, 1.0)"),
        ({"attention": ["strip"]}, "attention must be one of strip, cross, self"),
        ({"bogus": 1}, "unknown decoder setting(s) bogus"),
    ],
)
def test_decoder_settings_of_the_wrong_type_or_range_are_refused(fields, words):
    with pytest.raises(ModelConfigError) as err:
        variant_config("tiny", 3, **fields)
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: ModelConfig(num_classes="3"), "num_classes must be a whole number"),
        (lambda: ModelConfig(num_classes=True), "num_classes must be a whole number"),
        (lambda: EncoderConfig(embed_dims=(16, 32, 64, None)), "embed_dims entries"),
        (lambda: EncoderConfig(drop_path_rate="0.1"), "drop_path_rate must be a finite number"),
        (lambda: variant_config(5, 3), "unknown variant 5"),
        (lambda: DecoderConfig(qkv_bias=None), "qkv_bias must be True or False"),
    ],
)
def test_other_settings_of_the_wrong_type_are_refused(build, words):
    with pytest.raises(ModelConfigError, match=words.replace("(", r"\(")):
        build()


def test_every_variant_still_validates():
    for variant in ("tiny", "t", "s", "b", "l"):
        assert variant_config(variant, 150, heads=None).num_classes == 150
