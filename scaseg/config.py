"""Frozen configs for the SCASeg model and the variants dict.

The SCASeg paper (arXiv 2411.17061) leaves several choices open; each one is a field here so it can
be corrected when the official code appears. The reconstruction follows the paper's text and its two
direct ancestors (the U-MixFormer decoder, MetaSeg's channel-reduced attention); the decoder's
design is summarised at the top of scaseg/decoder.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from scaseg.errors import ModelConfigError

ATTENTION_KINDS = ("strip", "cross", "self")
INPUT_STRIDE = 32  # the deepest encoder stage; H and W must be multiples of it
# Ceilings on decoder sizes, which checkpoint metadata may set: SCASeg-L's widest decoder layer
# is 2048 channels (ffn_ratio 4 x 512) and its LPM kernel 3; beyond these a typo or a hostile
# file would only allocate gigabytes before the shape check refuses them.
MAX_WIDTH = 4096
MAX_KERNEL = 31
MAX_FFN_RATIO = 16.0


def _check_four(name: str, values, positive: bool = True, kind: type = int) -> None:
    if not isinstance(values, (tuple, list)) or len(values) != 4:
        count = len(values) if isinstance(values, (tuple, list)) else type(values).__name__
        raise ModelConfigError(
            f"{name} must have 4 entries (one per stage), got {count}: {_shown(values)}"
        )
    for value in values:
        _check_number(f"{name} entries", value, kind)
    if positive and any(v <= 0 for v in values):
        raise ModelConfigError(f"{name} entries must be > 0, got {values}")


def _check_number(name: str, value, kind: type = float) -> None:
    """`value` is a finite number (`kind` int: a whole number); bools are neither."""
    whole = isinstance(value, int) and not isinstance(value, bool)
    real = whole or isinstance(value, float)
    if not (whole if kind is int else real) or (not whole and not math.isfinite(value)):
        expected = "a whole number" if kind is int else "a finite number"
        raise ModelConfigError(f"{name} must be {expected}, got {_shown(value)}")


def _check_range(
    name: str, value, low, high, kind: type, low_open: bool = False, high_open: bool = False
) -> None:
    _check_number(name, value, kind)
    if value < low or value > high or (low_open and value == low) or (high_open and value == high):
        span = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ModelConfigError(f"{name} must be in {span}, got {value}")


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ModelConfigError(f"{name} must be True or False, got {_shown(value)}")


def _shown(value) -> str:
    text = (
        repr(value) if isinstance(value, (int, float, str, tuple, list)) else type(value).__name__
    )
    return text if len(text) <= 60 else f"{text[:57]}..."


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
        _check_four("mlp_ratios", self.mlp_ratios, kind=float)
        _check_four("attention_kernels", self.attention_kernels)
        if any(k % 2 == 0 for k in self.attention_kernels):
            raise ModelConfigError(f"attention_kernels must be odd, got {self.attention_kernels}")
        _check_number("in_channels", self.in_channels, int)
        _check_number("drop_path_rate", self.drop_path_rate)
        _check_number("layer_scale_init", self.layer_scale_init)
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
                f"attention must be one of {', '.join(ATTENTION_KINDS)}, got {_shown(self.attention)}"
            )
        _check_four("heads", self.heads)
        for name in ("lpm", "mixing", "qkv_bias", "proj_bias", "lpm_strip"):
            _check_bool(name, getattr(self, name))
        if self.mix_dim is not None:
            _check_range("mix_dim", self.mix_dim, 1, MAX_WIDTH, int)
        _check_range("embed_dim", self.embed_dim, 1, MAX_WIDTH, int)
        _check_range("lpm_kernel", self.lpm_kernel, 1, MAX_KERNEL, int)
        if self.lpm_kernel % 2 == 0:
            raise ModelConfigError(f"lpm_kernel must be odd, got {self.lpm_kernel}")
        _check_range("ffn_ratio", self.ffn_ratio, 0.0, MAX_FFN_RATIO, float, low_open=True)
        if self.attn_scale is not None:
            _check_range("attn_scale", self.attn_scale, 0.0, math.inf, float, low_open=True)
        _check_range("dropout", self.dropout, 0.0, 1.0, float, high_open=True)


@dataclass(frozen=True)
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    num_classes: int = 150

    def __post_init__(self) -> None:
        _check_number("num_classes", self.num_classes, int)
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
    key = variant.lower().removeprefix("scaseg-") if isinstance(variant, str) else None
    if key not in VARIANTS:
        valid = ", ".join(VARIANTS)
        raise ModelConfigError(f"unknown variant {_shown(variant)}; valid variants: {valid}")
    decoder = replace(DecoderConfig(), **DECODER_OVERRIDES[key])
    unknown = sorted(set(decoder_fields) - {f.name for f in fields(DecoderConfig)})
    if unknown:
        raise ModelConfigError(
            f"unknown decoder setting(s) {', '.join(unknown)}; known: "
            f"{', '.join(f.name for f in fields(DecoderConfig))}"
        )
    decoder = replace(decoder, **{k: v for k, v in decoder_fields.items() if v is not None})
    return ModelConfig(encoder=VARIANTS[key], decoder=decoder, num_classes=num_classes)
