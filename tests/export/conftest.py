"""Shared fixtures: tiny checkpoints (random and briefly trained) and small exported graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from runtime.classes import DEMO_CLASSES, DEMO_PALETTE_RGB
from scaseg.checkpoint import save_checkpoint
from scaseg.model import build_model

SIZE = 64


def _info(num_classes: int = 8) -> dict:
    return {
        "variant": "tiny",
        "num_classes": num_classes,
        "class_names": list(DEMO_CLASSES[:num_classes]),
        "palette_rgb": [list(c) for c in DEMO_PALETTE_RGB[:num_classes]],
    }


@pytest.fixture(scope="session")
def tiny_model():
    torch.manual_seed(0)
    return build_model("tiny", 8).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(tiny_model, path, _info())
    return path


@pytest.fixture(scope="session")
def trained_tiny_checkpoint(tmp_path_factory):
    """The tiny model after 60 steps on generated 64x64 scenes (mIoU ~0.3, far above chance),
    so an accuracy gate has something to lose. About 10-20 s on 2 cores."""
    import torch.nn.functional as F

    from runtime.preprocess import Preprocess, preprocess
    from runtime.scenes import render_scene, split_seeds

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    # One thread: with another busy process on a small machine, OpenMP worker spinning made
    # these 60 steps take minutes instead of seconds.
    torch.set_num_threads(1)
    pp = Preprocess(SIZE, SIZE)
    scenes = [render_scene(s, SIZE, SIZE) for s in split_seeds("train", 48)]
    x = torch.from_numpy(np.concatenate([preprocess(f, pp) for f, _ in scenes]))
    y = torch.from_numpy(np.stack([labels for _, labels in scenes])).long()
    model = build_model("tiny", 8)
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    for _ in range(60):
        i = torch.randint(0, len(x), (8,))
        logits = F.interpolate(model(x[i]), size=(SIZE, SIZE), mode="bilinear")
        loss = F.cross_entropy(logits, y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("trained") / "tiny_trained.safetensors"
    save_checkpoint(model.eval(), path, _info())
    return path
