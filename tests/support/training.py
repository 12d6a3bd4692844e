"""A tiny SCASeg briefly trained on generated scenes, so an accuracy gate has something to lose."""

from __future__ import annotations

import numpy as np


def train_tiny(
    num_classes: int = 8,
    ids: np.ndarray | None = None,
    steps: int = 60,
    size: int = 64,
    variant: str = "tiny",
):
    """The tiny variant (or `variant`) after `steps` AdamW steps on 48 generated size x size scenes, labels
    relabelled by `ids` (demo class id -> class; None keeps the demo's 8). 10-20 s on 2 cores."""
    import torch
    import torch.nn.functional as F

    from runtime.preprocess import Preprocess, preprocess
    from scaseg.model import build_model
    from scenes import render_scene, split_seeds

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    # One thread: with another busy process on a small machine, OpenMP worker spinning made
    # these steps take minutes instead of seconds.
    torch.set_num_threads(1)
    pp = Preprocess(size, size)
    scenes = [render_scene(s, size, size) for s in split_seeds("train", 48)]
    relabel = np.arange(8) if ids is None else np.asarray(ids)
    x = torch.from_numpy(np.concatenate([preprocess(f, pp) for f, _ in scenes]))
    y = torch.from_numpy(np.stack([relabel[labels] for _, labels in scenes])).long()
    model = build_model(variant, num_classes)
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    try:
        for _ in range(steps):
            i = torch.randint(0, len(x), (8,))
            logits = F.interpolate(model(x[i]), size=(size, size), mode="bilinear")
            loss = F.cross_entropy(logits, y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()
