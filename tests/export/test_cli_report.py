"""scaseg-export's report prints class names, node names and paths from files as text."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from rich.console import Console

from export.cli_report import print_report
from export.request import ArtifactResult, ExportReport
from export.verify import VariantCheck

HOSTILE = ("[/]", "[red]car", "a[b", "\x1b[2J\x1b[31mroad", "car\r", "per\x07son")


def _report(out: Path) -> ExportReport:
    iou = np.linspace(0.1, 0.6, len(HOSTILE))
    check = VariantCheck(precision="fp32", path=out / "[bold]m.fp32.onnx", size_bytes=1000,
                         agreement=1.0, miou=0.5, iou=iou, latency_ms=1.0)  # fmt: skip
    return ExportReport(
        artifacts=[ArtifactResult("fp32", out / "[bold]m.fp32.onnx", 1000, check, True)],
        reference_miou=0.5, reference_iou=iou, gate_data="frames/[bold]x", gate_frames=2,
        class_names=HOSTILE, model_notes=["classes from the checkpoint: [/] \x1b[31m"],
        warnings=["palette [red] of \x1b]0;title\x07"], fp32_nodes=("/m/[/]Softmax",),
    )  # fmt: skip


def test_hostile_names_print_as_text_after_the_work_is_done(tmp_path):
    out = io.StringIO()
    console = Console(file=out, width=300, color_system=None)
    print_report(console, _report(tmp_path), SimpleNamespace(out=tmp_path / "[/]out"))
    text = out.getvalue()
    for shown in ("[/]", "[red]car", "a[b", "\\x1b[2J\\x1b[31mroad", "car\\r", "per\\x07son"):
        assert shown in text, shown
    assert "[bold]m.fp32.onnx" in text and "frames/[bold]x" in text and "/m/[/]Softmax" in text
    assert "palette [red] of \\x1b]0;title\\x07" in text
    assert not set(text) & {"\x1b", "\r", "\x07"}
