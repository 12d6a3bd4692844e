"""Model shapes per variant and size, ablation switches, and input-size errors."""

import pytest
import torch

from scaseg.config import VARIANTS, DecoderConfig, EncoderConfig, ModelConfig, variant_config
from scaseg.model import SCASeg, build_model, check_input_size, nearest_valid_size

# (variant, sizes): two input sizes each; tiny inputs for the large variants keep this fast.
SIZES = {"tiny": [(64, 64), (96, 128)], "t": [(64, 64), (128, 96)], "s": [(32, 32), (64, 96)],
         "b": [(32, 32), (64, 32)], "l": [(32, 32), (32, 64)]}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_outputs_logits_at_stride_4(variant):
    torch.manual_seed(0)
    model = build_model(variant, num_classes=5).eval()
    for h, w in SIZES[variant]:
        with torch.no_grad():
            y = model(torch.randn(2, 3, h, w))
        assert y.shape == (2, 5, h // 4, w // 4)
        assert torch.isfinite(y).all()


@pytest.mark.parametrize(
    "switch",
    [
        {"attention": "strip"},
        {"attention": "cross"},
        {"attention": "self"},
        {"lpm": False},
        {"mixing": False},
        {"attention": "cross", "mixing": False, "lpm": False},
    ],
)
def test_ablation_switches_build_and_run(switch):
    model = build_model("tiny", 3, **switch).eval()
    for key, value in switch.items():
        assert getattr(model.cfg.decoder, key) == value
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 96)).shape == (1, 3, 16, 24)


def test_ablation_switches_change_the_network():
    counts = {
        kind: sum(p.numel() for p in build_model("tiny", 3, attention=kind).parameters())
        for kind in ("strip", "cross", "self")
    }
    assert len(set(counts.values())) == 3
    no_lpm = build_model("tiny", 3, lpm=False)
    assert all(block.lpm is None for block in no_lpm.decode_head.blocks)
    no_mix = build_model("tiny", 3, mixing=False)
    assert all(len(m.projs) == 1 for m in no_mix.decode_head.mixers)


def test_strip_attention_projects_queries_and_keys_to_one_channel_per_head():
    model = build_model("t", 150)
    for block, heads in zip(model.decode_head.blocks, (1, 2, 5, 8)):
        assert block.attn.q.out_features == heads
        assert block.attn.k.out_features == heads
        assert block.attn.v.out_features == block.attn.proj.in_features


def test_unknown_variant_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"valid variants: tiny, t, s, b, l"):
        build_model("xl", 10)


def test_config_fields_are_validated_with_the_field_name():
    with pytest.raises(ValueError, match="attention"):
        DecoderConfig(attention="linear")
    with pytest.raises(ValueError, match="depths"):
        EncoderConfig(depths=(1, 2, 3))
    with pytest.raises(ValueError, match="num_classes"):
        ModelConfig(num_classes=0)
    with pytest.raises(ValueError, match="not divisible by its 3 heads"):
        variant_config("tiny", 4, heads=(1, 1, 3, 2))


@pytest.mark.parametrize(
    ("h", "w", "hint"), [(500, 375, "512x384"), (65, 64, "64x64"), (10, 700, "32x704")]
)
def test_size_not_multiple_of_32_names_the_nearest_valid_size(h, w, hint):
    with pytest.raises(ValueError, match=f"{h}x{w}.*not a multiple of 32.*{hint}"):
        check_input_size(h, w)
    model = build_model("tiny", 2).eval()
    with pytest.raises(ValueError, match=hint):
        model(torch.randn(1, 3, h, w))


def test_nearest_valid_size():
    assert nearest_valid_size(1) == 32
    assert nearest_valid_size(48) == 64  # ties round to even multiples, both are valid
    assert nearest_valid_size(500) == 512


def test_model_is_deterministic_in_eval_mode():
    model = build_model("tiny", 4).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_forward_has_no_adaptive_pooling_or_data_dependent_sizes():
    model = build_model("tiny", 4)
    kinds = {type(m).__name__ for m in model.modules()}
    assert not {k for k in kinds if k.startswith("Adaptive")}


def test_instances_are_independent():
    a, b = SCASeg(variant_config("tiny", 3)), SCASeg(variant_config("tiny", 3))
    assert a.cfg == b.cfg
    a.reset_classifier(7)
    assert b.cfg.num_classes == 3 and a.cfg.num_classes == 7


def test_an_input_side_past_the_budget_is_refused_before_anything_is_allocated(monkeypatch):
    from runtime.errors import BudgetError

    with pytest.raises(BudgetError, match=r"99968x99968.*SCASEG_MAX_INPUT_SIDE"):
        check_input_size(99968, 99968)
    monkeypatch.setenv("SCASEG_MAX_INPUT_SIDE", "100000")
    check_input_size(99968, 99968)  # raised on purpose: allowed
