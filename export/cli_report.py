"""Rich output for scaseg-export: a progress line per stage and the final summary table."""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from runtime.cli_errors import warning_line
from runtime.text import printable


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

    def update(self, description: str) -> None:
        """New text for the running stage's line (e.g. a frame count)."""
        if self._task is not None:
            self._progress.update(self._task, description=description)

    def _finish(self) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=1)
            self._progress.stop_task(self._task)


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.2f}"


def _names(names, limit: int = 40) -> str:
    """Node or class names from a model, each escaped, joined for one line."""
    return ", ".join(printable(n, limit=120) for n in list(names)[:limit]) + (
        f" and {len(names) - limit} more" if len(names) > limit else ""
    )


def print_report(console: Console, report, request) -> None:
    """The summary table and notes. Everything that came from a file (class and node names,
    paths, notes quoting them) is printed through runtime.text.printable."""
    for note in report.model_notes:
        console.print(f"model: {printable(note, limit=1000)}", soft_wrap=True, highlight=False)
    openvino = any(
        a.check is not None and a.check.summary().get("openvino") for a in report.artifacts
    )
    columns = ["variant", "file", "MB", "agree %", "mIoU %", "max |diff|", "ORT ms"]
    if openvino:
        columns += ["OpenVINO agree %", "OpenVINO ms"]
    table = Table(title="scaseg-export", show_lines=False)
    for col in [*columns, "gate"]:
        left = col in ("variant", "file", "gate")
        table.add_column(col, justify="left" if left else "right", no_wrap=col == "file")
    for a in report.artifacts:
        table.add_row(*_row(a, openvino))
    console.print(table)
    console.print(f"written to {printable(request.out, limit=1000)}/", highlight=False)
    if report.gate_data:
        gate_data = printable(report.gate_data, limit=1000)
        console.print(f"gate data: {gate_data}", soft_wrap=True, highlight=False)
        console.print(
            "agree = argmax agreement with PyTorch FP32; ms = median latency per frame on the "
            "CPU (all windows of a frame with slide inference)",
            highlight=False,
        )
    if report.reference_miou is not None:
        console.print(
            f"PyTorch FP32 mIoU {_pct(report.reference_miou)} on {report.gate_frames} frames",
            highlight=False,
        )
        _print_iou(console, report)
    if report.fp32_nodes:
        console.print(
            f"FP16: {len(report.fp32_nodes)} fragile nodes kept in FP32: {_names(report.fp32_nodes)}",
            soft_wrap=True,
        )
    if report.calibration:
        cal = report.calibration
        rounding = (
            f"weights rounded for the least output error (gptq, {len(cal.rounded)} layers)"
            if cal.rounding == "gptq"
            else "weights rounded to nearest"
        )
        console.print(
            f"INT8: {cal.method} calibration on {printable(cal.data, limit=1000)} "
            f"({'cache hit' if cal.cache_hit else 'computed and cached'}); {rounding}; "
            f"{len(report.float_matmuls)} attention MatMuls left in float",
            soft_wrap=True,
        )
    _print_int8_repairs(console, report)
    _print_memory(console, report)
    for a in report.artifacts:
        ov = a.check.summary().get("openvino") if a.check is not None else None
        if ov and not ov.get("passed"):
            why = ov.get("error") or "; ".join(a.check.openvino.failures)
            warning_line(
                "scaseg-export",
                f"{a.precision} not verified on OpenVINO ({printable(why, limit=1000, markup=False)}); "
                "scaseg-run --backend auto "
                "will not pick OpenVINO for it",
                console,
            )
    for warning in report.warnings:  # warning_line escapes markup; control characters here
        warning_line("scaseg-export", printable(warning, limit=2000, markup=False), console)
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in report.stage_seconds.items())
    console.print(f"stages: {stages}")


def _row(a, openvino: bool) -> list[str]:
    c = a.check
    gate = "skipped" if c is None else ("[green]pass[/]" if c.passed else "[red]FAIL[/]")
    row = [
        a.precision,
        printable(a.path.name) + ("" if a.written else " (not written)"),
        f"{a.size_bytes / 1e6:.2f}",
        _pct(c.agreement if c else None),
        _pct(c.miou if c else None),
        "-" if c is None or c.max_abs_diff is None else f"{c.max_abs_diff:.2g}",
        "-" if c is None else f"{c.latency_ms:.1f}",
    ]
    if openvino:
        ov = c.openvino if c is not None else None
        row += [_pct(ov.agreement if ov else None), "-" if ov is None else f"{ov.latency_ms:.1f}"]
    return [*row, gate]


