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


def _rescale(model, kind, pair, channels: int, factor: float, blocks: int | None) -> int:
    """For each `kind` module (the first `blocks` of them), `pair(module)` names (producer,
    consumer, consumer input axis): a few evenly spaced output channels of the producer (weight
    and bias) are multiplied by `factor` and the consumer's matching input channels divided by
    it. Returns how many modules changed."""
    changed = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, kind) or (blocks is not None and changed >= blocks):
                continue
            producer, consumer, axis = pair(module)
            picks = torch.linspace(0, producer.weight.shape[0] - 1, channels).round().long()
            picks = picks.unique()
            producer.weight[picks] *= factor
            producer.bias[picks] *= factor
            consumer.weight.index_copy_(
                axis, picks, consumer.weight.index_select(axis, picks) / factor
            )
            changed += 1
    return changed


def add_mlp_outliers(model: torch.nn.Module, channels: int = 3, factor: float = 2000.0) -> int:
    """In every MSCAN MLP: fc1 output channels times `factor`, the depthwise dwconv's matching
    channels divided by it. Returns how many MLPs changed."""
    return _rescale(model, Mlp, lambda m: (m.fc1, m.dwconv, 0), channels, factor, None)


def add_strip_outliers(
    model: torch.nn.Module, channels: int = 3, factor: float = 2000.0, blocks: int | None = None
) -> int:
    """The same trick on MSCA attention's first strip pair (conv0_1 -> conv0_2, both
    depthwise). `blocks` limits it to the first n attention modules."""
    from scaseg.mscan import MSCAAttention

    return _rescale(
        model, MSCAAttention, lambda m: (m.conv0_1, m.conv0_2, 0), channels, factor, blocks
    )


def add_norm_outliers(model: torch.nn.Module, channels: int = 3, factor: float = 2000.0) -> int:
    """The same trick on each MSCAN block's norm2 (BatchNorm scale and bias) -> MLP fc1 (input
    channels): exact, as fc1 is linear in each input channel."""
    from scaseg.mscan import MSCABlock

    return _rescale(model, MSCABlock, lambda m: (m.norm2, m.mlp.fc1, 1), channels, factor, None)


def add_ffn_norm_outliers(
    model: torch.nn.Module, channels: int = 3, factor: float = 2000.0, blocks: int | None = None
) -> int:
    """Outliers equalization does not reach: in the decoder's blocks, the LayerNorm before the
    FFN (norm_ffn weight and bias) -> the FFN's first 1x1 conv (input channels). The function is
    the same, but a token -> map reshape stands between the two, so they are no producer ->
    consumer pair, and only the float fallback helps. `blocks` limits it to the first n decoder
    blocks."""
    from scaseg.decoder import CrossLayerBlock

    return _rescale(
        model, CrossLayerBlock, lambda m: (m.norm_ffn, m.ffn.fc1, 1), channels, factor, blocks
    )
