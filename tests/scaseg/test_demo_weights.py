"""The bundled demo weights: present, small, described, and actually segmenting."""

from pathlib import Path

import pytest

from scaseg.checkpoint import load_model
from scenes.classes import DEMO_CLASSES

WEIGHTS = Path(__file__).resolve().parents[2] / "scaseg" / "weights" / "scaseg_t_demo.safetensors"


def test_bundled_weights_are_float16_and_describe_their_classes():
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size < 16e6
    model, info = load_model(WEIGHTS)
    assert info["variant"] == "t" and tuple(info["class_names"]) == DEMO_CLASSES
    assert len(info["palette_rgb"]) == len(DEMO_CLASSES)
    assert model.decode_head.cls_seg.out_channels == len(DEMO_CLASSES)
    assert (WEIGHTS.parent / "README.md").read_text().count("mIoU") >= 1


@pytest.mark.slow
def test_bundled_weights_segment_held_out_scenes():
    """12 validation scenes (never trained on): far above chance; the full 200-frame figure
    (0.7532) is in scaseg/weights/README.md, measured by `tools.train --finalize`."""
    from export.evaluate import evaluate, scene_frames, torch_segmenter
    from runtime.preprocess import Preprocess

    model, _ = load_model(WEIGHTS)
    pp = Preprocess(512, 512)
    result = evaluate(torch_segmenter(model, pp), scene_frames("val", 12, 512, 512), 8)
    assert result.miou > 0.65
    assert result.pixel_accuracy > 0.9
