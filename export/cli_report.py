"""Rich output for scaseg-export: a progress line per stage and the final summary table."""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table


class StageProgress:
    """One spinner line per stage; the previous stage is marked done when the next begins."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(finished_text="[green]done[/]"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task = None

    def __enter__(self) -> StageProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._finish()
        self._progress.__exit__(*exc)

    def stage(self, description: str) -> None:
        self._finish()
        self._task = self._progress.add_task(description, total=1)

    def _finish(self) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=1)
            self._progress.stop_task(self._task)


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.2f}"


def print_report(console: Console, report, request) -> None:
    table = Table(title="scaseg-export", show_lines=False)
    for col in (
        "variant",
        "file",
        "size MB",
        "agreement %",
        "mIoU %",
        "max |diff|",
        "ORT CPU ms",
        "gate",
    ):
        table.add_column(col, justify="left" if col in ("variant", "file", "gate") else "right")
    for a in report.artifacts:
        c = a.check
        gate = "skipped" if c is None else ("[green]pass[/]" if c.passed else "[red]FAIL[/]")
        table.add_row(
            a.precision,
            a.path.name if a.written else f"{a.path.name} (not written)",
            f"{a.size_bytes / 1e6:.2f}",
            _pct(c.agreement if c else None),
            _pct(c.miou if c else None),
            "-" if c is None or c.max_abs_diff is None else f"{c.max_abs_diff:.2g}",
            "-" if c is None else f"{c.latency_ms:.1f}",
            gate,
        )
    console.print(table)
    console.print(f"written to {request.out}/", highlight=False)
    if report.reference_miou is not None:
        console.print(
            f"PyTorch FP32 mIoU {_pct(report.reference_miou)} on {request.verify_frames} held-out "
            f"frames at {request.height}x{request.width}; ORT CPU latency = median of batch-1 runs"
        )
    if report.fp32_nodes:
        console.print(
            f"FP16: {len(report.fp32_nodes)} fragile nodes kept in FP32: {', '.join(report.fp32_nodes)}",
            soft_wrap=True,
        )
    if report.calibration:
        cal = report.calibration
        console.print(
            f"INT8: {cal['method']} calibration on {cal['data']} "
            f"({'cache hit' if cal['cache_hit'] else 'computed and cached'}); "
            f"{len(report.float_matmuls)} attention MatMuls left in float",
            soft_wrap=True,
        )
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in report.stage_seconds.items())
    console.print(f"stages: {stages}")


def print_engine_result(console: Console, result) -> None:
    reuse = "reused" if result.timing_cache_reused else "new"
    console.print(
        f"[green]engine[/] {result.path} ({result.precision}, {result.mode}; timing cache "
        f"{result.timing_cache} {reuse})"
    )
