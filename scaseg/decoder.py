"""SCASeg decoder: cross-layer K/V mixing and Cross-Layer Blocks with Strip Cross-Attention.

Encoder maps F1..F4 (strides 4..32) are decoded deepest first into D4..D1; each D_i keeps F_i's
width and resolution. K/V for stage i come from [D4..D_{i+1}, F_i..F1] average-pooled onto the
stride-32 grid. Strip attention projects queries and keys to ONE channel per head, so the QK^T
product costs N*M*h instead of N*M*C multiply-accumulates; A@V is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scaseg.config import DecoderConfig


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)  # (B,C,H,W) -> (B,HW,C)


def to_map(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    b, _, h, w = like.shape
    return x.transpose(1, 2).reshape(b, -1, h, w)  # (B,HW,C) -> (B,C,H,W)


class StripCrossAttention(nn.Module):
    """Queries and keys projected to one channel per head ("strips"); values keep full width."""

    def __init__(self, dim: int, kv_dim: int, heads: int, cfg: DecoderConfig) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = cfg.attn_scale if cfg.attn_scale is not None else self.head_dim**-0.5
        self.q = nn.Linear(dim, heads, bias=cfg.qkv_bias)
        self.k = nn.Linear(kv_dim, heads, bias=cfg.qkv_bias)
        self.v = nn.Linear(kv_dim, dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=cfg.proj_bias)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).transpose(1, 2).unsqueeze(-1)  # (B,N,h) -> (B,h,N,1)
        k = self.k(y).transpose(1, 2).unsqueeze(-2)  # (B,M,h) -> (B,h,1,M)
        v = self.v(y).reshape(b, -1, self.heads, self.head_dim).transpose(1, 2)  # (B,h,M,C/h)
        attn = ((q * self.scale) @ k).softmax(dim=-1)  # (B,h,N,M)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)  # (B,h,N,C/h) -> (B,N,C)
        return self.proj(out)


class VanillaCrossAttention(nn.Module):
    """Multi-head cross-attention with full-width queries and keys (the ablation baseline)."""

    def __init__(self, dim: int, kv_dim: int, heads: int, cfg: DecoderConfig) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = cfg.attn_scale if cfg.attn_scale is not None else self.head_dim**-0.5
        self.q = nn.Linear(dim, dim, bias=cfg.qkv_bias)
        self.k = nn.Linear(kv_dim, dim, bias=cfg.qkv_bias)
        self.v = nn.Linear(kv_dim, dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=cfg.proj_bias)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b = t.shape[0]
        return t.reshape(b, -1, self.heads, self.head_dim).transpose(1, 2)  # (B,L,C)->(B,h,L,C/h)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self._split(self.q(x)), self._split(self.k(y)), self._split(self.v(y))
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B,h,N,M)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)  # -> (B,N,C)
        return self.proj(out)


class LocalPerception(nn.Module):
    """LPM: a cheap conv path on F_i whose sigmoid output gates F_i."""

    def __init__(self, dim: int, cfg: DecoderConfig) -> None:
        super().__init__()
        k = cfg.lpm_kernel
        self.pw1 = nn.Conv2d(dim, dim, 1)
        if cfg.lpm_strip:
            self.dw = nn.Sequential(
                nn.Conv2d(dim, dim, (1, k), padding=(0, k // 2), groups=dim),
                nn.Conv2d(dim, dim, (k, 1), padding=(k // 2, 0), groups=dim),
            )
        else:
            self.dw = nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim)
        self.bn = nn.BatchNorm2d(dim)
        self.act = nn.GELU()
        self.pw2 = nn.Conv2d(dim, dim, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        gate = self.pw2(self.act(self.bn(self.dw(self.pw1(f)))))
        return f * gate.sigmoid()


class ConvFFN(nn.Module):
    """Linear C->rC, 3x3 depthwise conv, GELU, Linear rC->C, on (B,C,H,W) maps (1x1 = Linear)."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class CrossLayerBlock(nn.Module):
    """x = x + Attn(LN(x), GELU(LN(M))) + LPM(F);  x = x + FFN(LN(x))."""

    def __init__(self, dim: int, kv_dim: int, heads: int, cfg: DecoderConfig) -> None:
        super().__init__()
        self.kind = cfg.attention
        self.norm_q = nn.LayerNorm(dim)
        if cfg.attention == "strip":
            self.attn = StripCrossAttention(dim, kv_dim, heads, cfg)
        elif cfg.attention == "cross":
            self.attn = VanillaCrossAttention(dim, kv_dim, heads, cfg)
        else:  # self: keys and values are the stage's own tokens
            self.attn = VanillaCrossAttention(dim, dim, heads, cfg)
        self.norm_kv = nn.LayerNorm(kv_dim) if cfg.attention != "self" else None
        self.act_kv = nn.GELU()
        self.lpm = LocalPerception(dim, cfg) if cfg.lpm else None
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = ConvFFN(dim, cfg.ffn_ratio)

    def forward(self, f: torch.Tensor, kv_map: torch.Tensor | None) -> torch.Tensor:
        x = to_tokens(f)  # (B,N,C)
        q = self.norm_q(x)
        if self.norm_kv is None:
            y = q  # self-attention on F_i
        else:
            y = self.act_kv(self.norm_kv(to_tokens(kv_map)))  # (B,M,Cm)
        x = x + self.attn(q, y)
        if self.lpm is not None:
            x = x + to_tokens(self.lpm(f))
        x_map = to_map(x, f)
        return x_map + self.ffn(to_map(self.norm_ffn(x), f))


