"""Checkpoint round-trip, mmseg layouts, the mismatch report and refused pickle payloads."""

import os
import pickle

import pytest
import torch

from scaseg.checkpoint import (
    CheckpointError,
    load_into,
    load_model,
    read_state_dict,
    save_checkpoint,
)
from scaseg.model import build_model


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_safetensors_round_trip_restores_model_and_info(tmp_path):
    torch.manual_seed(0)
    model = build_model("tiny", 4, attention="cross").eval()
    info = {
        "variant": "tiny",
        "num_classes": 4,
        "class_names": list("abcd"),
        "decoder": {"attention": "cross"},
    }
    path = save_checkpoint(model, tmp_path / "m.safetensors", info)
    loaded, got = load_model(path)
    assert got["class_names"] == list("abcd")
    assert loaded.cfg.decoder.attention == "cross"
    assert _same_weights(model, loaded)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_float16_storage_halves_the_file_and_stays_close(tmp_path):
    model = build_model("tiny", 4).eval()
    info = {"variant": "tiny", "num_classes": 4}
    full = save_checkpoint(model, tmp_path / "f32.safetensors", info)
    half = save_checkpoint(model, tmp_path / "f16.safetensors", info, dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _ = load_model(half)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=5e-2)


def test_mmseg_state_dict_with_prefixes_loads(tmp_path):
    model = build_model("tiny", 3)
    state = {
        "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
        "meta": {"epoch": 1},
    }
    state["state_dict"]["auxiliary_head.conv_seg.weight"] = torch.zeros(3, 8, 1, 1)
    torch.save(state, tmp_path / "mmseg.pth")
    loaded, _ = load_model(tmp_path / "mmseg.pth", variant="tiny")
    assert _same_weights(model, loaded)


def test_bare_imagenet_backbone_loads_into_the_encoder():
    src = build_model("tiny", 3)
    backbone = {
        k.removeprefix("backbone."): v
        for k, v in src.state_dict().items()
        if k.startswith("backbone.")
    }
    backbone["head.weight"] = torch.zeros(1000, 96)  # the ImageNet classifier is dropped
    dst = build_model("tiny", 3)
    report = load_into(dst, backbone)
    assert report.ok and report.ignored == ["head.weight"]
    assert torch.equal(dst.backbone.block1[0].attn.spatial_gating_unit.conv0_1.weight,
                       src.backbone.block1[0].attn.spatial_gating_unit.conv0_1.weight)  # fmt: skip


def test_mmseg_parameter_names_are_used():
    keys = set(build_model("t", 150).state_dict())
    for key in ("backbone.patch_embed1.proj.0.weight", "backbone.patch_embed2.norm.weight",
                "backbone.block1.0.attn.spatial_gating_unit.conv2_2.weight",
                "backbone.block4.1.layer_scale_2", "backbone.norm3.bias", "backbone.block2.0.mlp.dwconv.weight"):  # fmt: skip
        assert key in keys


def test_mismatch_report_lists_missing_unexpected_and_shapes():
    model = build_model("tiny", 3)
    state = dict(model.state_dict())
    del state["backbone.norm1.weight"]
    state["decode_head.extra.weight"] = torch.zeros(1)
    state["backbone.norm2.bias"] = torch.zeros(7)
    with pytest.raises(CheckpointError) as err:
        load_into(build_model("tiny", 3), state)
    msg = str(err.value)
    assert "1 missing key(s): backbone.norm1.weight" in msg
    assert "1 unexpected key(s): decode_head.extra.weight" in msg
    assert "backbone.norm2.bias: checkpoint [7] vs model [32]" in msg


def test_different_class_count_needs_reinit_and_only_touches_the_classifier(tmp_path):
    src = build_model("tiny", 3)
    path = save_checkpoint(src, tmp_path / "m.safetensors", {"variant": "tiny", "num_classes": 3})
    with pytest.raises(CheckpointError, match="--reinit-classifier"):
        load_model(path, num_classes=5)
    model, info = load_model(path, num_classes=5, reinit_classifier=True)
    assert model.decode_head.cls_seg.out_channels == 5 and info["num_classes"] == 5
    assert torch.equal(model.decode_head.fuse[0].weight, src.decode_head.fuse[0].weight)


class _Payload:
    """Unpickling this would create a file: the side effect must never happen."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"w": _Payload(str(marker))}}, f)
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_state_dict(path)
    assert not marker.exists()


def test_torch_saved_payload_is_refused_too(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "is empty"),
        (b"not a checkpoint at all", "not a plain tensor checkpoint"),
        (b"PK\x03\x04trunc", "cannot read checkpoint"),
        (None, "does not exist"),
    ],
)
def test_unreadable_checkpoints_get_one_clear_error(tmp_path, content, match):
    path = tmp_path / "bad.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        read_state_dict(path)


def test_truncated_safetensors_is_reported(tmp_path):
    path = save_checkpoint(build_model("tiny", 3), tmp_path / "m.safetensors", {"variant": "tiny"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read safetensors"):
        read_state_dict(path)


def test_plain_state_dict_needs_no_variant(tmp_path):
    torch.save(build_model("tiny", 3).state_dict(), tmp_path / "plain.pth")
    _, info = load_model(tmp_path / "plain.pth")
    assert info["variant"] == "tiny" and info["num_classes"] == 3
    assert info["variant_source"] == "inferred from tensor shapes"
    assert info["format"] == "plain state dict"
