"""What scaseg-run shows while and after it runs: a rich progress bar and a final summary.

Part of the CLI layer (it prints); the pipeline only reports through its on_frame callback.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from runtime.io.source_types import SourceInfo
from runtime.pipeline import PipelineStats, RunSummary
from runtime.text import printable


def progress_total(info: SourceInfo, max_frames: int | None) -> int | None:
    """Frames the run will process, where known (for the bar and the ETA)."""
    if info.frame_count is not None:
        return min(info.frame_count, max_frames) if max_frames else info.frame_count
    return max_frames


def make_progress(
    console: Console, total: int | None
) -> tuple[Progress, Callable[[PipelineStats], None]]:
    """A progress bar (frames, FPS, ETA where the length is known) and its on_frame callback."""
    progress = Progress(
        TextColumn("[bold]segmenting"),
        BarColumn(),
        MofNCompleteColumn() if total else TextColumn("{task.completed} frames"),
        TextColumn("{task.fields[fps]:.1f} FPS"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("run", total=total, fps=0.0)

    def on_frame(stats: PipelineStats) -> None:
        progress.update(task, completed=stats.frames_done, fps=stats.fps)

    return progress, on_frame


def print_summary(console: Console, summary: RunSummary, signum: int | None) -> None:
    """One line with frames, time and FPS (parsed by tests: 'after N frames' / 'done: N frames'),
    then latency percentiles and the outputs written."""
    if signum:
        how = f"interrupted ({signal.Signals(signum).name}) after"
    else:
        how = "stopped after" if summary.interrupted else "done:"
    dropped = f", {summary.dropped} stale live frames dropped" if summary.dropped else ""
    console.print(
        f"scaseg-run: {how} {summary.frames} frames in {summary.wall_s:.1f} s "
        f"({summary.fps:.1f} FPS){dropped}",
        soft_wrap=True,
    )
    total = summary.latency_ms.get("total")
    if total:
        infer = summary.latency_ms["infer"]
        console.print(
            f"  latency ms per frame: total p50 {total['p50']:.1f} p90 {total['p90']:.1f} "
            f"p99 {total['p99']:.1f}; model p50 {infer['p50']:.1f} p99 {infer['p99']:.1f}",
            soft_wrap=True,
        )
    for written in summary.outputs:  # paths the user chose: escaped, "[x]" is a legal name
        console.print(f"  wrote {printable(written, limit=1000)}", soft_wrap=True)
    if not summary.outputs:
        console.print("  nothing written" + ("" if summary.frames else " (no frames processed)"))
