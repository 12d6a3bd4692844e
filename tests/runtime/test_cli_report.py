"""scaseg-run's final summary prints the paths it wrote as text, whatever they are called."""

from __future__ import annotations

import io

from rich.console import Console

from runtime.cli_report import print_summary
from runtime.pipeline import RunSummary


def test_output_paths_with_markup_and_escapes_print_as_text():
    outputs = ("out/[/]odd.mp4", "out/[red]x.png", "out/\x1b[2Jclear.png")
    summary = RunSummary(frames=3, dropped=0, wall_s=1.0, fps=3.0, interrupted=False,
                         outputs=outputs, latency_ms={})  # fmt: skip
    out = io.StringIO()
    print_summary(Console(file=out, width=200, color_system=None), summary, None)
    text = out.getvalue()
    assert "wrote out/[/]odd.mp4" in text and "wrote out/[red]x.png" in text
    assert "wrote out/\\x1b[2Jclear.png" in text and "\x1b" not in text
