"""scaseg-run: segment a video, images, a camera or a stream with a SCASeg artifact.

Library code raises; this file (with cli_report) alone prints, turns exceptions into one-line
messages and exit codes through runtime/cli_errors.py (2: bad input or usage, 1: runtime failure
or a bug, 130/143: stopped by SIGINT/SIGTERM), and installs the signal handlers that stop a run
cleanly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from runtime.backends import BackendOptions, parse_device
from runtime.cli_errors import UsageError, guarded, in_cli_terms, warning_line, warnings_as_lines
from runtime.disk_space import DEFAULT_MIN_FREE_MB
from runtime.io.capture import RECONNECT_MAX_DELAY_S, Reconnect
from runtime.io.sinks import OutputSpec
from runtime.io.sources import STREAM_TIMEOUT_S
from runtime.run_outputs import check_run_outputs
from runtime.text import shown

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


class Provider(str, Enum):
    auto = "auto"
    tensorrt = "tensorrt"
    cuda = "cuda"
    cpu = "cpu"


class BackendKind(str, Enum):
    auto = "auto"
    onnxruntime = "onnxruntime"
    tensorrt = "tensorrt"
    openvino = "openvino"


class OvPrecision(str, Enum):
    auto = "auto"
    f32 = "f32"
    bf16 = "bf16"
    f16 = "f16"


DEVICE_HELP = (
    "CUDA GPU index (ONNX Runtime CUDA/TensorRT, TensorRT engines; default 0) or OpenVINO device "
    "name (CPU, GPU, GPU.1, NPU, AUTO; default CPU). Example: --device GPU"
)
OV_PRECISION_HELP = (
    "OpenVINO inference precision; auto: f32 for fp32 artifacts, the device default (bf16/f16 "
    "where it has them) for fp16 and the float part of int8. Example: --ov-precision f32"
)
BACKEND_HELP = (
    "Force a backend. auto: TensorRT for engines; for .onnx ONNX Runtime, or OpenVINO on an x86 "
    "CPU when the artifact passed OpenVINO's check at export. Example: --backend openvino"
)


def backend_line(backend: object) -> str:
    """'<what runs>' plus, where --backend auto picked it, '(auto: <why>)'."""
    choice = getattr(backend, "choice", None)
    return (
        f"{backend.description} (auto: {in_cli_terms(choice)})" if choice else backend.description
    )


@dataclass(frozen=True)
class EngineApis:
    """What TensorRT engines run on: the tensorrt module and a runtime.cuda_mem.CudaApi; None
    loads the real ones. Given to `run` as click's context object (run_app's `obj`): tests pass
    fakes that way (tests/runtime/fake_trt_cli.py), the console script passes nothing."""

    tensorrt: object | None = None
    cuda: object | None = None


@dataclass(frozen=True)
class RunArgs:
    source: str
    model: Path
    outputs: OutputSpec
    backend: str
    options: BackendOptions
    loop: bool
    max_frames: int | None
    profile: Path | None = None  # write a latency report (JSON, CSV, PNG) into this folder
    profile_warmup: int = 5  # frames left out of the profile's statistics
    reconnect: Reconnect | None = None  # live sources: reopen after a drop (None: never)
    stream_timeout_s: float = STREAM_TIMEOUT_S  # network streams: open / next-frame time-out
    engine_apis: EngineApis = EngineApis()  # TensorRT engines: the real tensorrt and CUDA


def default_model_path() -> Path | None:
    """The model used when --model is omitted: $SCASEG_MODEL, else the demo model the runtime
    package ships (runtime/bundled.py), else None."""
    env = os.environ.get("SCASEG_MODEL")
    if env:
        return Path(env).expanduser()
    from runtime.bundled import bundled_model

    return bundled_model()


def _resolve_model(model: Path | None) -> Path:
    model = model or default_model_path()
    if model is None:
        raise UsageError(
            "no model given, and this installation has no bundled demo model "
            "(runtime/models/): pass --model PATH, set SCASEG_MODEL, or export one with "
            "scaseg-export"
        )
    if not model.is_file():
        raise UsageError(f"model {model} not found; pass --model with an .onnx or .engine file")
    return model


def _text(value: object) -> str:
    """A path or a sidecar's words for a markup line: shown as typed."""
    return escape(shown(str(value)))


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[dict]:
    """First SIGINT/SIGTERM sets `stop` (the run winds down and finalises its outputs); a second
    one raises KeyboardInterrupt, which still finalises."""
    state: dict = {"signum": None}

    def handle(signum: int, _frame: object) -> None:
        if state["signum"] is not None:
            raise KeyboardInterrupt
        state["signum"] = signum
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def execute(args: RunArgs) -> int:
    """Run one scaseg-run invocation; returns the exit code (exceptions go to the caller)."""
    from runtime.cli_report import make_progress, print_summary, progress_total
    from runtime.disk_space import OutputSpaceError
    from runtime.io.capture import SourceLostError
    from runtime.io.sinks import build_sinks
    from runtime.io.sources import open_source
    from runtime.pipeline import PipelineConfig, run_pipeline
    from runtime.segmenter import Segmenter

    check_run_outputs(
        args.model, args.source, args.outputs, args.profile, args.options.trt_cache_dir
    )
    guard = args.outputs.space_guard()
    if guard is not None:
        guard.check_before_start()
    stop = threading.Event()
    report = lost = None
    with _stop_on_signals(stop) as state:
        src = open_source(
            args.source, loop=args.loop, reconnect=args.reconnect, stop=stop,
            stream_timeout_s=args.stream_timeout_s,
        )  # fmt: skip
        try:
            model, cuda = _open_model(args)
            with Segmenter(model, backend=args.backend, options=args.options) as seg:
                info, meta = src.info, seg.meta
                size = f"{info.size_wh[0]}x{info.size_wh[1]}" if info.size_wh else "size unknown"
                err_console.print(
                    f"scaseg-run: {_text(args.model.name)} ({_text(meta.variant)}, "
                    f"{_text(meta.precision)}) on {_text(backend_line(seg.backend))}; "
                    f"{info.kind} {_text(args.source)} ({size})",
                    soft_wrap=True,
                )
                sinks = build_sinks(args.outputs, seg.palette_bgr, meta.class_names, info.fps, stop)
                stages, frames, sinks, recorder = _instrument(args, seg, cuda, src.frames(), sinks)
                progress, on_frame = make_progress(
                    err_console, progress_total(info, args.max_frames)
                )
                with progress:
                    try:
                        summary = run_pipeline(
                            frames, info.live, stages, sinks,
                            PipelineConfig(max_frames=args.max_frames), stop, on_frame, guard,
                        )  # fmt: skip
                    except (SourceLostError, OutputSpaceError) as err:
                        if err.summary is None:
                            raise
                        lost, summary = err, err.summary
                if recorder is not None:
                    report = _profile_report(args, seg, cuda, recorder, summary.frames)
        finally:
            src.close()
    print_summary(out_console, summary, state["signum"])
    if report is not None:
        _write_profile(report, args.profile)
    if lost is not None:  # the outputs hold every frame written before the source or disk gave out
        raise lost
    return 128 + state["signum"] if state["signum"] is not None else 0


