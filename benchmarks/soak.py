"""Soak: a long run through the real video runtime, watching the process's memory.

    python -m benchmarks.soak                                   # 20,000 frames, a sample every 1,000
    python -m benchmarks.soak --frames 20000 --every 1000 --size 256 \\
        --write BENCHMARKS.md --plot docs/soak_rss.png

What runs is what `scaseg-run clip.mp4 --out overlay.mp4 --jsonl frames.jsonl --loop` runs:
- model: the tiny SCASeg variant (random weights, seed 0) exported to FP32 ONNX + sidecar by the
  export library (export.pipeline.export_artifacts, accuracy gate on), at --size x --size. The
  export runs in a child process, so this process never imports torch; the artifact is cached
  under --cache. `--model` takes any other artifact instead.
- source: a generated street video (runtime.scenes, --video-frames long, --frame-size), looped with
  the source's own loop option (each pass reopens the capture), so decoding never stops.
- runtime.segmenter.Segmenter on ONNX Runtime CPU, through runtime.pipeline.run_pipeline (reader,
  inference and writer threads) into the real sinks from runtime.sinks.build_sinks: an overlay
  mp4 video and a JSON-lines file, in a temporary folder (or --workdir).

Every --every frames, from the pipeline's on_frame hook (inference thread), it records the
process's RSS, the Python allocator's block count (sys.getallocatedblocks), the objects the
garbage collector tracks, open file descriptors, threads, CPU time, the load average and what the
pipeline's per-frame latency record (PipelineStats.times) holds. Warm-up is the first --warmup
frames (default: two samples). Growth = (last RSS - RSS at the end of warm-up) / RSS at the end of
warm-up; the target ("Reliability / Long runs") is growth under 5%. `--no-sinks` runs without
sinks, to tell their memory from the rest's.

`--write` replaces the section between the soak markers in a Markdown file (appends it where there
is none), keeping the rest of the file and a hand-written notes block inside the section; `--plot`
writes RSS against frames as a PNG (warm-up and the 5% band marked).
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from runtime.atomic import atomic_write_text

START = "<!-- soak:start -->"
END = "<!-- soak:end -->"
# Hand-written reading of the results, inside the section: --write carries it over unchanged.
NOTES_START = "<!-- soak:notes (hand-written; kept by --write) -->"
NOTES_END = "<!-- soak:notes-end -->"
TARGET_PCT = 5.0
REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path.home() / ".cache" / "scaseg" / "soak"
MIB = 1024 * 1024

console = Console(stderr=True, highlight=False)


@dataclass(frozen=True)
class Sample:
    frames: int  # inferred so far (0: before the run; "after close": see SoakResult.after)
    written: int  # written to every sink so far (the writer runs a few frames behind)
    t_s: float  # since the run started
    rss_mib: float
    py_blocks: int  # sys.getallocatedblocks(): objects held by Python's allocator
    gc_objects: int  # objects tracked by the garbage collector
    fds: int
    threads: int  # OS threads of the process (ONNX Runtime's pool and FFmpeg's included)
    cpu_s: float  # process CPU time (user + system) since the run started
    load1: float  # the machine's 1-minute load average: other processes slow the run down
    stats_mib: float  # held by the pipeline's latency record (PipelineStats.times), estimated


@dataclass
class SoakConfig:
    frames: int = 20_000
    every: int = 1_000
    warmup: int | None = None  # frames; None: two samples
    size: int = 256  # model input (square)
    frame_hw: tuple[int, int] = (360, 640)  # generated source frames
    video_frames: int = 250  # length of the generated clip that is looped
    threads: int | None = None  # ONNX Runtime intra-op threads (None: all cores)
    model: Path | None = None  # None: the tiny variant, exported (and cached) here
    cache: Path = DEFAULT_CACHE
    workdir: Path | None = None  # None: a temporary folder, removed afterwards
    sinks: bool = True  # False: no sinks (to tell their memory from the rest's)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.frames < 1 or self.every < 1:
            raise ValueError(f"--frames and --every must be >= 1, got {self.frames}, {self.every}")
        if self.warmup is None:
            self.warmup = 2 * self.every
        if not 0 <= self.warmup < self.frames:
            raise ValueError(f"--warmup must be in [0, --frames), got {self.warmup}")
        if self.video_frames < 1:
            raise ValueError(f"--video-frames must be >= 1, got {self.video_frames}")


@dataclass
class SoakResult:
    config: SoakConfig
    samples: list[Sample]  # frame 0 (before the run), every --every frames, and the last frame
    after: Sample  # after run_pipeline returned (sinks closed)
    frames: int
    wall_s: float
    fps: float
    latency_ms: dict
    model: str
    outputs: dict[str, str] = field(default_factory=dict)  # what the sinks wrote, checked

    @property
    def run_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.frames > 0]

    @property
    def warm(self) -> Sample:
        """The sample at the end of warm-up: the first one at or past --warmup frames."""
        return next(s for s in self.run_samples if s.frames >= self.config.warmup)

    @property
    def last(self) -> Sample:
        return self.run_samples[-1]

    @property
    def growth_pct(self) -> float:
        return 100.0 * (self.last.rss_mib - self.warm.rss_mib) / self.warm.rss_mib

    @property
    def max_growth_pct(self) -> float:
        """Largest RSS after warm-up, relative to the end of warm-up."""
        after = [s.rss_mib for s in self.run_samples if s.frames >= self.warm.frames]
        return 100.0 * (max(after) - self.warm.rss_mib) / self.warm.rss_mib

    @property
    def slope_mib_per_1k(self) -> float:
        """Least-squares RSS slope after warm-up, MiB per 1,000 frames (0 with < 2 samples)."""
        pts = [(s.frames, s.rss_mib) for s in self.run_samples if s.frames >= self.warm.frames]
        if len(pts) < 2:
            return 0.0
        n = len(pts)
        mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        return 1000.0 * sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0

    @property
    def growth_ex_stats_pct(self) -> float:
        """Growth after warm-up less what the pipeline's latency record took."""
        last, warm = self.last, self.warm
        grown = (last.rss_mib - last.stats_mib) - (warm.rss_mib - warm.stats_mib)
        return 100.0 * grown / warm.rss_mib

    @property
    def passed(self) -> bool:
        return self.growth_pct < TARGET_PCT


