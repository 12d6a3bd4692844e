"""The accuracy gate refuses numbers that mean nothing: NaN/Inf logits give label 0 everywhere,
which "agrees" with a reference that is itself label 0 everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")


def test_a_model_whose_own_output_overflows_is_refused_as_bad_input(tiny_checkpoint, tmp_path):
    from export.gate_data import generated_gate
    from export.pipeline import export_artifacts
    from export.request import ExportRequest
    from export.verify import Budgets, run_gate
    from runtime.errors import UserInputError
    from runtime.preprocess import Preprocess
    from scaseg.checkpoint import load_model

    out = tmp_path / "out"
    export_artifacts(ExportRequest(checkpoint=tiny_checkpoint, out=out, height=64, width=64,
                                   verify=False))  # fmt: skip
    model, info = load_model(tiny_checkpoint)
    with torch.no_grad():  # finite weights whose product overflows float32
        model.decode_head.cls_seg.weight.fill_(3e38)
    pp = Preprocess(64, 64)
    gate = generated_gate(pp, 2, with_truth=True)
    with pytest.raises(UserInputError, match=r"NaN/Inf values .* re-export from a healthy"):
        run_gate(model, {"fp32": out / "tiny.fp32.onnx"}, pp, gate, Budgets(),
                 info["class_names"], openvino=False)  # fmt: skip


def test_a_variant_with_non_finite_logits_fails_the_gate_even_at_full_agreement():
    from export.verify import Budgets, VariantCheck, _failures

    check = VariantCheck("fp16", Path("m.fp16.onnx"), 1, agreement=1.0, miou=None, iou=None,
                         latency_ms=1.0, nonfinite=12)  # fmt: skip
    failures = _failures(check, None, None, Budgets(), ["a", "b"], "no class lost pixels")
    assert len(failures) == 1 and "12 NaN/Inf logits" in failures[0]
    ok = VariantCheck("fp16", Path("m.fp16.onnx"), 1, 1.0, None, None, 1.0)
    assert _failures(ok, None, None, Budgets(), ["a", "b"], "") == []
    assert np.isfinite(ok.agreement)
