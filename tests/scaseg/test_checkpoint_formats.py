"""Checkpoints as users bring them (mmengine, mmseg 0.x, original SegNeXt names, bare backbones,
other heads) load with no extra arguments, give the source model's outputs and say what they were."""

import pytest
import torch

from scaseg.checkpoint import CheckpointError, load_into, load_model, read_state_dict
from scaseg.model import build_model
from tests.support.checkpoints import (
    CLASSES,
    PALETTE,
    save_backbone_checkpoint,
    save_mmengine_checkpoint,
    save_mmseg0x_checkpoint,
    save_segnext_lightham_checkpoint,
)

pytest.importorskip("mmengine")

DWCONV_RULE = "mlp.dwconv.dwconv. -> mlp.dwconv."


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _same_outputs(a, b) -> bool:
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize(
    ("save", "fmt", "container"),
    [
        (lambda m, p: save_mmengine_checkpoint(m, p), "mmengine/mmseg 1.x", "zip"),
        (lambda m, p: save_mmengine_checkpoint(m, p, legacy_format=True), "mmengine/mmseg 1.x",
         "legacy"),
        (lambda m, p: save_mmseg0x_checkpoint(m, p), "mmseg 0.x", "zip"),
        (lambda m, p: torch.save(m.state_dict(), p), "plain state dict", "zip"),
    ],
    ids=["mmengine", "mmengine-legacy-format", "mmseg0x", "plain"],
)  # fmt: skip
def test_each_format_loads_with_no_arguments_and_matches_the_source(tmp_path, save, fmt, container):
    torch.manual_seed(0)
    source = build_model("tiny", 3, attention="cross", lpm=False).eval()
    path = tmp_path / "m.pth"
    save(source, path)
    model, info = load_model(path)
    assert _same_outputs(source, model)
    assert info["format"] == fmt and info["container"] == container
    assert info["variant"] == "tiny" and info["variant_source"] == "inferred from tensor shapes"
    assert info["num_classes"] == 3 and info["random_decoder"] is False
    assert model.cfg.decoder.attention == "cross" and model.cfg.decoder.lpm is False
    if fmt != "plain state dict":
        assert info["class_names"] == list(CLASSES) and info["palette_rgb"] == PALETTE
        assert info["metadata_warnings"] == []


def test_mmseg0x_metadata_and_segnext_names_on_t(tmp_path):
    """SCASeg-T saved with the original SegNeXt names: 26 depthwise convs renamed, reported."""
    torch.manual_seed(0)
    source = build_model("t", 3).eval()
    path = save_mmseg0x_checkpoint(source, tmp_path / "t.pth", segnext_names=True)
    model, info = load_model(path)
    assert _same_weights(source, model)  # T's forward is slow on CPU; equal weights suffice
    assert info["variant"] == "t" and info["format"] == "mmseg 0.x"
    assert info["remapped"] == [(DWCONV_RULE, 26)]
    assert info["class_names"] == list(CLASSES)


def test_mmengine_segnext_names_and_dataparallel_prefix_are_reported(tmp_path):
    source = build_model("tiny", 3).eval()
    from tests.support.checkpoints import mmengine_checkpoint, model_state

    state = {f"module.{k}": v for k, v in model_state(source, original_names=True).items()}
    torch.save(mmengine_checkpoint(source, state=state), tmp_path / "m.pth")
    model, info = load_model(tmp_path / "m.pth")
    assert _same_outputs(source, model)
    assert dict(info["remapped"]) == {"module.* -> *": len(state), DWCONV_RULE: 8}


@pytest.mark.parametrize(
    ("classes", "palette", "warning"),
    [
        (CLASSES, [[1, 2, 3]] * 2 + [[1, 2]], "palette ignored: not a list of RGB triples"),
        (CLASSES, [[1, 2, 300]] * 3, "palette ignored"),
        (["a", 3, "c"], PALETTE, "classes ignored: not a list of names"),
        (("a", "b"), PALETTE, "class names ignored: 2 names for a classifier of 3 classes"),
    ],
)
def test_malformed_metadata_is_ignored_with_a_reason(tmp_path, classes, palette, warning):
    path = save_mmengine_checkpoint(build_model("tiny", 3), tmp_path / "m.pth", classes, palette)
    _, info = load_model(path)
    assert any(warning in w for w in info["metadata_warnings"]), info["metadata_warnings"]


def test_numpy_values_in_metadata_are_ignored_not_run(tmp_path):
    import numpy as np

    palette = [[np.int64(1), np.int64(2), np.int64(3)]] * 3
    path = save_mmengine_checkpoint(build_model("tiny", 3), tmp_path / "m.pth", CLASSES, palette)
    _, info = load_model(path)
    assert "palette_rgb" not in info and info["class_names"] == list(CLASSES)
    assert "placeholder" in info["metadata_warnings"][0]


def test_backbone_only_checkpoint_is_refused_unless_a_random_decoder_is_allowed(tmp_path):
    source = build_model("tiny", 3)
    path = save_backbone_checkpoint(source, tmp_path / "mscan.pth")
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert "decoder would be random" in message and "allow_random_decoder=True" in message
    assert "--allow-random-decoder" in message and "\n" not in message
    with pytest.raises(CheckpointError, match=r"class count.*pass num_classes"):
        load_model(path, allow_random_decoder=True)
    model, info = load_model(path, num_classes=5, allow_random_decoder=True)
    assert info["random_decoder"] is True and info["variant"] == "tiny"
    assert set(info["ignored_keys"]) == {"head.weight", "head.bias"}
    assert ("* -> backbone.* (bare MSCAN)", len(source.backbone.state_dict())) in info["remapped"]
    assert torch.equal(model.backbone.block1[0].mlp.dwconv.weight,
                       source.backbone.block1[0].mlp.dwconv.weight)  # fmt: skip


def test_another_heads_decoder_is_refused_then_ignored_when_allowed(tmp_path):
    source = build_model("t", 150)
    path = save_segnext_lightham_checkpoint(source, tmp_path / "segnext_t.pth", num_classes=150)
    with pytest.raises(CheckpointError, match=r"belong to another head.*decoder would be random"):
        load_model(path)
    model, info = load_model(path, allow_random_decoder=True)
    assert info["random_decoder"] is True and info["num_classes"] == 150  # from its conv_seg
    assert "decode_head.conv_seg.weight" in info["ignored_keys"]
    assert (DWCONV_RULE, 26) in info["remapped"]
    assert torch.equal(model.backbone.norm4.weight, source.backbone.norm4.weight)


def test_load_into_reports_foreign_decoder_keys_as_ignored(tmp_path):
    source = build_model("t", 150)
    path = save_segnext_lightham_checkpoint(source, tmp_path / "segnext_t.pth")
    state, _ = read_state_dict(path)
    report = load_into(build_model("t", 150), state)
    assert report.ok and report.random_decoder and not report.unexpected
    assert "decode_head.squeeze.conv.weight" in report.ignored