# ---------------------------------------------------------------------------------------------
# model and source


def _export_tiny_here(folder: str, size: int) -> None:
    """Child-process side of tiny_model (imports torch and the export library)."""
    from benchmarks.artifacts import random_checkpoint
    from export.pipeline import export_artifacts
    from export.request import ExportRequest

    out = Path(folder)
    with tempfile.TemporaryDirectory(prefix="scaseg-soak-ckpt-") as tmp:
        checkpoint = random_checkpoint("tiny", Path(tmp))
        request = ExportRequest(
            checkpoint=checkpoint, out=out, name=f"scaseg_tiny_{size}", precisions=("fp32",),
            height=size, width=size, verify=True, verify_frames=4, force=True,
        )  # fmt: skip
        export_artifacts(request)


def tiny_model(cache: Path, size: int) -> Path:
    """The tiny variant as FP32 ONNX + sidecar at size x size, exported once into `cache`."""
    path = cache / f"scaseg_tiny_{size}.fp32.onnx"
    if path.is_file() and Path(f"{path}.json").is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    console.print(f"soak: exporting the tiny variant at {size}x{size} to {path} (once)")
    code = "import sys; from benchmarks.soak import _export_tiny_here as e; e(sys.argv[1], int(sys.argv[2]))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(cache), str(size)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not path.is_file():
        raise RuntimeError(f"exporting the tiny model failed:\n{done.stderr[-3000:]}")
    return path


def source_video(cache: Path, frame_hw: tuple[int, int], frames: int) -> Path:
    """A generated street clip (bench split, first seed), rendered once into `cache`."""
    from runtime.scenes import split_seeds, write_scene_video

    h, w = frame_hw
    path = cache / f"street_{w}x{h}_{frames}.mp4"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        console.print(f"soak: rendering a {frames}-frame {w}x{h} street video to {path} (once)")
        write_scene_video(path, split_seeds("bench", 1)[0], h, w, frames, overwrite=True)
    return path


# ---------------------------------------------------------------------------------------------
# measuring


