"""State dict tensors are checked once read: a NaN or infinity anywhere, or a view that repeats
its values, is one CheckpointError naming the tensor."""

from __future__ import annotations

import pytest
import torch

from scaseg.checkpoint import CheckpointError, load_model, read_state_dict, save_checkpoint
from scaseg.model import build_model
from tests.scaseg.hostile_checkpoints import state_with

BIAS = "decode_head.cls_seg.bias"
RUNNING_VAR = "backbone.patch_embed1.proj.1.running_var"


def _broken(tensor: torch.Tensor, where: list[int], value: float) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[where] = value
    return tensor


def _save_ours(tmp_path, model, state):
    """Our own .safetensors format, with the given weights in it."""
    model.load_state_dict(state)
    return save_checkpoint(model, tmp_path / "m.safetensors", {"variant": "tiny"})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=str)
@pytest.mark.parametrize("key", [BIAS, RUNNING_VAR])
def test_non_finite_weights_and_buffers_are_refused_at_load(tmp_path, key, value):
    model = build_model("tiny", 3)
    state = state_with(model)
    state[key] = _broken(state[key], [0, 1], value)
    path = tmp_path / "diverged.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert f"{key} holds 2 NaN or infinite values of {state[key].numel()}" in message
    assert "re-export from a healthy training iteration" in message and "\n" not in message


def test_the_first_bad_tensor_is_named_with_how_many_others(tmp_path):
    model = build_model("tiny", 3)
    state = state_with(model)
    for key in (RUNNING_VAR, "decode_head.fuse.0.weight", BIAS):
        state[key] = _broken(state[key], [0], float("nan"))
    path = _save_ours(tmp_path, model, state)
    with pytest.raises(
        CheckpointError, match=rf"{RUNNING_VAR} holds 1 NaN .* \(and 2 more tensors\)"
    ):
        read_state_dict(path)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float8_e4m3fn])
def test_low_precision_weights_are_checked_too(tmp_path, dtype):
    state = {"w": torch.tensor([1.0, float("nan")]).to(dtype), "ok": torch.ones(2, dtype=dtype)}
    torch.save(state, tmp_path / "half.pth")
    with pytest.raises(CheckpointError, match="w holds 1 NaN or infinite values of 2"):
        read_state_dict(tmp_path / "half.pth")


def test_overlapping_views_are_refused_but_transposes_and_slices_load(tmp_path):
    base = torch.arange(48.0).reshape(6, 8)
    torch.save(
        {"t": base.t(), "slice": base[::2, 1::3], "row": base[2], "ok": base}, tmp_path / "v.pth"
    )
    got, _ = read_state_dict(tmp_path / "v.pth")
    assert torch.equal(got["t"], base.t()) and torch.equal(got["slice"], base[::2, 1::3])
    torch.save({"w": torch.ones(3, 1).expand(3, 4)}, tmp_path / "x.pth")
    with pytest.raises(
        CheckpointError, match=r"w is a view that repeats its values .*stride \[1, 0\]"
    ):
        read_state_dict(tmp_path / "x.pth")
