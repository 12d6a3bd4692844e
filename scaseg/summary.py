"""Parameter and GFLOP counts per variant, and of the decoder alone per attention kind.

GFLOPs follow this field's papers: one multiply-accumulate = one FLOP (the fvcore / mmcv
convention). torch.utils.flop_counter counts a MAC as two FLOPs, so its totals are halved. Only
conv, linear and matmul work is counted; norms, activations and softmax are left out, as fvcore does.

    python -m scaseg.summary --size 512x512 --classes 150 [--markdown]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from scaseg.config import ATTENTION_KINDS, VARIANTS
from scaseg.model import SCASeg, build_model, check_input_size


@dataclass(frozen=True)
class Complexity:
    params_m: float  # millions of parameters
    gmacs: float  # GFLOPs in the MAC convention


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_gmacs(model: SCASeg, height: int, width: int, part: str = "all") -> float:
    """Forward GMACs at (height, width), batch 1, computed on the meta device (no real compute)."""
    check_input_size(height, width)
    model = model.to("meta").eval()
    x = torch.empty(1, 3, height, width, device="meta")
    with torch.no_grad():
        feats = model.backbone(x)
        counter = FlopCounterMode(display=False)
        if part == "decoder":
            with counter:
                model.decode_head(feats)
        else:
            with counter:
                model.decode_head(model.backbone(x))
    return counter.get_total_flops() / 2 / 1e9  # torch counts a MAC as 2 FLOPs


def variant_complexity(variant: str, classes: int, height: int, width: int, **kw) -> dict:
    model = build_model(variant, classes, **kw)
    return {
        "model": Complexity(count_params(model) / 1e6, count_gmacs(model, height, width)),
        "decoder": Complexity(
            count_params(model.decode_head) / 1e6,
            count_gmacs(model, height, width, part="decoder"),
        ),
    }


def summary_rows(classes: int, height: int, width: int) -> tuple[list, list]:
    variants = []
    for name in VARIANTS:
        c = variant_complexity(name, classes, height, width)
        variants.append((name, c["model"].params_m, c["model"].gmacs, c["decoder"].gmacs))
    attention = []
    for kind in ATTENTION_KINDS:
        c = variant_complexity("t", classes, height, width, attention=kind)
        attention.append((kind, c["decoder"].params_m, c["decoder"].gmacs))
    return variants, attention


def format_markdown(classes: int, height: int, width: int) -> str:
    variants, attention = summary_rows(classes, height, width)
    lines = [
        f"Input {height}x{width}, {classes} classes. GFLOPs = GMACs (1 multiply-accumulate = 1 FLOP,"
        " the fvcore/mmcv convention; torch.utils.flop_counter counts 2). Conv/linear/matmul only.",
        "",
        "| variant | params (M) | GFLOPs | decoder GFLOPs |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {n} | {p:.2f} | {g:.2f} | {d:.2f} |" for n, p, g, d in variants]
    lines += [
        "",
        "Decoder of SCASeg-T alone, by attention kind:",
        "",
        "| attention | decoder params (M) | decoder GFLOPs |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {p:.3f} | {g:.2f} |" for k, p, g in attention]
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"size must look like 512x512 (HxW), got {text!r}"
        ) from err
    return h, w


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=(512, 512), help="HxW, default 512x512")
    parser.add_argument("--classes", type=int, default=150)
    parser.add_argument("--markdown", action="store_true", help="(the output is always Markdown)")
    args = parser.parse_args(argv)
    h, w = args.size
    try:
        check_input_size(h, w)
    except ValueError as err:
        parser.error(str(err))
    print(format_markdown(args.classes, h, w))


if __name__ == "__main__":
    main()