def _open_model(args: RunArgs) -> tuple[object, object | None]:
    """The opened backend, with --profile one with stage timers (and its timing CUDA API)."""
    apis = args.engine_apis
    if args.profile is None:
        from runtime.backends import open_backend

        backend = open_backend(
            args.model, args.backend, args.options, tensorrt=apis.tensorrt, cuda=apis.cuda
        )
        return backend, None
    from runtime.profiling.profiler import open_profiled_backend

    return open_profiled_backend(
        args.model, args.backend, args.options, tensorrt=apis.tensorrt, cuda=apis.cuda
    )


def _instrument(args: RunArgs, seg: object, cuda: object, frames, sinks: list):
    """With --profile: time every stage (decode, preprocess, [h2d, infer, d2h], postprocess,
    encode) and each frame end to end; without it, the plain segmenter, frames and sinks."""
    if args.profile is None:
        return seg, frames, sinks, None
    from runtime.profiling.profiler import StageRecorder, TimedStages, timed_frames, timed_sinks

    recorder = StageRecorder()
    stages = TimedStages(seg, recorder, cuda)
    return stages, timed_frames(frames, recorder), timed_sinks(sinks, recorder), recorder


def _profile_report(args: RunArgs, seg: object, cuda: object, recorder, frames: int) -> dict:
    import shlex
    import sys

    from runtime.profiling.envinfo import capture_environment, measure_memory
    from runtime.profiling.report import build_report, model_section

    return build_report(
        tool="scaseg-run --profile", command="scaseg-run " + shlex.join(sys.argv[1:]),
        model=model_section(args.model, seg.meta), recorder=recorder,
        warmup=min(args.profile_warmup, max(frames - 1, 0)), source=args.source, pipelined=True,
        layers=None, memory=measure_memory(seg.backend),
        environment=capture_environment(seg.backend, cuda, args.options),
    )  # fmt: skip