def stage_times_bytes() -> float:
    """Bytes one more entry of PipelineStats.times costs (the StageTimes, its floats and the
    list slot), measured with tracemalloc on 10,000 of them (once, before the run)."""
    import tracemalloc

    from runtime.segmenter import StageTimes

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [StageTimes(i * 1.5, i * 2.5, i * 3.5) for i in range(10_000)]
        per_item = (tracemalloc.get_traced_memory()[0] - before) / len(held)
    finally:
        tracemalloc.stop()
    return per_item


class _Sampler:
    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.item_bytes = stage_times_bytes()
        self.t0 = time.perf_counter()
        self.cpu0 = self._cpu()

    def _cpu(self) -> float:
        times = self.proc.cpu_times()
        return times.user + times.system

    def __call__(self, frames: int, written: int, stats_entries: int) -> Sample:
        proc = self.proc
        return Sample(
            frames=frames,
            written=written,
            t_s=time.perf_counter() - self.t0,
            rss_mib=proc.memory_info().rss / MIB,
            py_blocks=sys.getallocatedblocks(),
            gc_objects=len(gc.get_objects()),
            fds=proc.num_fds() if hasattr(proc, "num_fds") else proc.num_handles(),
            threads=proc.num_threads(),
            cpu_s=self._cpu() - self.cpu0,
            load1=os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0,
            stats_mib=stats_entries * self.item_bytes / MIB,
        )


def run_soak(config: SoakConfig) -> SoakResult:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from runtime.backends import BackendOptions
    from runtime.pipeline import PipelineStats, run_pipeline
    from runtime.segmenter import Segmenter
    from runtime.sinks import OutputSpec, build_sinks
    from runtime.sources import open_source

    model = config.model or tiny_model(config.cache, config.size)
    video = source_video(config.cache, config.frame_hw, config.video_frames)
    options = BackendOptions(provider="cpu", intra_op_threads=config.threads)
    with tempfile.TemporaryDirectory(prefix="scaseg-soak-") as tmp:
        workdir = config.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        spec = OutputSpec(
            overlay=workdir / "overlay.mp4", jsonl=workdir / "frames.jsonl", overwrite=True
        )
        stop = threading.Event()
        src = open_source(str(video), loop=True)
        try:
            with Segmenter(model, options=options) as seg:
                sinks = (
                    build_sinks(spec, seg.palette_bgr, seg.meta.class_names, src.info.fps, stop)
                    if config.sinks
                    else []
                )
                progress = Progress(
                    TextColumn("[bold]soak"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[fps]:.1f} FPS  RSS {task.fields[rss]:.1f} MiB"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=console,
                    disable=not config.progress,
                )
                task = progress.add_task("soak", total=config.frames, fps=0.0, rss=0.0)
                take_sample = _Sampler()
                samples = [take_sample(0, 0, 0)]

                def on_frame(stats: PipelineStats) -> None:
                    n = stats.frames_done
                    if n % config.every == 0 or n == config.frames:
                        samples.append(take_sample(n, stats.frames_written, len(stats.times)))
                        progress.update(task, rss=samples[-1].rss_mib)
                    progress.update(task, completed=n, fps=stats.fps)
                    if n >= config.frames:
                        # Stop here rather than with max_frames: a max_frames run ends its reader
                        # thread a few frames early, and the memory that thread releases made the
                        # last sample read low (by 5-7 MiB in a 20,000-frame run). Every frame
                        # inferred so far is still written and the sinks are finalised.
                        stop.set()

                with progress:
                    summary = run_pipeline(
                        src.frames(), src.info.live, seg, sinks, None, stop, on_frame
                    )
                if summary.frames != config.frames:
                    raise RuntimeError(
                        f"the pipeline wrote {summary.frames} of {config.frames} frames"
                    )
                after = take_sample(summary.frames, summary.frames, 0)
                description = f"{Path(model).name} on {seg.description}"
        finally:
            src.close()
        outputs = _check_outputs(spec, summary.frames) if config.sinks else {}
    return SoakResult(
        config, samples, after, summary.frames, summary.wall_s, summary.fps,
        summary.latency_ms, description, outputs,
    )  # fmt: skip


