"""Map the key layouts checkpoints arrive in onto this model's parameter names.

- `module.` (DataParallel / DistributedDataParallel) is stripped.
- A bare MSCAN (ImageNet-pretrained backbone) gets the `backbone.` prefix; its classifier `head.*`
  is dropped.
- The original SegNeXt code wraps the MLP's depthwise conv in a `DWConv` module
  (`mlp.dwconv.dwconv.weight`); mmsegmentation 1.x and this model use a plain conv
  (`mlp.dwconv.weight`). Every other MSCAN name is the same in all three.
- `auxiliary_head.*` (mmseg's training-only FCN head) and `data_preprocessor.*` are dropped.
- `decode_head.*` keys of another head (SegNeXt's LightHamHead: `squeeze`, `hamburger`, `align`,
  `conv_seg`) are set aside as foreign: loading them would be wrong, and the caller decides
  whether a random SCASeg decoder is acceptable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

BACKBONE_MARKERS = ("patch_embed1.", "block1.", "norm1.")
DECODER_MARKERS = (
    "decode_head.blocks.",
    "decode_head.mixers.",
    "decode_head.fuse.",
    "decode_head.cls_seg.",
)
RENAMES = (("mlp.dwconv.dwconv.", "mlp.dwconv."),)  # original SegNeXt -> mmseg 1.x / ours
DROPPED_PREFIXES = ("auxiliary_head.", "data_preprocessor.")


@dataclass
class KeyMapping:
    state: dict[str, torch.Tensor]
    ignored: list[str] = field(default_factory=list)  # dropped on purpose, with original names
    remapped: list[tuple[str, int]] = field(default_factory=list)  # (rule, keys it renamed)
    foreign_decoder: list[str] = field(default_factory=list)  # decode_head keys of another head
    foreign_state: dict[str, torch.Tensor] = field(default_factory=dict)  # and their tensors

    @property
    def has_decoder(self) -> bool:
        """True when the state carries SCASeg decoder weights."""
        return any(k.startswith(DECODER_MARKERS) for k in self.state)


def map_keys(state: dict[str, torch.Tensor]) -> KeyMapping:
    """Rename and sort the keys of a checkpoint; see the module docstring for the rules."""
    mapping = KeyMapping(state=dict(state))
    _rename_prefix(mapping, "module.", "", "module.* -> *")
    _adopt_bare_backbone(mapping)
    for old, new in RENAMES:
        _rename_infix(mapping, old, new)
    dropped = [k for k in mapping.state if k.startswith(DROPPED_PREFIXES)]
    mapping.ignored += dropped
    head_keys = [k for k in mapping.state if k.startswith("decode_head.")]
    if head_keys and not mapping.has_decoder:
        mapping.foreign_decoder = head_keys
        mapping.foreign_state = {k: mapping.state[k] for k in head_keys}
    for key in dropped + mapping.foreign_decoder:
        del mapping.state[key]
    return mapping


def normalise_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(state in our names, keys dropped on purpose, foreign decoder keys included)."""
    mapping = map_keys(state)
    return mapping.state, mapping.ignored + mapping.foreign_decoder


def _rename_prefix(mapping: KeyMapping, old: str, new: str, rule: str) -> None:
    hits = [k for k in mapping.state if k.startswith(old)]
    if hits:
        mapping.state = {
            (new + k.removeprefix(old) if k.startswith(old) else k): v
            for k, v in mapping.state.items()
        }
        mapping.remapped.append((rule, len(hits)))


def _adopt_bare_backbone(mapping: KeyMapping) -> None:
    keys = mapping.state
    if any(k.startswith(("backbone.", "decode_head.")) for k in keys):
        return
    if not any(k.startswith(BACKBONE_MARKERS) for k in keys):
        return
    mapping.ignored += [k for k in keys if k.startswith("head.")]  # the ImageNet classifier
    count = sum(1 for k in keys if not k.startswith("head."))
    mapping.state = {f"backbone.{k}": v for k, v in keys.items() if not k.startswith("head.")}
    mapping.remapped.append(("* -> backbone.* (bare MSCAN)", count))


def _rename_infix(mapping: KeyMapping, old: str, new: str) -> None:
    hits = {k for k in mapping.state if k.startswith("backbone.") and f".{old}" in k}
    if hits:
        mapping.state = {
            (k.replace(f".{old}", f".{new}") if k in hits else k): v
            for k, v in mapping.state.items()
        }
        mapping.remapped.append((f"{old} -> {new}", len(hits)))
