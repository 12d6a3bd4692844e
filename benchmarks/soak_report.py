"""The soak section of BENCHMARKS.md: rendered from a SoakResult, written between its markers.

`write_section` replaces only the section (appends it where there is none), keeping the rest of the
file and a hand-written notes block inside the section byte for byte.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from benchmarks.soak_result import TARGET_PCT, SoakResult
from runtime.atomic import atomic_write_text

START = "<!-- soak:start -->"
END = "<!-- soak:end -->"
# Hand-written reading of the results, inside the section: --write carries it over unchanged.
NOTES_START = "<!-- soak:notes (hand-written; kept by --write) -->"
NOTES_END = "<!-- soak:notes-end -->"


def machine_lines() -> list[str]:
    from runtime.profiling.envinfo import cpu_info, versions

    cpu, v = cpu_info(), versions()
    return [
        f"- Machine: {cpu['model']} ({cpu['arch']}), {cpu['usable_cores']} usable of "
        f"{cpu['logical_cores']} logical cores; no GPU used (ONNX Runtime CPU)",
        f"- Versions: Python {v['python']}, onnxruntime {v['onnxruntime']}, OpenCV {v['opencv']}, "
        f"numpy {v['numpy']}",
    ]


def _rows(result: SoakResult) -> list[str]:
    warm, rows, prev = result.warm, [], None
    for s in [*result.samples, result.after]:
        label = "after close" if s is result.after else ("before" if s.frames == 0 else s.frames)
        fps = cpu = "-"
        if prev is not None and s is not result.after and s.t_s > prev.t_s:
            fps = f"{(s.frames - prev.frames) / (s.t_s - prev.t_s):.1f}"
            cpu = f"{100 * (s.cpu_s - prev.cpu_s) / (s.t_s - prev.t_s):.0f}"
        rows.append(
            f"| {label} | {s.t_s:.0f} | {fps} | {cpu} | {s.load1:.1f} | {s.rss_mib:.1f} "
            f"| {100 * (s.rss_mib / warm.rss_mib - 1):+.2f}% | {s.stats_mib:.2f} "
            f"| {s.py_blocks / 1e3:.1f} | {s.gc_objects / 1e3:.1f} | {s.fds} | {s.threads} |"
        )
        prev = s
    return rows


def _what_ran(result: SoakResult) -> list[str]:
    c = result.config
    h, w = c.frame_hw
    passes = -(-result.frames // c.video_frames)
    sinks = (
        "with the real sinks: " + "; ".join(result.outputs.values())
        if c.sinks
        else "with no sinks (--no-sinks)"
    )
    model = (
        f"- Model: {result.model}: the tiny SCASeg variant (random weights), FP32 ONNX + sidecar "
        f"exported by the export library at {c.size}x{c.size}"
        if c.model is None
        else f"- Model: {result.model}"
    )
    return [
        model,
        f"- Source: a generated {w}x{h} street video of {c.video_frames} frames "
        f"(scenes), looped by the source's loop option ({passes} passes, "
        f"{passes - 1} reopens); `runtime.pipeline.run_pipeline` {sinks}",
    ]


def render(result: SoakResult, command: str, plot_link: str | None) -> str:
    warm, last, after = result.warm, result.last, result.after
    first = result.run_samples[0]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "**met**" if result.passed else "**not met**"
    lat = result.latency_ms.get("total", {})
    span = max(1, last.frames - warm.frames)
    stats_growth = last.stats_mib - warm.stats_mib
    lines = [
        START,
        "",
        "## Soak: memory over a long run (Reliability, long runs)",
        "",
        f"Run {when}, {result.wall_s / 60:.1f} min: `{command}` (harness: `benchmarks/soak.py`, "
        "which rewrites only this section)",
        "",
        *machine_lines(),
        *_what_ran(result),
        f"- {result.frames} frames in {result.wall_s:.0f} s: {result.fps:.1f} FPS end to end"
        + (f" (per-frame p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms)" if lat else "")
        + "; the machine is shared: FPS per interval follows the load average in the table",
        f"- RSS at the end of warm-up (frame {warm.frames}): {warm.rss_mib:.1f} MiB; at the end "
        f"(frame {last.frames}): {last.rss_mib:.1f} MiB; **growth {result.growth_pct:+.2f}%** "
        f"(largest after warm-up {result.max_growth_pct:+.2f}%; least-squares slope "
        f"{result.slope_mib_per_1k:+.3f} MiB per 1,000 frames)",
        f"- Target: growth after warm-up < {TARGET_PCT:g}%: {verdict}",
        f"- Python heap after warm-up: {(last.py_blocks - warm.py_blocks) / span:+.2f} allocator "
        f"blocks and {(last.gc_objects - warm.gc_objects) / span:+.2f} gc-tracked objects per "
        f"frame. The pipeline's per-frame latency record (`PipelineStats.times`, for the "
        f"summary's percentiles) held {last.stats_mib:.2f} MiB at the end and grew by "
        f"{stats_growth:.2f} MiB after warm-up; RSS growth without it "
        f"{result.growth_ex_stats_pct:+.2f}%",
        f"- Open file descriptors {first.fds} -> {last.fds}, threads {first.threads} -> "
        f"{last.threads} (first and last sample in the run); after run_pipeline returned (sinks "
        f"closed, stats freed): {after.fds} fds, {after.threads} threads, "
        f"{after.rss_mib:.1f} MiB, {after.py_blocks / 1e3:.1f}k Python blocks",
        "",
        "Per sample: FPS and CPU % (this process; 200% = both cores) over the interval before it, "
        "load = 1-minute load average, stats = `PipelineStats.times`.",
        "",
        "| frames | s | FPS | CPU % | load | RSS MiB | vs warm-up end | stats MiB "
        "| Python blocks (k) | gc objects (k) | fds | threads |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *_rows(result),
        "",
    ]
    if plot_link:
        lines += [f"![RSS vs frames]({plot_link})", ""]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_section(path: Path, block: str) -> None:
    """Replace the soak section in `path` (append it where there is none, create the file where
    needed); everything outside the markers is kept byte for byte, and so is a hand-written
    notes block (NOTES_START ... NOTES_END) inside the old section, placed before END."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if START in text and END in text.split(START, 1)[1]:
        head, rest = text.split(START, 1)
        old, tail = rest.split(END, 1)
        block = block.rstrip("\n")
        if NOTES_START in old and NOTES_END in old.split(NOTES_START, 1)[1]:
            notes = NOTES_START + old.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0] + NOTES_END
            block = block.removesuffix(END) + notes + "\n\n" + END
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    atomic_write_text(path, text)
