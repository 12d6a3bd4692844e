"""Checkpoints in the layouts users bring, written the way their tools write them.

- mmengine / mmsegmentation 1.x: mmengine's own `save_checkpoint` of the dict its Runner saves:
  `meta` (dataset_meta classes/palette, seed, experiment name, mmengine version, config text),
  `state_dict`, `message_hub` (a real MessageHub state with HistoryBuffer objects),
  `optimizer` (a real AdamW state with numpy scalars mixed in, as numpy-scheduled values end up)
  and `param_schedulers` (a real mmengine PolyLR state).
- mmsegmentation 0.x: `meta["CLASSES"]` / `meta["PALETTE"]`, mmcv version, optimizer.
- original SegNeXt parameter names (`mlp.dwconv.dwconv.*`), a bare ImageNet MSCAN backbone, a
  SegNeXt checkpoint whose decode_head is a LightHamHead, and payloads that run code when
  unpickled naively.

mmengine is imported only by the functions that need it.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

CLASSES = ("road", "car", "person")
_hub_ids = itertools.count()
PALETTE = [[128, 64, 128], [0, 0, 142], [220, 20, 60]]


def segnext_names(state: dict[str, torch.Tensor]) -> OrderedDict:
    """Our (mmseg 1.x) names -> the original SegNeXt code's (DWConv wrapper in the MLP)."""
    return OrderedDict(
        (k.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv.") if k.startswith("backbone.") else k, v)
        for k, v in state.items()
    )


def model_state(model: nn.Module, original_names: bool = False) -> OrderedDict:
    state = OrderedDict((k, v.detach().cpu().clone()) for k, v in model.state_dict().items())
    return segnext_names(state) if original_names else state


def mmengine_checkpoint(
    model: nn.Module,
    classes=CLASSES,
    palette=PALETTE,
    segnext_names: bool = False,
    state: dict | None = None,
    cfg: str | None = None,
) -> dict:
    """The dict mmengine's Runner.save_checkpoint writes for a trained segmentor; `cfg` is the
    training config's text (meta["cfg"])."""
    import mmengine
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper, PolyLR

    hub = MessageHub(name=f"scaseg-fixture-{next(_hub_ids)}")
    for step, loss in enumerate((1.9, 1.2, 0.8)):
        hub.update_scalar("train/loss", loss)
        hub.update_scalar("train/lr", 6e-5 * (1 - step / 160000))
    hub.update_info("iter", 3)
    hub.update_info("epoch", 0)

    weights = state if state is not None else model_state(model, segnext_names)
    # The optimizer steps copies: the caller's model keeps the weights the checkpoint holds.
    params = [nn.Parameter(p.detach().clone()) for p in model.parameters()]
    optimizer = torch.optim.AdamW(params, lr=6e-5, weight_decay=0.01)
    wrapper = OptimWrapper(optimizer)
    scheduler = PolyLR(optimizer, eta_min=0.0, power=1.0, begin=0, end=160000, by_epoch=False)
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()  # fills the Adam state (exp_avg, exp_avg_sq, step)
    scheduler.step()
    optim_state = wrapper.state_dict()
    optim_state["param_groups"][0]["initial_lr"] = np.float64(6e-5)  # numpy scalars, as found
    optim_state["param_groups"][0]["betas"] = (np.float32(0.9), np.float64(0.999))
    scheduler_state = scheduler.state_dict()
    scheduler_state["last_value"] = [np.float64(v) for v in scheduler_state.get("_last_value", [])]

    meta = {
        "cfg": cfg or "model = dict(type='EncoderDecoder', backbone=dict(type='MSCAN'))\n",
        "seed": 0,
        "experiment_name": "scaseg_t_fixture",
        "exp_name": "scaseg_t_fixture",
        "time": "20260101_000000",
        "mmengine_version": mmengine.__version__,
        "epoch": 0,
        "iter": 3,
        "dataset_meta": {
            "classes": tuple(classes) if classes is not None else None,
            "palette": palette,
            "label_map": None,
            "reduce_zero_label": False,
        },
    }
    return {
        "meta": meta,
        "state_dict": weights,
        "message_hub": hub.state_dict(),
        "optimizer": optim_state,
        "param_schedulers": [scheduler_state],
    }


def save_mmengine_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    classes=CLASSES,
    palette=PALETTE,
    segnext_names: bool = False,
    legacy_format: bool = False,
    cfg: str | None = None,
) -> Path:
    """Written by mmengine's own save_checkpoint (or torch's pre-1.6 format if legacy_format)."""
    from mmengine.runner.checkpoint import save_checkpoint

    checkpoint = mmengine_checkpoint(model, classes, palette, segnext_names, cfg=cfg)
    if legacy_format:
        torch.save(checkpoint, path, _use_new_zipfile_serialization=False)
    else:
        save_checkpoint(checkpoint, str(path))
    return Path(path)


