"""Where an export's preprocessing comes from: flags, else the checkpoint's training config,
else mmseg's defaults with a warning."""

from __future__ import annotations

from tests.support.checkpoints import save_mmengine_checkpoint


def test_export_takes_the_training_config_and_flags_win(tmp_path):
    """scaseg-export of an mmengine checkpoint whose config trained on BGR 0..1 inputs: the
    sidecar's preprocessing is that, not the ImageNet default; --mean overrides just the mean."""
    import json

    from typer.testing import CliRunner

    from export import cli
    from scaseg.model import build_model

    cfg = "data_preprocessor = dict(mean=[0, 0, 0], std=[255, 255, 255], bgr_to_rgb=False)\n"
    ckpt = save_mmengine_checkpoint(build_model("tiny", 3), tmp_path / "m.pth", cfg=cfg)
    base = ["--checkpoint", str(ckpt), "--input-size", "64x64", "--no-verify", "--engines", "no"]
    result = CliRunner().invoke(cli.app, [*base, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    pp = json.loads((tmp_path / "a" / "m.fp32.onnx.json").read_text())["preprocess"]
    assert (pp["color"], pp["mean"], pp["std"]) == ("bgr", [0.0] * 3, [255.0] * 3)
    assert "training config" in " ".join(result.output.split())
    result = CliRunner().invoke(cli.app, [*base, "--out", str(tmp_path / "b"), "--mean", "1,2,3"])
    assert result.exit_code == 0, result.output
    pp = json.loads((tmp_path / "b" / "m.fp32.onnx.json").read_text())["preprocess"]
    assert (pp["color"], pp["mean"], pp["std"]) == ("bgr", [1.0, 2.0, 3.0], [255.0] * 3)


def test_export_warns_when_the_normalisation_is_assumed(tmp_path):
    import torch
    from typer.testing import CliRunner

    from export import cli
    from scaseg.model import build_model

    ckpt = tmp_path / "plain.pth"
    torch.save({"state_dict": build_model("tiny", 3).state_dict()}, ckpt)
    args = ["--checkpoint", str(ckpt), "--input-size", "64x64", "--no-verify", "--engines", "no",
            "--out", str(tmp_path / "o")]  # fmt: skip
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "does not record its input normalisation" in text and "--mean/--std" in text
