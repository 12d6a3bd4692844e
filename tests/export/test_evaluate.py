"""The evaluation command works on checkpoints and on exported artifacts alike."""

import re

from export.evaluate import evaluate, main, scene_frames
from runtime.segmenter import Segmenter
from tests.tiny_onnx import build_tiny_model


def test_evaluate_an_onnx_artifact_from_the_command_line(tmp_path, capsys):
    model = build_tiny_model(tmp_path / "tiny8.fp32.onnx", num_classes=8)
    main(["--model", str(model), "--frames", "3", "--size", "64", "--provider", "cpu"])
    printed = float(re.search(r"mIoU (\d\.\d+)", capsys.readouterr().out).group(1))
    direct = evaluate(Segmenter(model, provider="cpu"), scene_frames("val", 3, 64, 64), 8)
    assert abs(printed - direct.miou) < 1e-4
    assert direct.frames == 3
