"""What model a state dict belongs to, read from its tensor shapes alone.

The variant follows from the encoder: stage widths (`backbone.norm{i}.weight`), block counts
(`backbone.block{i}.{j}.`) and MLP widths. The class count follows from the classifier. Decoder
settings that change shapes (attention kind, LPM, K/V mixing, head width) are read from the
decoder's tensors, so an ablation model trained elsewhere loads without a config.
Keys are expected in our names (after `scaseg.checkpoint_keys.map_keys`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from scaseg.config import DECODER_OVERRIDES, VARIANTS, DecoderConfig
from scaseg.errors import CheckpointError

_BLOCK = re.compile(r"^backbone\.block([1-4])\.(\d+)\.")


@dataclass(frozen=True)
class EncoderShape:
    embed_dims: tuple[int | None, ...]
    depths: tuple[int, ...]
    mlp_ratios: tuple[float | None, ...]

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.embed_dims)
        return f"embed dims {dims}, depths {','.join(map(str, self.depths))}"


def encoder_shape(state: dict[str, torch.Tensor]) -> EncoderShape | None:
    """Stage widths, depths and MLP ratios, or None when there is no MSCAN encoder at all."""
    if not any(k.startswith("backbone.") for k in state):
        return None
    dims, depths, ratios = [], [], []
    for stage in range(1, 5):
        norm = state.get(f"backbone.norm{stage}.weight")
        dim = int(norm.shape[0]) if norm is not None and norm.dim() == 1 else None
        blocks = {
            int(m.group(2)) for k in state if (m := _BLOCK.match(k)) and m.group(1) == str(stage)
        }
        fc1 = rows(state.get(f"backbone.block{stage}.0.mlp.fc1.weight"))
        ratio = fc1 / dim if fc1 is not None and dim else None
        dims.append(dim)
        depths.append(max(blocks) + 1 if blocks else 0)
        ratios.append(ratio)
    return EncoderShape(tuple(dims), tuple(depths), tuple(ratios))


def rows(tensor: torch.Tensor | None) -> int | None:
    """The first dimension of a tensor (out channels of a weight); None for None or a scalar."""
    return int(tensor.shape[0]) if tensor is not None and tensor.dim() >= 1 else None


def match_variant(shape: EncoderShape) -> str | None:
    for name, cfg in VARIANTS.items():
        if (
            shape.embed_dims == cfg.embed_dims
            and shape.depths == cfg.depths
            and all(r is None or r == float(c) for r, c in zip(shape.mlp_ratios, cfg.mlp_ratios))
        ):
            return name
    return None


def known_variants() -> str:
    return "; ".join(
        f"{name}: embed dims {','.join(map(str, c.embed_dims))}, depths {','.join(map(str, c.depths))}"
        for name, c in VARIANTS.items()
    )


def resolve_variant(
    state: dict[str, torch.Tensor], given: str | None, from_file: str | None, path
) -> tuple[str, str]:
    """(variant, source): "given", "checkpoint metadata" or "inferred from tensor shapes".

    A variant the shapes contradict is an error naming both; shapes that match no variant are
    only an error when nothing else names the variant (the loader then reports the mismatch)."""
    shape = encoder_shape(state)
    inferred = match_variant(shape) if shape is not None else None
    for claimed, source in ((given, "given"), (from_file, "checkpoint metadata")):
        if claimed is None:
            continue
        key = str(claimed).lower().removeprefix("scaseg-")
        if inferred is not None and key in VARIANTS and key != inferred:
            fix = "drop variant=" if source == "given" else "pass variant= to override it"
            raise CheckpointError(
                f"{path}: variant {claimed!r} ({source}) contradicts the checkpoint's tensors, "
                f"which are SCASeg-{inferred.upper()} ({shape.describe()}); {fix}, or use the "
                f"checkpoint of a {claimed!r} model"
            )
        return claimed, source
    if inferred is not None:
        return inferred, "inferred from tensor shapes"
    found = "no MSCAN encoder weights (backbone.*)" if shape is None else shape.describe()
    raise CheckpointError(
        f"cannot tell which variant {path} is: its tensors have {found}, which match no SCASeg "
        f"variant ({known_variants()}); pass variant= (tiny, t, s, b, l) if it is one of them"
    )


def infer_num_classes(
    state: dict[str, torch.Tensor], foreign: dict[str, torch.Tensor]
) -> int | None:
    """Outputs of our classifier, else of another head's classifier (`conv_seg`, same dataset)."""
    for source, key in (
        (state, "decode_head.cls_seg.weight"),
        (foreign, "decode_head.conv_seg.weight"),
    ):
        if rows(source.get(key)) is not None:
            return rows(source[key])
    return None


def infer_decoder_fields(state: dict[str, torch.Tensor], variant: str) -> dict:
    """DecoderConfig fields the decoder's tensors show to differ from the variant's defaults."""
    if not any(k.startswith("decode_head.blocks.") for k in state):
        return {}
    default = DecoderConfig(**DECODER_OVERRIDES[variant])
    dims = VARIANTS[variant].embed_dims
    found: dict = {}
    q = rows(state.get("decode_head.blocks.0.attn.q.weight"))
    has_mixers = any(k.startswith("decode_head.mixers.") for k in state)
    if not has_mixers:
        found["attention"] = "self"
    elif q is not None and q == dims[0] and default.heads[0] != dims[0]:
        found["attention"] = "cross"
    if has_mixers:
        found["mixing"] = "decode_head.mixers.0.projs.1.weight" in state
        proj = rows(state.get("decode_head.mixers.0.projs.0.weight"))
        if proj is not None and proj != dims[0]:
            found["mix_dim"] = proj
    found["lpm"] = any(k.startswith("decode_head.blocks.0.lpm.") for k in state)
    if "decode_head.blocks.0.lpm.dw.0.weight" in state:
        found["lpm_strip"] = True
    dw = state.get(
        "decode_head.blocks.0.lpm.dw.weight", state.get("decode_head.blocks.0.lpm.dw.0.weight")
    )
    if dw is not None and dw.dim() == 4:
        found["lpm_kernel"] = int(dw.shape[-1])
    fc1 = rows(state.get("decode_head.blocks.0.ffn.fc1.weight"))
    if fc1 is not None:
        found["ffn_ratio"] = fc1 / dims[0]
    if found.get("attention", "strip") == "strip":
        heads = tuple(rows(state.get(f"decode_head.blocks.{i}.attn.q.weight")) for i in range(4))
        if None not in heads:
            found["heads"] = heads
    fuse = rows(state.get("decode_head.fuse.0.weight"))
    if fuse is not None:
        found["embed_dim"] = fuse
    return {k: v for k, v in found.items() if getattr(default, k) != v}
