"""Frozen configs for the SCASeg model and the variants dict.

The SCASeg paper (arXiv 2411.17061) leaves several choices open; each one is a field here so it can
be corrected when the official code appears. The reconstruction follows the paper's text and its two
direct ancestors (the U-MixFormer decoder, MetaSeg's channel-reduced attention); the decoder's
design is summarised at the top of scaseg/decoder.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from scaseg.errors import ModelConfigError

ATTENTION_KINDS = ("strip", "cross", "self")
INPUT_STRIDE = 32  # the deepest encoder stage; H and W must be multiples of it


def _check_four(name: str, values: tuple, positive: bool = True) -> None:
    if len(values) != 4:
        raise ModelConfigError(
            f"{name} must have 4 entries (one per stage), got {len(values)}: {values}"
        )
    if positive and any(v <= 0 for v in values):
        raise ModelConfigError(f"{name} entries must be > 0, got {values}")


@dataclass(frozen=True)
class EncoderConfig:
    """MSCAN (SegNeXt backbone) hyper-parameters."""

    embed_dims: tuple[int, int, int, int] = (32, 64, 160, 256)
    depths: tuple[int, int, int, int] = (3, 3, 5, 2)
    mlp_ratios: tuple[float, float, float, float] = (8, 8, 4, 4)
    in_channels: int = 3
    drop_path_rate: float = 0.1
    layer_scale_init: float = 1e-2
    # (kernel of the square conv, then the three strip lengths), as in MSCAN.
    attention_kernels: tuple[int, int, int, int] = (5, 7, 11, 21)

    def __post_init__(self) -> None:
        _check_four("embed_dims", self.embed_dims)
        _check_four("depths", self.depths)
        _check_four("mlp_ratios", self.mlp_ratios)
        _check_four("attention_kernels", self.attention_kernels)
        if any(k % 2 == 0 for k in self.attention_kernels):
            raise ModelConfigError(f"attention_kernels must be odd, got {self.attention_kernels}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ModelConfigError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")


@dataclass(frozen=True)
class DecoderConfig:
    """SCASeg decoder: cross-layer K/V mixing, Cross-Layer Blocks with Strip Cross-Attention."""

    heads: tuple[int, int, int, int] = (1, 2, 5, 8)  # stages 1..4
    attention: str = "strip"  # strip | cross (vanilla cross-attention) | self (on F_i)
    lpm: bool = True  # Local Perception Module on/off
    mixing: bool = True  # cross-layer K/V mixing on/off (off: K/V from F_i alone)
    # Width each pooled K/V source map is projected to; None = the query stage's width.
    mix_dim: int | None = None
    attn_scale: float | None = None  # None = (C/h) ** -0.5
    qkv_bias: bool = False
    proj_bias: bool = True
    ffn_ratio: float = 4.0
    lpm_kernel: int = 3  # depthwise kernel of the LPM
    lpm_strip: bool = False  # LPM uses a 1xk + kx1 depthwise strip pair instead of kxk
    embed_dim: int = 128  # fused head width
    dropout: float = 0.1  # before the classifier

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_KINDS:
            raise ModelConfigError(
                f"attention must be one of {', '.join(ATTENTION_KINDS)}, got {self.attention!r}"
            )
        _check_four("heads", self.heads)
        if self.mix_dim is not None and self.mix_dim <= 0:
            raise ModelConfigError(f"mix_dim must be > 0 or None, got {self.mix_dim}")
        if self.ffn_ratio <= 0:
            raise ModelConfigError(f"ffn_ratio must be > 0, got {self.ffn_ratio}")
        if self.lpm_kernel < 1 or self.lpm_kernel % 2 == 0:
            raise ModelConfigError(f"lpm_kernel must be odd and >= 1, got {self.lpm_kernel}")
        if self.embed_dim <= 0:
            raise ModelConfigError(f"embed_dim must be > 0, got {self.embed_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelConfigError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    num_classes: int = 150

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ModelConfigError(f"num_classes must be >= 1, got {self.num_classes}")
        for stage, (c, h) in enumerate(zip(self.encoder.embed_dims, self.decoder.heads), 1):
            if c % h:
                raise ModelConfigError(
                    f"stage {stage}: width {c} is not divisible by its {h} heads; "
                    "pick heads that divide embed_dims"
                )


# Variants: channels / depths / MLP ratios of MSCAN-T/S/B/L; "tiny" is ours, for tests.
VARIANTS: dict[str, EncoderConfig] = {
    "tiny": EncoderConfig(
        embed_dims=(16, 32, 64, 96),
        depths=(1, 1, 1, 1),
        mlp_ratios=(4, 4, 4, 4),
        drop_path_rate=0.0,
    ),
    "t": EncoderConfig(embed_dims=(32, 64, 160, 256), depths=(3, 3, 5, 2)),
    "s": EncoderConfig(embed_dims=(64, 128, 320, 512), depths=(2, 2, 4, 2)),
    "b": EncoderConfig(embed_dims=(64, 128, 320, 512), depths=(3, 3, 12, 3), drop_path_rate=0.1),
    "l": EncoderConfig(embed_dims=(64, 128, 320, 512), depths=(3, 5, 27, 3), drop_path_rate=0.3),
}
# Decoder settings that differ per variant (the fused head is wider for the larger encoders).
DECODER_OVERRIDES: dict[str, dict] = {
    "tiny": {"heads": (1, 1, 2, 2), "embed_dim": 32},
    "t": {},
    "s": {"embed_dim": 256},
    "b": {"embed_dim": 512},
    "l": {"embed_dim": 512},
}


def variant_config(variant: str, num_classes: int, **decoder_fields) -> ModelConfig:
    """ModelConfig of a named variant; decoder_fields override DecoderConfig fields."""
    key = variant.lower().removeprefix("scaseg-")
    if key not in VARIANTS:
        valid = ", ".join(VARIANTS)
        raise ModelConfigError(f"unknown variant {variant!r}; valid variants: {valid}")
    decoder = replace(DecoderConfig(), **DECODER_OVERRIDES[key])
    decoder = replace(decoder, **{k: v for k, v in decoder_fields.items() if v is not None})
    return ModelConfig(encoder=VARIANTS[key], decoder=decoder, num_classes=num_classes)
