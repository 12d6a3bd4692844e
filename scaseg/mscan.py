"""MSCAN encoder (the SegNeXt backbone), with mmsegmentation's parameter names.

Names match mmseg's `MSCAN` (`patch_embed1.proj.0`, `block1.0.attn.spatial_gating_unit.conv0_1`,
`norm1`, ...) so ImageNet-pretrained MSCAN checkpoints load without a key map. Unlike mmseg, blocks
work on (B,C,H,W) maps throughout: no token reshapes between blocks, which keeps the ONNX graph free
of shape arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn

from scaseg.config import EncoderConfig


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at inference and in exported graphs)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (B,C,H,W) map (exports as LayerNormalization)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B,C,H,W) -> (B,H,W,C)
        x = super().forward(x)
        return x.permute(0, 3, 1, 2)  # -> (B,C,H,W)


class StemConv(nn.Module):
    """Two 3x3 stride-2 convs: stride 4 overall."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, out_channels // 2, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels // 2),
            nn.GELU(),
            nn.Conv2d(out_channels // 2, out_channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class OverlapPatchEmbed(nn.Module):
    """3x3 stride-2 conv + BN at the start of stages 2-4."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class MSCAAttention(nn.Module):
    """Multi-scale conv attention: 5x5 depthwise + three depthwise strip pairs, then a 1x1 gate."""

    def __init__(self, channels: int, kernels: tuple[int, int, int, int]) -> None:
        super().__init__()
        square, *strips = kernels
        self.conv0 = nn.Conv2d(channels, channels, square, padding=square // 2, groups=channels)
        for i, k in enumerate(strips):
            row = nn.Conv2d(channels, channels, (1, k), padding=(0, k // 2), groups=channels)
            col = nn.Conv2d(channels, channels, (k, 1), padding=(k // 2, 0), groups=channels)
            self.add_module(f"conv{i}_1", row)
            self.add_module(f"conv{i}_2", col)
        self.conv3 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.conv0(x)
        attn_0 = self.conv0_2(self.conv0_1(attn))
        attn_1 = self.conv1_2(self.conv1_1(attn))
        attn_2 = self.conv2_2(self.conv2_1(attn))
        attn = self.conv3(attn + attn_0 + attn_1 + attn_2)
        return attn * x  # the attention map gates the input


class MSCASpatialAttention(nn.Module):
    def __init__(self, channels: int, kernels: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(channels, channels, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = MSCAAttention(channels, kernels)
        self.proj_2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))
        return y + x


class Mlp(nn.Module):
    """1x1 conv, 3x3 depthwise conv, GELU, 1x1 conv."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class MSCABlock(nn.Module):
    def __init__(
        self, channels: int, mlp_ratio: float, kernels, drop_path: float, layer_scale: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(channels)
        self.attn = MSCASpatialAttention(channels, kernels)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.BatchNorm2d(channels)
        self.mlp = Mlp(channels, int(channels * mlp_ratio))
        self.layer_scale_1 = nn.Parameter(layer_scale * torch.ones(channels))
        self.layer_scale_2 = nn.Parameter(layer_scale * torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale_1 = self.layer_scale_1.view(1, -1, 1, 1)  # (C,) -> (1,C,1,1)
        scale_2 = self.layer_scale_2.view(1, -1, 1, 1)
        x = x + self.drop_path(scale_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(scale_2 * self.mlp(self.norm2(x)))


class MSCAN(nn.Module):
    """Four stages at strides 4/8/16/32; returns [F1, F2, F3, F4] as (B,C_i,H/s_i,W/s_i) maps."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_dims = cfg.embed_dims
        total = sum(cfg.depths)
        rates = [cfg.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        cur = 0
        for i, (dim, depth) in enumerate(zip(cfg.embed_dims, cfg.depths)):
            if i == 0:
                embed = StemConv(cfg.in_channels, dim)
            else:
                embed = OverlapPatchEmbed(cfg.embed_dims[i - 1], dim)
            blocks = nn.ModuleList(
                MSCABlock(
                    dim,
                    cfg.mlp_ratios[i],
                    cfg.attention_kernels,
                    rates[cur + j],
                    cfg.layer_scale_init,
                )
                for j in range(depth)
            )
            cur += depth
            setattr(self, f"patch_embed{i + 1}", embed)
            setattr(self, f"block{i + 1}", blocks)
            setattr(self, f"norm{i + 1}", ChannelLayerNorm(dim))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i in range(1, 5):
            x = getattr(self, f"patch_embed{i}")(x)
            for block in getattr(self, f"block{i}"):
                x = block(x)
            x = getattr(self, f"norm{i}")(x)
            outs.append(x)
        return outs
