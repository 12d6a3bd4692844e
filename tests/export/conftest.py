"""Shared fixtures: tiny checkpoints (random and briefly trained) and small exported graphs."""

from __future__ import annotations

import pytest
import torch

from scaseg.checkpoint import save_checkpoint
from scaseg.model import build_model
from scenes.classes import DEMO_CLASSES, DEMO_PALETTE_RGB

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
    from tests.support.training import train_tiny

    model = train_tiny(8, steps=60, size=SIZE)
    path = tmp_path_factory.mktemp("trained") / "tiny_trained.safetensors"
    save_checkpoint(model, path, _info())
    return path
