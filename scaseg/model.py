"""The SCASeg model: MSCAN encoder + SCASeg decoder head, and `build_model`."""

from __future__ import annotations

import torch
from torch import nn

from runtime.budgets import check
from scaseg.config import INPUT_STRIDE, ModelConfig, variant_config
from scaseg.decoder import SCASegHead
from scaseg.errors import ModelConfigError
from scaseg.mscan import MSCAN

OUTPUT_STRIDE = 4  # logits come out at 1/4 of the input size


def nearest_valid_size(size: int, stride: int = INPUT_STRIDE) -> int:
    return max(stride, int(round(size / stride)) * stride)


def check_input_size(height: int, width: int, stride: int = INPUT_STRIDE) -> None:
    """Raise ModelConfigError naming the nearest valid size when H or W is not a multiple of
    stride; BudgetError when a side is past the `input_side` budget (the export would try to
    allocate the activations before failing)."""
    check("input_side", max(height, width), f"input {height}x{width} (HxW)")
    if height % stride == 0 and width % stride == 0 and height > 0 and width > 0:
        return
    h, w = nearest_valid_size(height, stride), nearest_valid_size(width, stride)
    raise ModelConfigError(
        f"input {height}x{width} (HxW) is not a multiple of {stride}; "
        f"resize or pad to {h}x{w}, the nearest valid size"
    )


class SCASeg(nn.Module):
    """(B,3,H,W) normalised RGB -> (B,K,H/4,W/4) logits."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = MSCAN(cfg.encoder)
        self.decode_head = SCASegHead(cfg.encoder.embed_dims, cfg.num_classes, cfg.decoder)
        self.apply(_init_weights)

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A shape check only; exporters trace concrete sizes, so this is not data-dependent flow.
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            check_input_size(int(x.shape[-2]), int(x.shape[-1]))
        return self.decode_head(self.backbone(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier for a new class count (fresh weights)."""
        old = self.decode_head.cls_seg
        self.decode_head.cls_seg = nn.Conv2d(old.in_channels, num_classes, 1)
        _init_weights(self.decode_head.cls_seg)
        self.cfg = ModelConfig(self.cfg.encoder, self.cfg.decoder, num_classes)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def build_model(
    variant: str,
    num_classes: int,
    attention: str | None = None,
    lpm: bool | None = None,
    mixing: bool | None = None,
) -> SCASeg:
    """Build a SCASeg variant (tiny, t, s, b, l); None keeps the variant's default."""
    cfg = variant_config(variant, num_classes, attention=attention, lpm=lpm, mixing=mixing)
    return SCASeg(cfg)