def _check_outputs(spec, frames: int) -> dict[str, str]:
    """What the sinks wrote, checked against the frame count (a sink that silently stopped
    writing would also stop growing)."""
    import cv2

    cap = cv2.VideoCapture(str(spec.overlay))
    video_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    with open(spec.jsonl, encoding="utf-8") as f:
        lines = sum(1 for _ in f)
    if video_frames != frames or lines != frames:
        raise RuntimeError(
            f"sinks wrote {video_frames} video frames and {lines} JSON lines for {frames} frames"
        )
    return {
        "overlay": f"overlay mp4 ({video_frames} frames, {spec.overlay.stat().st_size / MIB:.0f} MiB)",
        "jsonl": f"JSON lines ({lines} lines, {spec.jsonl.stat().st_size / MIB:.1f} MiB)",
    }


# ---------------------------------------------------------------------------------------------
# reporting


def plot(result: SoakResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result.run_samples
    warm = result.warm
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    ax.axvspan(
        0, result.config.warmup, color="0.85", label=f"warm-up ({result.config.warmup} frames)"
    )
    ax.axhspan(
        warm.rss_mib, warm.rss_mib * (1 + TARGET_PCT / 100), color="tab:green", alpha=0.15,
        label=f"+{TARGET_PCT:g}% of RSS at warm-up end",
    )  # fmt: skip
    ax.plot([s.frames for s in runs], [s.rss_mib for s in runs], "o-", color="tab:blue", ms=3,
            label="RSS")  # fmt: skip
    ax.set_xlabel("frames")
    ax.set_ylabel("RSS (MiB)")
    ax.set_xlim(0, max(s.frames for s in runs))
    verdict = "met" if result.passed else "NOT met"
    ax.set_title(
        f"soak: {result.frames} frames, growth after warm-up {result.growth_pct:+.2f}% "
        f"(< {TARGET_PCT:g}%: {verdict})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def machine_lines() -> list[str]:
    from runtime.envinfo import cpu_info, versions

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
        f"(runtime.scenes), looped by the source's loop option ({passes} passes, "
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


# ---------------------------------------------------------------------------------------------
# command line


def _frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 640x360, got {text!r}") from err
    if w < 32 or h < 32 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"frame size {text} must be even and at least 32x32")
    return h, w


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--every", type=int, default=1_000, help="frames between samples")
    parser.add_argument("--warmup", type=int, help="warm-up frames (default: 2 x --every)")
    parser.add_argument("--size", type=int, default=256, help="model input size (square)")
    parser.add_argument("--frame-size", type=_frame_size, default=(360, 640), metavar="WxH",
                        help="generated source frames (default 640x360)")  # fmt: skip
    parser.add_argument("--video-frames", type=int, default=250, help="length of the looped clip")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores)")
    parser.add_argument("--model", type=Path, help="an ONNX artifact (default: the tiny variant)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where the exported model and the clip are kept")  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="keep the sinks' outputs here")
    parser.add_argument("--write", type=Path, metavar="MD", help="replace the soak section here")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="RSS vs frames plot")
    parser.add_argument("--no-sinks", action="store_true",
                        help="run without sinks (to tell their memory from the rest's)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.soak " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        config = SoakConfig(
            frames=args.frames, every=args.every, warmup=args.warmup, size=args.size,
            frame_hw=args.frame_size, video_frames=args.video_frames, threads=args.threads,
            model=args.model, cache=args.cache, workdir=args.workdir,
            sinks=not args.no_sinks, progress=not args.no_progress,
        )  # fmt: skip
    except ValueError as err:
        raise SystemExit(f"soak: {err}") from err
    result = run_soak(config)
    link = None
    if args.plot:
        plot(result, args.plot)
        console.print(f"soak: wrote {args.plot}")
        base = args.write.resolve().parent if args.write else Path.cwd()
        link = os.path.relpath(args.plot.resolve(), base)
    block = render(result, command, link)
    print(block)
    if args.write:
        write_section(args.write, block)
        console.print(f"soak: wrote the soak section of {args.write}")
    verdict = "met" if result.passed else "NOT met"
    console.print(
        f"soak: {result.frames} frames, {result.fps:.1f} FPS, RSS {result.warm.rss_mib:.1f} -> "
        f"{result.last.rss_mib:.1f} MiB after warm-up: {result.growth_pct:+.2f}% "
        f"(target < {TARGET_PCT:g}%: {verdict})"
    )
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
