"""Activation outliers put into a model by a function-preserving rescaling (tests, benchmarks).

In each MSCAN MLP (fc1 -> depthwise dwconv -> GELU -> fc2), a few fc1 output channels (weight
and bias) are multiplied by `factor` and the matching depthwise dwconv channels divided by it.
The network computes the same function (to float rounding), but the fc1 outputs now hold a few
channels `factor` times larger than the rest: per-tensor INT8 activation scales in front of
dwconv then crush every other channel.
"""

from __future__ import annotations

import torch

from scaseg.mscan import Mlp


def add_mlp_outliers(model: torch.nn.Module, channels: int = 3, factor: float = 2000.0) -> int:
    """Rescale `channels` channels of every MSCAN MLP in place; returns how many MLPs changed."""
    changed = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, Mlp):
                continue
            hidden = module.fc1.out_channels
            picks = torch.linspace(0, hidden - 1, channels).round().long().unique()
            module.fc1.weight[picks] *= factor
            module.fc1.bias[picks] *= factor
            module.dwconv.weight[picks] /= factor
            changed += 1
    return changed


def add_strip_outliers(
    model: torch.nn.Module, channels: int = 3, factor: float = 2000.0, blocks: int | None = None
) -> int:
    """The same trick on MSCA attention's first strip pair (conv0_1 -> conv0_2), both depthwise:
    an outlier that cross-layer equalization of group-1 producers does not touch. `blocks`
    limits it to the first n attention modules; returns how many changed."""
    from scaseg.mscan import MSCAAttention

    changed = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, MSCAAttention) or (blocks is not None and changed >= blocks):
                continue
            hidden = module.conv0_1.out_channels
            picks = torch.linspace(0, hidden - 1, channels).round().long().unique()
            module.conv0_1.weight[picks] *= factor
            module.conv0_1.bias[picks] *= factor
            module.conv0_2.weight[picks] /= factor
            changed += 1
    return changed


def add_norm_outliers(model: torch.nn.Module, channels: int = 3, factor: float = 2000.0) -> int:
    """The same trick on each MSCAN block's norm2 (BatchNorm) -> MLP fc1: norm2's scale and bias
    of a few channels times `factor`, fc1's matching input channels divided by it (exact: fc1 is
    linear in each input channel). Returns how many blocks changed."""
    from scaseg.mscan import MSCABlock

    changed = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, MSCABlock):
                continue
            hidden = module.norm2.num_features
            picks = torch.linspace(0, hidden - 1, channels).round().long().unique()
            module.norm2.weight[picks] *= factor
            module.norm2.bias[picks] *= factor
            module.mlp.fc1.weight[:, picks] /= factor
            changed += 1
    return changed


def add_ffn_norm_outliers(
    model: torch.nn.Module, channels: int = 3, factor: float = 2000.0, blocks: int | None = None
) -> int:
    """Outliers equalization does not reach: in the decoder's blocks, a few channels of the
    LayerNorm before the FFN (norm_ffn weight and bias) times `factor`, the FFN's first 1x1
    conv's matching input channels divided by it. The function is the same (fc1 is linear in each
    input channel), but a token -> map reshape stands between the two, so they are no producer ->
    consumer pair, and only the float fallback helps. `blocks` limits it to the first n decoder
    blocks; returns how many changed."""
    from scaseg.decoder import CrossLayerBlock

    changed = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, CrossLayerBlock) or (
                blocks is not None and changed >= blocks
            ):
                continue
            dim = module.norm_ffn.normalized_shape[0]
            picks = torch.linspace(0, dim - 1, channels).round().long().unique()
            module.norm_ffn.weight[picks] *= factor
            module.norm_ffn.bias[picks] *= factor
            module.ffn.fc1.weight[:, picks] /= factor
            changed += 1
    return changed