def _write_profile(report: dict, folder: Path) -> None:
    from runtime.profiling.report import stages_table, summary_lines, write_report

    written, skipped = write_report(report, folder)
    out_console.print(stages_table(report))
    for line in summary_lines(report):
        out_console.print(f"  {line}", soft_wrap=True)
    for path in written:
        out_console.print(f"  wrote {_text(path)}", soft_wrap=True)
    if skipped:
        warning_line("scaseg-run", str(skipped), err_console)


@app.command(
    help=(
        "Segment a video, images, a camera or a stream with a SCASeg .onnx or .engine artifact.\n\n"
        "Example: scaseg-run clip.mp4 --model scaseg_t_demo.int8.onnx --out overlay.mp4"
    )
)
def run(
    ctx: typer.Context,
    source: str = typer.Argument(
        ...,
        help="Video file, image file/folder/glob, camera index or /dev/videoN, rtsp:// or http:// "
        "URL, GStreamer pipeline ending in appsink, or csi://N (Jetson). Example: 'frames/*.png'",
        show_default=False,
    ),
    model: Path | None = typer.Option(
        None, "--model", "-m",
        help="Artifact (.onnx or .engine) with its .json sidecar; default $SCASEG_MODEL or the demo "
        "model. Example: --model scaseg_t_demo.int8.onnx",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Overlay video (.mp4 .avi .mkv .mov). Example: --out overlay.mp4"
    ),
    provider: Provider = typer.Option(
        Provider.auto,
        help="ONNX Runtime execution provider; an explicit one that fails to load is an error. "
        "Example: --provider cuda",
    ),
    backend: BackendKind = typer.Option(BackendKind.auto, help=BACKEND_HELP),
    device: str | None = typer.Option(None, "--device", help=DEVICE_HELP, show_default=False),
    ov_precision: OvPrecision = typer.Option(OvPrecision.auto, "--ov-precision", help=OV_PRECISION_HELP),
    alpha: float = typer.Option(
        0.5, min=0.0, max=1.0, help="Label colour weight in the overlay. Example: --alpha 0.4"
    ),
    labels_out: Path | None = typer.Option(
        None, "--labels-out",
        help="Folder for per-frame palettised PNGs (pixel = class id), or a video path for colour "
        "label maps. Example: --labels-out labels/",
    ),
    jsonl: Path | None = typer.Option(
        None,
        help="Per-frame JSON lines: read time (unix s), position in a video file (pts_ms), class "
        "areas and latency. Example: --jsonl stats.jsonl",
    ),
    show: bool = typer.Option(False, "--show", help="Show the overlay in a window (q quits). Example: --show"),
    loop: bool = typer.Option(False, "--loop", help="Restart file sources at the end. Example: --loop --max-frames 1000"),
    reconnect: int = typer.Option(
        0, "--reconnect",
        help="Live sources (cameras, streams): reopen a dropped source up to N times, waiting "
        f"--reconnect-delay, doubled each attempt (at most {RECONNECT_MAX_DELAY_S:g} s); 0: the run "
        "ends when the source drops. Example: --reconnect 5",
    ),
    reconnect_delay: float = typer.Option(
        1.0, "--reconnect-delay", help="Seconds before the first reconnect attempt. Example: --reconnect-delay 0.5"
    ),
    stream_timeout: float = typer.Option(
        STREAM_TIMEOUT_S, "--stream-timeout",
        help="Network streams (rtsp://, http://...): seconds to wait for the stream to open or for "
        "its next frame before treating it as dropped. Example: --stream-timeout 5",
    ),
    max_frames: int | None = typer.Option(None, min=1, help="Stop after N frames. Example: --max-frames 300"),
    codec: str = typer.Option(
        "mp4v", help="FourCC for video outputs; falls back with a warning. Example: --codec avc1"
    ),
    force: bool = typer.Option(
        False, "--force",
        help="Replace existing outputs; in a --labels-out folder only the PNGs of an earlier run "
        "(never inputs, never other files). Example: --force",
    ),
    segment_minutes: float | None = typer.Option(
        None, "--segment-minutes",
        help="Video outputs: cut into numbered files (out_00000.mp4, ...) of this many minutes, "
        "each playable once full; for runs that last days. Example: --segment-minutes 10",
    ),
    min_free_mb: float = typer.Option(
        DEFAULT_MIN_FREE_MB, "--min-free-mb",
        help="End the run, outputs finalised, when an output disk has less than this many MiB free "
        "(a full disk makes OpenCV lose the video's index); 0 turns it off. Example: --min-free-mb 256",
    ),
    cuda_graph: bool = typer.Option(
        False, "--cuda-graph", help="TensorRT engines: replay inference as a CUDA graph. Example: --cuda-graph"
    ),
    trt_cache: Path | None = typer.Option(
        None, help="ONNX Runtime TensorRT EP engine cache folder. Example: --trt-cache ~/.cache/scaseg/trt"
    ),
    profile: Path | None = typer.Option(
        None, "--profile",
        help="Write a latency profile (per stage and end to end, memory, environment) as JSON, CSV "
        "and PNG into this folder; per-layer times: scaseg-profile --layers. Example: --profile prof/",
    ),
    profile_warmup: int = typer.Option(
        5, min=0, help="With --profile: first frames left out of the statistics. Example: --profile-warmup 20"
    ),
    threads: int | None = typer.Option(None, min=1, help="ONNX Runtime / OpenVINO CPU threads (default: all cores). Example: --threads 4"),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors. Example: --debug"),
) -> None:  # fmt: skip
    def go() -> int:
        args = RunArgs(
            source=source,
            model=_resolve_model(model),
            outputs=OutputSpec(
                overlay=out,
                labels=labels_out,
                jsonl=jsonl,
                show=show,
                alpha=alpha,
                codec=codec,
                overwrite=force,
                segment_minutes=segment_minutes,
                min_free_mb=min_free_mb,
            ),
            backend=backend.value,
            options=BackendOptions(
                provider=provider.value,
                device=parse_device(device),
                ov_precision=ov_precision.value,
                intra_op_threads=threads,
                cuda_graph=cuda_graph,
                trt_cache_dir=str(trt_cache) if trt_cache else None,
            ),
            loop=loop,
            max_frames=max_frames,
            profile=profile,
            profile_warmup=profile_warmup,
            reconnect=Reconnect(reconnect, reconnect_delay),
            stream_timeout_s=stream_timeout,
            engine_apis=ctx.obj if isinstance(ctx.obj, EngineApis) else EngineApis(),
        )
        return execute(args)

    with warnings_as_lines("scaseg-run", err_console):
        code = guarded(go, prog="scaseg-run", debug=debug, console=err_console)
    raise typer.Exit(code)


def main() -> None:
    from runtime.cli_app import run_app

    run_app(app, "scaseg-run")


if __name__ == "__main__":
    main()
