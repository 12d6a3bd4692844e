"""Hostile checkpoints through the real scaseg-export: exit 2 and one error line, no traceback,
nothing written. Run in subprocesses, so exit codes and stderr are the real ones."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.scaseg.hostile_checkpoints import state_with, tiny_mmengine
from tests.support.checkpoints import Payload, mmengine_checkpoint

pytest.importorskip("mmengine")
pytest.importorskip("onnx")

REPO = Path(__file__).resolve().parents[2]
EXPORT = ["--out", "out", "--calib-cache", "cache", "--engines", "no", "--input-size", "64x64",
          "--verify-frames", "2", "--calib-samples", "2"]  # fmt: skip


def _nan_weights(folder: Path) -> Path:
    from scaseg.model import build_model

    model = build_model("tiny", 3)
    checkpoint = mmengine_checkpoint(model)
    checkpoint["state_dict"] = state_with(model)
    checkpoint["state_dict"]["decode_head.cls_seg.bias"][1] = float("nan")
    torch.save(checkpoint, folder / "diverged.pth")
    return folder / "diverged.pth"


def _bytearray_bomb(folder: Path) -> Path:
    path = folder / "tiny.pth"
    path.write_bytes(pickle.dumps({"state_dict": Payload(bytearray, 2_500_000_000)}, protocol=4))
    return path


def _self_reference(folder: Path) -> Path:
    path = tiny_mmengine(folder)
    checkpoint = torch.load(path, weights_only=False)
    loop: list = []
    loop += [loop, "road"]
    checkpoint["meta"]["dataset_meta"]["classes"] = loop
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_nan_weights, ("diverged.pth", "decode_head.cls_seg.bias holds 1 NaN", "re-export")),
        (_bytearray_bomb, ("tiny.pth", "builtins.bytearray", "SCASEG_MAX_PICKLE_OBJECT_BYTES")),
        (_self_reference, ("m.pth", "contains itself", "re-save")),
    ],
    ids=["nan-weights", "bytearray-bomb", "self-reference"],
)
def test_scaseg_export_refuses_a_hostile_checkpoint_in_one_line(tmp_path, make, words):
    checkpoint = make(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "export.cli", "--checkpoint", str(checkpoint), *EXPORT],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, output
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
