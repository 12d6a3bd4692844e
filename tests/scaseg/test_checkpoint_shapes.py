"""The variant, class count and decoder settings read from a state dict's tensor shapes."""

import pytest
import torch

from scaseg.checkpoint import CheckpointError, load_model, save_checkpoint
from scaseg.checkpoint_keys import map_keys
from scaseg.checkpoint_shapes import infer_decoder_fields, resolve_variant
from scaseg.config import VARIANTS
from scaseg.model import build_model
from tests.support.checkpoints import segnext_names


def _shapes_only(variant: str, num_classes: int = 150, **kwargs) -> dict:
    with torch.device("meta"):  # shapes without the memory or init time of S/B/L
        return build_model(variant, num_classes, **kwargs).state_dict()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_is_inferred_from_its_shapes(variant):
    state = map_keys(segnext_names(_shapes_only(variant))).state
    assert resolve_variant(state, None, None, "x.pth") == (variant, "inferred from tensor shapes")


def test_a_given_variant_that_contradicts_the_shapes_names_both(tmp_path):
    torch.save(build_model("tiny", 3).state_dict(), tmp_path / "m.pth")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "m.pth", variant="t")
    message = str(err.value)
    assert "'t' (given)" in message and "SCASeg-TINY" in message and "16,32,64,96" in message


def test_s_and_b_share_widths_and_differ_in_depth():
    state = _shapes_only("b")
    with pytest.raises(CheckpointError, match=r"'s' \(given\).*SCASeg-B .*depths 3,3,12,3"):
        resolve_variant(state, "s", None, "b.pth")


def test_given_and_metadata_variants_are_recorded_as_such(tmp_path):
    model = build_model("tiny", 3)
    torch.save(model.state_dict(), tmp_path / "m.pth")
    assert load_model(tmp_path / "m.pth", variant="tiny")[1]["variant_source"] == "given"
    path = save_checkpoint(model, tmp_path / "m.safetensors", {"variant": "tiny", "num_classes": 3})
    _, info = load_model(path)
    assert info["variant_source"] == "checkpoint metadata"
    assert info["format"] == "safetensors (scaseg)"


def test_metadata_that_contradicts_the_shapes_is_an_error(tmp_path):
    path = save_checkpoint(build_model("tiny", 3), tmp_path / "m.safetensors", {"variant": "t"})
    with pytest.raises(CheckpointError, match=r"'t' \(checkpoint metadata\).*SCASeg-TINY"):
        load_model(path)
    _, info = load_model(path, variant="tiny")  # an explicit variant overrides the file
    assert info["variant"] == "tiny" and info["variant_source"] == "given"


def test_unknown_shapes_are_listed_in_the_error(tmp_path):
    state = dict(build_model("tiny", 3).state_dict())
    for key in [k for k in state if k.startswith("backbone.block2.")]:
        state[key.replace("block2.0.", "block2.1.")] = state[key]  # two blocks in stage 2
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "odd.pth")
    message = str(err.value)
    assert "embed dims 16,32,64,96, depths 1,2,1,1" in message
    assert "match no SCASeg variant" in message and "pass variant=" in message


def test_no_encoder_at_all_is_named(tmp_path):
    torch.save({"decode_head.cls_seg.weight": torch.zeros(3, 8, 1, 1)}, tmp_path / "h.pth")
    with pytest.raises(CheckpointError, match=r"no MSCAN encoder weights \(backbone\.\*\)"):
        load_model(tmp_path / "h.pth")


@pytest.mark.parametrize(
    "fields",
    [
        {"attention": "cross"},
        {"attention": "self"},
        {"lpm": False},
        {"mixing": False},
    ],
)
def test_decoder_ablations_are_read_from_the_shapes(fields):
    state = _shapes_only("tiny", 3, **fields)
    assert infer_decoder_fields(state, "tiny") == fields


def test_an_ablation_model_loads_from_a_plain_state_dict(tmp_path):
    source = build_model("tiny", 7, attention="self", lpm=False).eval()
    torch.save(source.state_dict(), tmp_path / "ablation.pth")
    model, info = load_model(tmp_path / "ablation.pth")
    assert info["decoder"] == {"attention": "self", "lpm": False} and info["num_classes"] == 7
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(x), model(x))


@pytest.mark.parametrize(
    "key",
    ["decode_head.blocks.0.attn.q.weight", "decode_head.fuse.0.weight",
     "decode_head.blocks.0.ffn.fc1.weight", "backbone.block1.0.mlp.fc1.weight"],
)  # fmt: skip
def test_a_scalar_where_a_weight_belongs_is_a_mismatch_not_a_crash(tmp_path, key):
    state = dict(build_model("tiny", 3).state_dict())
    state[key] = torch.tensor(1.0)
    torch.save(state, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match=r"shape mismatch|contradicts|which variant"):
        load_model(tmp_path / "m.pth", variant="tiny")
