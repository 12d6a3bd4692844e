"""scaseg-profile: latency of a SCASeg artifact on this device, stage by stage and layer by layer.

    scaseg-profile model.int8.onnx --frames 200 --layers --out prof_int8
    scaseg-profile --compare prof_fp32/profile.json prof_int8/profile.json

Library code raises; this file prints, turns exceptions into one-line messages and exit codes
through runtime/cli_errors.py (2: bad input or usage, 1: runtime failure, a bug or a --fail-over
regression).
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape

from runtime.atomic import check_writable_folder
from runtime.backends import BackendOptions, parse_device
from runtime.cli import (
    BACKEND_HELP,
    DEVICE_HELP,
    OV_PRECISION_HELP,
    BackendKind,
    OvPrecision,
    Provider,
    backend_line,
)
from runtime.cli_errors import UsageError, guarded, warning_line, warnings_as_lines
from runtime.io.input_paths import model_inputs, source_inputs
from runtime.io.output_paths import check_outputs, files_in
from runtime.io.source_types import GENERATED
from runtime.profiling.report import FILES
from runtime.text import shown

GENERATED_SIZE_WH = (960, 540)  # a typical camera frame: the model input is resized from it
GENERATED_FRAMES = 60  # looped as long as needed

err_console = Console(stderr=True, highlight=False)
# Piped output (CI logs) gets a wide table instead of rich's 80-column default, which truncates.
out_console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@dataclass(frozen=True)
class ProfileArgs:
    model: Path
    frames: int
    warmup: int
    source: str
    out: Path
    layers: bool
    layer_runs: int
    top_k: int
    png: bool
    backend: str
    options: BackendOptions


def command_line() -> str:
    return "scaseg-profile " + shlex.join(sys.argv[1:])


@contextlib.contextmanager
def frame_source(spec: str, size_wh: tuple[int, int] = GENERATED_SIZE_WH) -> Iterator[object]:
    """An endless (looped) source: a video/image spec, or a generated test-pattern video."""
    from runtime.io.sources import open_source

    with tempfile.TemporaryDirectory(prefix="scaseg-profile-") as tmp:
        if spec == GENERATED:
            spec = str(write_pattern_video(Path(tmp) / "generated.mp4", size_wh, GENERATED_FRAMES))
        src = open_source(spec, loop=True)
        try:
            yield src
        finally:
            src.close()


def write_pattern_video(path: Path, size_wh: tuple[int, int], frames: int) -> Path:
    """A synthetic camera-like clip for timing: smooth gradients, moving blocks and sensor-like
    noise, so the decoder and the overlay encoder have real work. Made here, not by the scene
    generator, which device installs do not carry; latency does not depend on what it shows."""
    from runtime.io.video import VideoOutput

    w, h = size_wh
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w * 200, yy / h * 200, (xx + yy) / (w + h) * 255], axis=-1)
    video = VideoOutput(path, 25.0, size_wh)
    try:
        for i in range(frames):
            frame = base.copy()
            for k in range(6):
                x = int((k * w / 6 + i * (4 + k)) % w)
                y = int(h * (0.2 + 0.1 * k))
                frame[y : y + h // 8, x : x + w // 10] = (40 * k, 255 - 40 * k, 120)
            frame += rng.normal(0, 6, frame.shape).astype(np.float32)
            video.write(np.clip(frame, 0, 255).astype(np.uint8))
    except BaseException:
        video.abort()
        raise
    video.close()
    return path


def overlay_encoder(folder: Path, palette_bgr, fps: float):
    """encode(frame, labels): overlay blend + mp4v encode into a scratch file (thrown away)."""
    from runtime.io.sink_types import Result
    from runtime.io.video_sinks import OverlayVideoSink
    from runtime.segmenter import StageTimes

    sink = OverlayVideoSink(folder / "overlay.mp4", fps or 25.0, palette_bgr, 0.5)
    zero = StageTimes(0.0, 0.0, 0.0)

    def encode(frame, labels) -> None:
        sink.write(Result(frame.index, frame.name, frame.frame_bgr, labels, zero))

    return encode, sink


def execute(args: ProfileArgs) -> dict:
    """Profile one model, write the report files to args.out and print the tables."""
    from runtime.profiling.report import write_report

    report = measure(args)
    written, skipped = write_report(report, args.out, png=args.png)
    print_report(report, args.top_k)
    for path in written:
        out_console.print(f"  wrote {escape(shown(path))}", soft_wrap=True)
    if skipped:
        warning_line("scaseg-profile", str(skipped), err_console)
    return report


def measure(args: ProfileArgs) -> dict:
    """The timed loop, memory, environment and (with --layers) the per-layer pass -> report."""
    from runtime.profiling.envinfo import capture_environment, measure_memory
    from runtime.profiling.layer_profile import profile_layers
    from runtime.profiling.profiler import (
        LoopConfig,
        StageRecorder,
        TimedStages,
        open_profiled_backend,
        run_loop,
    )
    from runtime.profiling.report import build_report, model_section
    from runtime.segmenter import Segmenter

    config = LoopConfig(args.frames, args.warmup)
    with frame_source(args.source) as src, tempfile.TemporaryDirectory() as scratch:
        backend, cuda = open_profiled_backend(args.model, args.backend, args.options)
        with Segmenter(backend) as seg:
            err_console.print(
                f"scaseg-profile: {escape(shown(args.model.name))} ({seg.meta.precision}) on "
                f"{backend_line(backend)}; {src.info.kind} {escape(shown(args.source))}",
                soft_wrap=True,
            )
            stages = TimedStages(seg, StageRecorder(), cuda)
            encode, sink = overlay_encoder(Path(scratch), seg.palette_bgr, src.info.fps)
            frames = src.frames()
            try:
                with _progress("timing", config.warmup + config.frames) as advance:
                    run_loop(frames, stages, encode, config, advance)
            finally:
                sink.abort()  # the overlay was only written to time the encode
            # Before the layer pass: ONNX Runtime profiling opens a second session.
            memory = measure_memory(backend)
            layers = None
            if args.layers:
                err_console.print(f"scaseg-profile: per-layer profile, {args.layer_runs} runs")
                batch = seg.prepare(next(frames).frame_bgr)
                layers = profile_layers(backend, args.options, batch, args.layer_runs)
            return build_report(
                tool="scaseg-profile", command=command_line(), model=model_section(args.model, seg.meta),
                recorder=stages.recorder, warmup=config.warmup, source=args.source, pipelined=False,
                layers=layers, memory=memory, environment=capture_environment(backend, cuda, args.options),
            )  # fmt: skip


@contextlib.contextmanager
def _progress(what: str, total: int) -> Iterator[object]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    )
    task = progress.add_task(what, total=total)
    with progress:
        yield lambda done: progress.update(task, completed=done)


def print_report(report: dict, top_k: int) -> None:
    from runtime.profiling.report import layers_table, stages_table, summary_lines

    out_console.print(stages_table(report))
    table = layers_table(report, top_k)
    if table is not None:
        out_console.print(table)
    for line in summary_lines(report):
        out_console.print(f"  {line}", soft_wrap=True)


def run_compare(a: Path, b: Path, fail_over: float | None) -> int:
    from runtime.profiling.report import compare_reports, comparison_table, read_report

    comparison = compare_reports(read_report(a), read_report(b))
    out_console.print(comparison_table(comparison, str(a), str(b)))
    for line in comparison.differences:
        out_console.print(f"  differs: {line}", soft_wrap=True)
    e2e = comparison.end_to_end
    if fail_over is not None and e2e is not None and e2e.p50_ratio > fail_over:
        err_console.print(
            f"scaseg-profile: end-to-end p50 is {e2e.p50_ratio:.2f}x of A, over --fail-over {fail_over}"
        )
        return 1
    return 0


def _check_out(out: Path, model: Path, source: str, force: bool) -> None:
    """--out takes the report files: not among the inputs (runtime/io/output_paths.py), not
    over an earlier report without --force, and writable."""
    inputs = model_inputs(model, "MODEL")
    if source != GENERATED:
        inputs += source_inputs(source, "--source")
    check_outputs(inputs, [files_in(out, FILES.values(), "--out")])
    existing = [out / name for name in FILES.values() if (out / name).exists()]
    if existing and not force:
        raise UsageError(
            f"{shown(existing[0])} already exists; pass --force to replace it or choose another "
            "--out"
        )
    check_writable_folder(out, "--out")  # out may not exist yet: judged by its nearest parent


@app.command(
    help=(
        "Profile a SCASeg .onnx or .engine artifact: warm-up, then N timed frames through decode, "
        "preprocess, H2D, infer, D2H, postprocess and encode; per-layer times with --layers. Writes "
        "profile.json, stages.csv, layers.csv, op_types.csv and profile.png to --out.\n\n"
        "Example: scaseg-profile scaseg_t_demo.int8.onnx --frames 200 --layers --out prof_int8\n\n"
        "Compare: scaseg-profile --compare prof_fp32/profile.json prof_int8/profile.json"
    )
)
def profile(
    model: Path | None = typer.Argument(None, help="Artifact (.onnx or .engine) with its .json sidecar. Example: scaseg_t_demo.fp32.onnx", show_default=False),
    frames: int = typer.Option(100, min=1, help="Timed frames. Example: --frames 200"),
    warmup: int = typer.Option(10, min=0, help="Untimed frames first. Example: --warmup 20"),
    source: str = typer.Option(GENERATED, help="Video file, image folder/glob, camera, or 'generated' (a 960x540 synthetic test-pattern video made on the fly). Example: --source clip.mp4"),
    out: Path = typer.Option(Path("profile"), "--out", "-o", help="Folder for the report files. Example: --out prof_int8"),
    layers: bool = typer.Option(False, "--layers", help="Also time every layer (ONNX Runtime profiling, OpenVINO performance counters or TensorRT IProfiler). Example: --layers"),
    layer_runs: int = typer.Option(20, min=1, help="Inferences averaged for --layers. Example: --layer-runs 50"),
    top_k: int = typer.Option(10, min=1, help="Layers shown in the console table. Example: --top-k 20"),
    compare: tuple[Path, Path] | None = typer.Option(None, "--compare", help="Print B/A ratios of two profile.json files instead of profiling. Example: --compare a.json b.json", show_default=False),
    fail_over: float | None = typer.Option(None, "--fail-over", min=0.0, help="With --compare: exit 1 if end-to-end p50 of B/A exceeds this (CI). Example: --fail-over 1.10"),
    provider: Provider = typer.Option(Provider.auto, help="ONNX Runtime execution provider. Example: --provider cuda"),
    backend: BackendKind = typer.Option(BackendKind.auto, help=BACKEND_HELP),
    device: str | None = typer.Option(None, "--device", help=DEVICE_HELP, show_default=False),
    ov_precision: OvPrecision = typer.Option(OvPrecision.auto, "--ov-precision", help=OV_PRECISION_HELP),
    threads: int | None = typer.Option(None, min=1, help="ONNX Runtime / OpenVINO CPU threads (default: all cores). Example: --threads 4"),
    cuda_graph: bool = typer.Option(False, "--cuda-graph", help="TensorRT engines: replay inference as a CUDA graph. Example: --cuda-graph"),
    png: bool = typer.Option(True, "--png/--no-png", help="Draw profile.png (needs matplotlib). Example: --no-png"),
    force: bool = typer.Option(False, "--force", help="Replace an existing report in --out. Example: --force"),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors. Example: --debug"),
) -> None:  # fmt: skip
    def go() -> int:
        if compare is not None:
            return run_compare(*compare, fail_over)
        if model is None:
            raise UsageError(
                "give a MODEL to profile (.onnx or .engine), or --compare A.json B.json"
            )
        _check_out(out, model, source, force)
        options = BackendOptions(
            provider=provider.value,
            device=parse_device(device),
            ov_precision=ov_precision.value,
            intra_op_threads=threads,
            cuda_graph=cuda_graph,
        )
        execute(
            ProfileArgs(
                model=model,
                frames=frames,
                warmup=warmup,
                source=source,
                out=out,
                layers=layers,
                layer_runs=layer_runs,
                top_k=top_k,
                png=png,
                backend=backend.value,
                options=options,
            )
        )
        return 0

    with warnings_as_lines("scaseg-profile", err_console):
        code = guarded(go, prog="scaseg-profile", debug=debug, console=err_console)
    raise typer.Exit(code)


def main() -> None:
    from runtime.cli_app import run_app

    run_app(app, "scaseg-profile")


if __name__ == "__main__":
    main()