class KVMixer(nn.Module):
    """Average-pool each source onto the stride-32 grid, 1x1 conv each, concat on channels."""

    def __init__(self, src_dims: list[int], src_strides: list[int], out_dim: int) -> None:
        super().__init__()
        # kernel = stride = ratio to the stride-32 grid; fixed sizes keep any input size exact.
        self.pools = nn.ModuleList(
            nn.AvgPool2d(32 // s) if s < 32 else nn.Identity() for s in src_strides
        )
        self.projs = nn.ModuleList(nn.Conv2d(d, out_dim, 1) for d in src_dims)

    def forward(self, sources: list[torch.Tensor]) -> torch.Tensor:
        pooled = [proj(pool(s)) for s, pool, proj in zip(sources, self.pools, self.projs)]
        return torch.cat(pooled, dim=1)  # (B, n_src*out_dim, H/32, W/32)


class SCASegHead(nn.Module):
    """Four Cross-Layer Blocks (deepest first) and the fused head; logits at stride 4."""

    STRIDES = (4, 8, 16, 32)

    def __init__(self, in_dims: tuple[int, ...], num_classes: int, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.in_dims = tuple(in_dims)
        mixers, blocks = [], []
        for i in range(4):  # index 0..3 = stage 1..4
            dim = in_dims[i]
            mix_dim = cfg.mix_dim or dim
            if cfg.attention == "self":
                mixers.append(nn.Identity())
                kv_dim = dim
            elif cfg.mixing:
                mixers.append(KVMixer(list(in_dims), list(self.STRIDES), mix_dim))
                kv_dim = 4 * mix_dim
            else:
                mixers.append(KVMixer([dim], [self.STRIDES[i]], mix_dim))
                kv_dim = mix_dim
            blocks.append(CrossLayerBlock(dim, kv_dim, cfg.heads[i], cfg))
        self.mixers = nn.ModuleList(mixers)
        self.blocks = nn.ModuleList(blocks)
        self.fuse = nn.Sequential(
            nn.Conv2d(sum(in_dims), cfg.embed_dim, 1, bias=False),
            nn.BatchNorm2d(cfg.embed_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout2d(cfg.dropout)
        self.cls_seg = nn.Conv2d(cfg.embed_dim, num_classes, 1)

    def _kv_sources(self, i: int, feats: list[torch.Tensor], decoded: dict) -> list[torch.Tensor]:
        if not self.cfg.mixing:
            return [feats[i]]
        # Decoder outputs where they exist (deeper stages), encoder maps otherwise.
        # Index j is stage j+1.
        return [decoded[j] if j in decoded else feats[j] for j in range(4)]

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        decoded: dict[int, torch.Tensor] = {}
        for i in (3, 2, 1, 0):
            kv = None
            if self.cfg.attention != "self":
                kv = self.mixers[i](self._kv_sources(i, feats, decoded))
            decoded[i] = self.blocks[i](feats[i], kv)
        ups = [decoded[0]] + [
            F.interpolate(decoded[i], scale_factor=2**i, mode="bilinear", align_corners=False)
            for i in (1, 2, 3)
        ]
        x = self.fuse(torch.cat(ups, dim=1))  # (B, sum C_i, H/4, W/4) -> (B, E, H/4, W/4)
        return self.cls_seg(self.dropout(x))
