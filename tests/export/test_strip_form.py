"""Which strip attention form an export writes (export/strip_form.py), and the grid form through
the whole export: gated against the exact PyTorch model, recorded in the sidecar."""

from __future__ import annotations

import json

import pytest

from export import pipeline
from export.onnx_export import ShapeRange
from export.request import ExportInputError, ExportRequest
from export.strip_form import AUTO_MIN_PIXELS, choose_strip_form, model_for_export
from scaseg.model import build_model
from scaseg.strip_grid import GRID_DEFAULT, GridStripCrossAttention


@pytest.fixture(scope="module")
def strip_model():
    return build_model("tiny", 8).eval()


def _grid_modules(model) -> list:
    return [m for m in model.modules() if isinstance(m, GridStripCrossAttention)]


def test_auto_keeps_exact_below_the_measured_size(strip_model):
    form = choose_strip_form(ExportRequest(height=512, width=512), strip_model)
    assert (form.form, form.grid, form.requested) == ("exact", None, "auto")
    assert model_for_export(strip_model, form) is strip_model


def test_auto_picks_grid_at_cityscapes_size(strip_model):
    form = choose_strip_form(ExportRequest(height=1024, width=2048), strip_model)
    assert (form.form, form.grid) == ("grid", GRID_DEFAULT)
    assert str(AUTO_MIN_PIXELS) in form.reason


def test_auto_judges_a_dynamic_export_by_its_largest_size(strip_model):
    shapes = ShapeRange((1, 1, 1), (256, 512, 1024), (256, 512, 2048))
    form = choose_strip_form(ExportRequest(height=512, width=512, dynamic=shapes), strip_model)
    assert form.form == "grid"


def test_explicit_forms_and_grid_size(strip_model):
    grid = choose_strip_form(
        ExportRequest(height=64, width=64, strip_attention="grid", strip_grid=64), strip_model
    )
    assert (grid.form, grid.grid) == ("grid", 64)
    traced = model_for_export(strip_model, grid)
    assert traced is not strip_model and {m.grid for m in _grid_modules(traced)} == {64}
    assert not _grid_modules(strip_model)  # the gate's reference stays exact
    big = ExportRequest(height=1024, width=2048, strip_attention="exact")
    assert choose_strip_form(big, strip_model).form == "exact"


def test_models_without_strip_attention(strip_model):
    cross = build_model("tiny", 8, attention="cross").eval()
    assert choose_strip_form(ExportRequest(height=1024, width=2048), cross).form == "exact"
    with pytest.raises(ExportInputError, match="only strip attention has a grid form"):
        choose_strip_form(ExportRequest(strip_attention="grid"), cross)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strip_attention": "fast"}, "is not one of auto, exact, grid"),
        ({"strip_grid": 1}, "--strip-grid 1: pass a count"),
        ({"strip_grid": 100000}, "in 2..4096"),
        ({"strip_attention": "exact", "strip_grid": 128}, "contradicts --strip-attention exact"),
    ],
)
def test_request_refuses_bad_strip_options(changes, message):
    with pytest.raises(ExportInputError, match=message):
        ExportRequest(**changes)


@pytest.mark.slow
def test_grid_export_is_gated_against_the_exact_model(tmp_path, tiny_checkpoint):
    out = tmp_path / "out"
    request = ExportRequest(
        checkpoint=tiny_checkpoint, out=out, height=64, width=128, strip_attention="grid",
        strip_grid=128, verify_frames=2, openvino_gate=False,
    )  # fmt: skip
    report = pipeline.export_artifacts(request)
    (fp32,) = report.artifacts
    assert fp32.written and fp32.check.passed, fp32.check.failures
    assert fp32.check.agreement >= 0.999
    sidecar = json.loads(fp32.path.with_name(fp32.path.name + ".json").read_text())
    assert sidecar["extra"]["strip_attention"] == {
        "form": "grid", "grid": 128, "requested": "grid", "reason": "asked for",
    }  # fmt: skip
    assert any("grid form, 128 points" in note for note in report.model_notes)