def _print_iou(console: Console, report) -> None:
    """Per-class IoU of PyTorch FP32 and of each variant, where the gate had masks."""
    checks = [a for a in report.artifacts if a.check is not None and a.check.iou is not None]
    if report.reference_iou is None or not checks:
        return
    table = Table(title="per-class IoU % (gate data masks)", show_lines=False)
    table.add_column("class")
    table.add_column("PyTorch FP32", justify="right")
    for a in checks:
        table.add_column(a.precision, justify="right")
    for i, name in enumerate(report.class_names):
        iou = (_pct(a.check.iou[i]) for a in checks)
        table.add_row(printable(name, limit=60), _pct(report.reference_iou[i]), *iou)
    console.print(table)


def print_engine_result(console: Console, result) -> None:
    reuse = "reused" if result.timing_cache_reused else "new"
    console.print(
        f"[green]engine[/] {printable(result.path, limit=1000)} ({result.precision}, "
        f"{result.mode}; timing cache "
        f"{result.timing_cache} {reuse})"
    )


def _print_int8_repairs(console: Console, report) -> None:
    """What --int8-fallback auto changed (equalized pairs, nodes left in float, gate per step),
    and the most sensitive INT8 nodes where they were ranked."""
    rec = report.calibration.repairs if report.calibration is not None else None

    def say(text: str) -> None:
        console.print(text, soft_wrap=True, highlight=False)

    if rec is not None:
        eq = rec.equalized
        floated = rec.left_in_float
        steps = [s.to_dict() for s in rec.steps]
        if not eq and not floated and steps and all(s["passed"] for s in steps):
            say("INT8 repairs: none needed (no outlier Conv pairs; the gate passed as quantized)")
        elif not eq and not steps:
            say("INT8 repairs: no outlier Conv pairs to equalize (no gate ran, so no fallback)")
        if eq:
            pairs = _names([f"{p.producer} -> {p.consumer}" for p in eq])
            say(f"INT8 repairs: equalized {len(eq)} Conv pair(s) with outlier channels: {pairs}")
        if floated:
            say(f"INT8 repairs: {len(floated)} node(s) left in float: {_names(floated)}")
        for step in steps:
            lat = ", ".join(f"{k} {v:.1f} ms" for k, v in step["latency_ms"].items())
            miou = "" if step["miou"] is None else f", mIoU {_pct(step['miou'])}"
            verdict = "pass" if step["passed"] else "fail"
            say(f"  INT8 {step['step']}: agree {_pct(step['agreement'])}%{miou}, {lat}: {verdict}")
        for backend, cost in (rec.latency_cost() or {}).items():
            say(
                f"  INT8 latency cost on {backend}: {cost['before']:.1f} -> {cost['after']:.1f} ms"
                f" ({cost['ratio']}x)"
            )
    if report.sensitivity:
        worst = _names(
            [f"{s.node} ({s.op}, {s.relative_error:.3g})" for s in report.sensitivity[:5]]
        )
        say(f"INT8 most sensitive nodes (relative logit error, only that node quantized): {worst}")
        if rec is not None and rec.ranking:
            say(f"  ranked by {rec.ranking}")
    for path in report.sensitivity_files:
        say(f"INT8 sensitivity report: {printable(path, limit=1000)}")


def _print_memory(console: Console, report) -> None:
    """Peak activations per written variant, as the sidecars record them."""
    parts = []
    for precision, mem in report.memory.items():
        shape = "x".join(str(d) for d in mem["input_shape"])
        text = f"{precision} {mem['peak_activation_mb']:,.0f} MB at {shape}"
        if "max_peak_activation_mb" in mem:
            top = "x".join(str(d) for d in mem["max_input_shape"])
            text += f" ({mem['max_peak_activation_mb']:,.0f} MB at {top})"
        parts.append(text)
    if parts:
        console.print(
            "peak activation memory (estimated from the graph): " + "; ".join(parts),
            soft_wrap=True,
            highlight=False,
        )
