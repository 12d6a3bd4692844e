"""Parameter and FLOP counts: the bar of the foundation issue."""

import pytest

from scaseg.model import build_model
from scaseg.summary import count_gmacs, format_markdown, variant_complexity


@pytest.mark.slow
def test_scaseg_t_at_512_is_in_the_expected_range():
    c = variant_complexity("t", 150, 512, 512)
    assert 4.0 <= c["model"].params_m <= 9.0
    assert 5.0 <= c["model"].gmacs <= 10.0


@pytest.mark.slow
def test_strip_decoder_is_cheaper_than_cross_which_is_cheaper_than_self():
    g = {kind: variant_complexity("t", 150, 512, 512, attention=kind)["decoder"].gmacs
         for kind in ("strip", "cross", "self")}  # fmt: skip
    assert g["strip"] < g["cross"] < g["self"]


def test_gmacs_use_the_mac_convention():
    # A single 1x1 conv from 3 to 8 channels on 32x32 would be 3*8*32*32 MACs.
    model = build_model("tiny", 2)
    total = count_gmacs(model, 64, 64)
    assert total > 0
    # Doubling both sides multiplies the (spatially linear) conv work by ~4; attention grows faster.
    bigger = count_gmacs(build_model("tiny", 2), 128, 128)
    assert 3.9 < bigger / total < 5.0


def test_markdown_table_lists_every_variant_and_states_the_convention():
    text = format_markdown(150, 64, 64)
    for name in ("tiny", "t", "s", "b", "l", "strip", "cross", "self"):
        assert f"| {name} |" in text
    assert "1 multiply-accumulate = 1 FLOP" in text


@pytest.mark.slow
def test_readme_table_is_the_generated_one():
    from pathlib import Path

    from scaseg.summary import README_END, README_START

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert table == format_markdown(150, 512, 512).strip(), (
        "run `make summary` to refresh README.md"
    )
