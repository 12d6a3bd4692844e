"""The soak harness: the model and the looped source, the run through the real runtime, and the
samples of the process's memory, descriptors and threads taken every --every frames (see
benchmarks/soak.py for what runs and why)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from benchmarks.soak_result import Sample, SoakConfig, SoakResult

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from runtime.pipeline import PipelineStats

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024

console = Console(stderr=True, highlight=False)


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
    code = "import sys; from benchmarks.soak_harness import _export_tiny_here as e; e(sys.argv[1], int(sys.argv[2]))"
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
    from scenes import split_seeds, write_scene_video

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
    from runtime.backends import BackendOptions
    from runtime.io.sinks import OutputSpec, build_sinks
    from runtime.io.sources import open_source
    from runtime.pipeline import run_pipeline
    from runtime.segmenter import Segmenter

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
                progress = _progress_bar(config)
                task = progress.add_task("soak", total=config.frames, fps=0.0, rss=0.0)
                take_sample = _Sampler()
                samples = [take_sample(0, 0, 0)]
                on_frame = _frame_hook(config, samples, take_sample, progress, task, stop)
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


def _progress_bar(config: SoakConfig) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]soak"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} FPS  RSS {task.fields[rss]:.1f} MiB"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not config.progress,
    )


def _frame_hook(
    config: SoakConfig,
    samples: list[Sample],
    take_sample: _Sampler,
    progress: Progress,
    task: TaskID,
    stop: threading.Event,
):
    """The pipeline's on_frame hook (inference thread): a sample every --every frames, and the
    stop at --frames."""

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

    return on_frame


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