def save_mmseg0x_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    classes=CLASSES,
    palette=PALETTE,
    segnext_names: bool = False,
) -> Path:
    """What mmcv's save_checkpoint writes for mmsegmentation 0.x (and the SegNeXt release)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    checkpoint = {
        "meta": {
            "mmcv_version": "1.7.1",
            "time": "Sat Jan  1 00:00:00 2026",
            "env_info": "sys.platform: linux\nPython: 3.8.10",
            "config": "norm_cfg = dict(type='SyncBN', requires_grad=True)\n",
            "seed": 0,
            "exp_name": "segnext.tiny.512x512.ade.160k.py",
            "CLASSES": tuple(classes),
            "PALETTE": palette,
            "epoch": 0,
            "iter": 160000,
        },
        "state_dict": model_state(model, segnext_names),
        "optimizer": optimizer.state_dict(),
    }
    torch.save(checkpoint, path)
    return Path(path)


def backbone_state(model: nn.Module, imagenet_head: bool = True) -> OrderedDict:
    """A bare ImageNet MSCAN as the SegNeXt release ships it (original names, 1000-class head)."""
    state = OrderedDict(
        (k.removeprefix("backbone."), v)
        for k, v in segnext_names(model_state(model)).items()
        if k.startswith("backbone.")
    )
    if imagenet_head:
        width = state["norm4.weight"].shape[0]
        state["head.weight"] = torch.zeros(1000, width)
        state["head.bias"] = torch.zeros(1000)
    return state


def save_backbone_checkpoint(model: nn.Module, path: str | os.PathLike) -> Path:
    torch.save({"state_dict": backbone_state(model)}, path)
    return Path(path)


def lightham_head_state(in_dims=(64, 160, 256), num_classes: int = 150) -> OrderedDict:
    """decode_head.* of SegNeXt's LightHamHead (ham_channels 256): a head that is not ours."""
    ham = 256
    state = OrderedDict()
    for name, cin, cout in (("squeeze", sum(in_dims), ham), ("hamburger.ham_in", ham, ham),
                            ("hamburger.ham_out", ham, ham), ("align", ham, ham)):  # fmt: skip
        state[f"decode_head.{name}.conv.weight"] = torch.randn(cout, cin, 1, 1)
        if name != "hamburger.ham_in":
            for buf in ("weight", "bias", "running_mean", "running_var"):
                state[f"decode_head.{name}.bn.{buf}"] = torch.ones(cout)
    state["decode_head.conv_seg.weight"] = torch.randn(num_classes, ham, 1, 1)
    state["decode_head.conv_seg.bias"] = torch.zeros(num_classes)
    return state


def save_segnext_lightham_checkpoint(
    model: nn.Module, path: str | os.PathLike, num_classes: int = 150
) -> Path:
    """An original SegNeXt segmentor: our MSCAN weights (original names) + a LightHamHead."""
    state = OrderedDict(
        (k, v)
        for k, v in model_state(model, original_names=True).items()
        if k.startswith("backbone.")
    )
    state.update(lightham_head_state(model.backbone.embed_dims[1:], num_classes))
    checkpoint = {
        "meta": {"CLASSES": tuple(f"c{i}" for i in range(num_classes))},
        "state_dict": state,
    }
    torch.save(checkpoint, path)
    return Path(path)


# --- payloads ------------------------------------------------------------------------------------


class Payload:
    """Unpickling this calls func(*args): what a malicious checkpoint does."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def touch_marker(path: str) -> None:
    """A harmless stand-in for arbitrary code: proves by its file whether it ran."""
    Path(path).write_text("ran")


def payloads(marker: Path) -> dict[str, Payload]:
    """Code-running payloads by the global they name; each creates `marker` if it runs."""
    m = str(marker)
    return {
        "io.open": Payload(open, m, "w"),  # builtins.open pickles as io.open
        "posix.system": Payload(os.system, f"touch {m}"),
        "builtins.eval": Payload(eval, f"open({m!r}, 'w')"),
        "builtins.exec": Payload(exec, f"open({m!r}, 'w')"),
        "subprocess.call": Payload(subprocess.call, ["touch", m]),
    }


def save_payload_checkpoint(
    model: nn.Module, path: str | os.PathLike, payload: Payload, where: str = "meta"
) -> Path:
    """An otherwise valid mmengine checkpoint with `payload` at the top level ("top"), in meta
    ("meta"), or deep inside the message hub and dataset meta ("nested")."""
    checkpoint = mmengine_checkpoint(model)
    if where == "top":
        checkpoint["payload"] = payload
    elif where == "meta":
        checkpoint["meta"]["note"] = payload
    else:
        checkpoint["meta"]["dataset_meta"]["extra"] = [{"deep": (1, OrderedDict(x=payload))}]
    torch.save(checkpoint, path)
    return Path(path)
