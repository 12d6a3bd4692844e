"""`scaseg-export`: checkpoint -> ONNX (FP32/FP16/INT8) + sidecars; `build-engine` on the target.

    scaseg-export --precision all --out artifacts
    scaseg-export --checkpoint my.safetensors --input-size 512x1024 --dynamic --precision fp16
    scaseg-export build-engine artifacts/scaseg_t.fp16.onnx --workspace-gib 2 [--dla-core 0]

Only this file prints or exits, through runtime/cli_errors.py: bad input -> one line + exit 2; a
missed accuracy budget or a failed build -> exit 1; a bug -> exit 1 and a traceback log file.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from export import cli_options as opts
from export.cli_options import VariantChoice
from export.cli_paths import check_engine_paths, check_export_paths, shown_path
from export.cli_report import StageProgress, print_engine_result, print_report
from runtime.cli_errors import warning_line

console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


class PrecisionChoice(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"
    all = "all"


class MethodChoice(str, Enum):
    mse = "mse"
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


class RoundingChoice(str, Enum):
    gptq = "gptq"
    nearest = "nearest"


class FallbackChoice(str, Enum):
    auto = "auto"
    off = "off"


class StripChoice(str, Enum):
    auto = "auto"
    exact = "exact"
    grid = "grid"


class EngineChoice(str, Enum):
    auto = "auto"  # build where TensorRT and a GPU are present, else say how to on the target
    yes = "yes"
    no = "no"


def parse_size(text: str, flag: str = "--input-size") -> tuple[int, int]:
    """'512x1024' (HxW) or '512' -> (height, width)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) <= 0:
        raise typer.BadParameter(f"{flag} {text!r}: expected HxW such as 512x512 or 512x1024")
    return sizes[0], sizes[1]


def _size_or_none(text: str | None, flag: str) -> tuple[int, int] | None:
    return None if text is None else parse_size(text, flag)


# The export runs when no subcommand is given (`scaseg-export --precision int8`), so the group's
# own options are the export's; `scaseg-export build-engine MODEL.onnx` is the one subcommand.
@app.callback(
    invoke_without_command=True,
    epilog="Build engines on the target: scaseg-export build-engine MODEL.onnx --help",
)
def export(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(
        None, help="Checkpoint (.safetensors/.pth); default: the bundled demo model."
    ),
    out: Path = typer.Option(Path("artifacts"), help="Output folder."),
    name: str = typer.Option(
        None, help="File stem; default scaseg_<variant> or the checkpoint's stem."
    ),
    precision: PrecisionChoice = typer.Option(PrecisionChoice.fp32, help="Variant(s) to export."),
    input_size: str = typer.Option(
        "512x512", help="HxW, multiples of 32 (static shape; opt shape with --dynamic)."
    ),
    dynamic: bool = typer.Option(
        False, help="Dynamic batch/height/width with min/opt/max profiles."
    ),
    min_size: str = typer.Option("256x256", help="--dynamic: smallest HxW."),
    max_size: str = typer.Option("1024x1024", help="--dynamic: largest HxW."),
    max_batch: int = typer.Option(4, min=1, help="--dynamic: largest batch."),
    fuse_preprocess: bool = typer.Option(
        False, help="uint8 NHWC BGR input, normalised in the graph."
    ),
    fuse_argmax: bool = typer.Option(False, help="int32 (N,H,W) label output at input size."),
    num_classes: int = typer.Option(
        None, help="Expected class count; refuse a checkpoint with another."
    ),
    variant: VariantChoice = opts.VARIANT,
    classes: str = opts.CLASSES,
    mean: str = opts.MEAN,
    std: str = opts.STD,
    rgb: bool = opts.RGB,
    allow_random_decoder: bool = typer.Option(
        False,
        help="Export a checkpoint without decoder weights (random decoder): smoke tests only.",
    ),
    calib_data: str = typer.Option(
        None,
        help="INT8 calibration frames like the ones the model will see: image folder, glob "
        "('frames/*.jpg'), video file, text file listing images, or 'generated' (street scenes; "
        "the default for the bundled demo model only). Example: --calib-data frames/",
    ),
    calib_samples: int = typer.Option(
        32, help="Calibration frames (evenly spaced over a folder/video)."
    ),
    calib_method: MethodChoice = typer.Option(
        MethodChoice.mse,
        help="Activation range method: mse picks each tensor's range with the least INT8 error "
        "(streaming histogram); minmax, entropy (KL) and percentile are ONNX Runtime's.",
    ),
    calib_bins: int = typer.Option(2048, help="Histogram bins (mse, entropy, percentile)."),
    calib_percentile: float = typer.Option(99.99, help="Percentile method's cut-off."),
    calib_cache: Path = typer.Option(
        None, help="Calibration cache folder; default ~/.cache/scaseg/calibration."
    ),
    verify: bool = typer.Option(True, help="Run the accuracy gate (--no-verify skips it)."),
    verify_frames: int = typer.Option(
        None,
        help="Gate frames: default 16 (held-out --calib-data or generated frames), up to 100 "
        "--val-data images (evenly spaced).",
    ),
    val_data: Path = typer.Option(None, help=opts.val_data_help("Gate on your images and masks")),
    val_masks: Path = opts.VAL_MASKS,
    val_split: str = opts.VAL_SPLIT,
    ignore_index: int = opts.IGNORE_INDEX,
    reduce_zero_label: bool = opts.REDUCE_ZERO_LABEL,
    openvino_gate: bool = typer.Option(
        True, help="Also run the gate on OpenVINO where it is installed (recorded in the sidecar)."
    ),
    fp32_max_abs: float = typer.Option(1e-4, help="Budget: FP32 logits max |ONNX - PyTorch|."),
    fp32_agreement: float = typer.Option(99.9, help="Budget: FP32 argmax agreement, percent."),
    fp16_agreement: float = typer.Option(99.5, help="Budget: FP16 argmax agreement, percent."),
    int8_agreement: float = typer.Option(97.0, help="Budget: INT8 argmax agreement, percent."),
    int8_max_drop: float = typer.Option(
        1.0, help="Budget: INT8 mIoU points below PyTorch FP32 (with --val-data masks)."
    ),
    int8_fallback: FallbackChoice = typer.Option(
        FallbackChoice.auto,
        help="INT8 repairs: auto equalizes Conv/BatchNorm -> Conv pairs with outlier channels "
        "before calibration "
        "and, if the gate still fails, leaves the most sensitive nodes in float; off quantizes "
        "as is and lets the gate decide.",
    ),
    int8_rounding: RoundingChoice = typer.Option(
        RoundingChoice.gptq,
        help="INT8 weight rounding: gptq rounds each layer's weights for the least output error "
        "on calibration frames; nearest rounds each weight to its nearest INT8 value.",
    ),
    int8_max_float_nodes: int = typer.Option(
        None,
        help="Most INT8 nodes --int8-fallback auto may leave in float; default 10% of the "
        "quantized nodes. Example: --int8-max-float-nodes 8",
    ),
    sensitivity_report: Path = typer.Option(
        None,
        help="Write the INT8 per-node sensitivity ranking here (CSV + PNG chart), even when the "
        "gate passes. Example: --sensitivity-report reports/",
    ),
    strip_attention: StripChoice = typer.Option(
        StripChoice.auto,
        help="Strip attention in the graph: exact; grid evaluates each head's attention at "
        "--strip-grid query values and interpolates (cost linear in pixels, same weights, gated "
        "against the exact model); auto: grid from 512x1024 input pixels up.",
    ),
    strip_grid: int = typer.Option(
        None, help="Grid form: query values per head (default 256). Example: --strip-grid 512"
    ),
    inference: opts.InferenceChoice = opts.INFERENCE,
    slide_crop: str = opts.SLIDE_CROP,
    slide_stride: str = opts.SLIDE_STRIDE,
    resize: opts.ResizeChoice = opts.RESIZE,
    resize_scale: str = opts.RESIZE_SCALE,
    engines: EngineChoice = typer.Option(EngineChoice.auto, help="Build TensorRT engines too."),
    workspace_gib: float = typer.Option(2.0, help="TensorRT builder workspace limit, GiB."),
    dla_core: int = typer.Option(None, help="Jetson: build for this DLA core (GPU fallback on)."),
    triton_repo: Path = typer.Option(
        None,
        help="Also write a Triton model repository here (Python backend through our runtime, "
        "plus model.onnx / model.plan models). Example: --triton-repo triton_models",
    ),
    triton_max_batch_size: int = typer.Option(
        None, min=1, help="Triton max_batch_size (default: from the artifact's batch profile)."
    ),
    triton_openvino: str = typer.Option(
        None,
        help="Triton's Python-backend model serves the ONNX through OpenVINO on this device "
        "(CPU, GPU, NPU, AUTO) instead of ONNX Runtime. Example: --triton-openvino CPU",
    ),
    deepstream: Path = typer.Option(
        None,
        help="Also write a DeepStream nvinfer config here: nvinfer builds the last exported "
        "FP32/FP16 ONNX itself; an INT8-only export gets a config that reads an engine built on "
        "the device with build-engine. Example: --deepstream ds/",
    ),
    force: bool = typer.Option(False, help="Replace existing artifacts."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Export a SCASeg checkpoint to ONNX (FP32/FP16/INT8) with sidecars, gated on accuracy."""
    if ctx.invoked_subcommand is not None:
        return
    from calibration.ranges import CalibrationSettings
    from export.onnx_export import ShapeRange
    from export.request import ExportRequest
    from export.verify import Budgets

    def run() -> int:
        h, w = parse_size(input_size)
        shapes = None
        if dynamic:
            (h0, w0), (h1, w1) = (
                parse_size(min_size, "--min-size"),
                parse_size(max_size, "--max-size"),
            )
            shapes = ShapeRange((1, 1, max_batch), (h0, h, h1), (w0, w, w1))
        request = ExportRequest(
            checkpoint=checkpoint,
            out=out,
            name=name,
            precisions=("fp32", "fp16", "int8")
            if precision == PrecisionChoice.all
            else (precision.value,),
            height=h,
            width=w,
            dynamic=shapes,
            fuse_preprocess=fuse_preprocess,
            fuse_argmax=fuse_argmax,
            num_classes=num_classes,
            variant=None if variant is None else variant.value,
            allow_random_decoder=allow_random_decoder,
            classes=classes,
            color=opts.color_order(rgb),
            mean=opts.parse_triplet(mean, "--mean"),
            std=opts.parse_triplet(std, "--std"),
            calib_data=calib_data,
            calib_samples=calib_samples,
            calibration=CalibrationSettings(
                calib_method.value, num_bins=calib_bins, percentile=calib_percentile
            ),
            calib_cache=calib_cache,
            verify=verify,
            verify_frames=verify_frames,
            val_data=opts.existing_path(val_data, "--val-data"),
            val_masks=opts.existing_path(val_masks, "--val-masks"),
            val_split=val_split,
            ignore_index=ignore_index,
            reduce_zero_label=reduce_zero_label,
            openvino_gate=openvino_gate,
            budgets=Budgets(
                fp32_max_abs=fp32_max_abs,
                fp32_agreement=fp32_agreement / 100,
                fp16_agreement=fp16_agreement / 100,
                int8_miou_drop_points=int8_max_drop,
                int8_agreement=int8_agreement / 100,
            ),
            int8_fallback=int8_fallback.value,
            int8_max_float_nodes=int8_max_float_nodes,
            int8_rounding=int8_rounding.value,
            sensitivity_report=sensitivity_report,
            strip_attention=strip_attention.value,
            strip_grid=strip_grid,
            inference=None if inference is None else inference.value,
            slide_crop=_size_or_none(slide_crop, "--slide-crop"),
            slide_stride=_size_or_none(slide_stride, "--slide-stride"),
            resize=None if resize is None else resize.value.replace("-", "_"),
            resize_scale=_size_or_none(resize_scale, "--resize-scale"),
            force=force,
        )
        from export.trt_build import EngineOptions

        engine_options = EngineOptions(workspace_gib=workspace_gib, dla_core=dla_core, force=force)
        scale_out = ScaleOut(
            triton_repo=triton_repo,
            triton_max_batch_size=triton_max_batch_size,
            deepstream=deepstream,
            force=force,
            triton_openvino=triton_openvino,
        )
        check_export_paths(request, triton_repo, deepstream)
        return _export(request, engines, engine_options, scale_out)

    raise typer.Exit(_guarded(run, debug))


@dataclass(frozen=True)
class ScaleOut:
    """Where to write Triton and DeepStream outputs for the artifacts just built (None: don't)."""

    triton_repo: Path | None
    triton_max_batch_size: int | None
    deepstream: Path | None
    force: bool
    triton_openvino: str | None = None  # OpenVINO device for the Python-backend model


def _write_scale_out(artifacts: list[Path], scale_out: ScaleOut) -> None:
    from export.deepstream import write_deepstream_config
    from export.triton_repo import write_triton_repo

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if scale_out.triton_repo is not None:
            repo = write_triton_repo(
                artifacts,
                scale_out.triton_repo,
                max_batch_size=scale_out.triton_max_batch_size,
                force=scale_out.force,
                openvino_device=scale_out.triton_openvino,
            )
            console.print(f"Triton model repository: {shown_path(repo)}", soft_wrap=True)
        onnx_files = [a for a in artifacts if a.suffix == ".onnx"]
        if scale_out.deepstream is not None and onnx_files:
            # nvinfer builds FP32/FP16 from the ONNX itself (the last of those exported); an INT8
            # Q/DQ ONNX only through an engine built beforehand (export/deepstream.py).
            float_onnx = [a for a in onnx_files if not a.name.endswith(".int8.onnx")]
            source = (float_onnx or onnx_files)[-1]
            prebuilt = not float_onnx
            config = write_deepstream_config(
                source, scale_out.deepstream, force=scale_out.force, prebuilt_engine=prebuilt
            )
            console.print(f"DeepStream nvinfer config: {shown_path(config)}", soft_wrap=True)
            if prebuilt:
                ds_onnx = Path(scale_out.deepstream) / f"{source.stem}.deepstream.onnx"
                console.print(
                    "  INT8 runs in DeepStream from an engine: on the device, run "
                    f"scaseg-export build-engine {shown_path(ds_onnx)} (the config's "
                    "model-engine-file)",
                    soft_wrap=True,
                )
    for warning in caught:
        warning_line("scaseg-export", str(warning.message), console)


def _export(request, engines: EngineChoice, engine_options, scale_out: ScaleOut) -> int:
    from export.pipeline import export_artifacts
    from export.request import GateFailedError
    from export.trt_build import build_command, build_engine, engine_unavailable_reason

    try:
        with StageProgress(console) as progress:
            report = export_artifacts(request, progress=progress.stage, tick=progress.update)
    except GateFailedError as err:
        print_report(console, err.report, request)
        console.print(f"[red]scaseg-export: error:[/] {escape(str(err))}", soft_wrap=True)
        return 1
    print_report(console, report, request)
    written = [a.path for a in report.artifacts if a.written]
    built = []
    reason = (
        None if engines == EngineChoice.no else engine_unavailable_reason(engine_options.device)
    )
    if engines != EngineChoice.no and reason is None:
        for path in written:
            result = build_engine(path, engine_options)
            print_engine_result(console, result)
            built.append(result.path)
    elif reason is not None:
        commands = "\n  ".join(escape(build_command(p, engine_options)) for p in written)
        console.print(
            f"[yellow]{reason}: engines must be built on the target:[/]\n  {commands}",
            soft_wrap=True,
        )
        if engines == EngineChoice.yes:
            return 1
    _write_scale_out(written + built, scale_out)
    return 0


@app.command("build-engine")
def build_engine_command(
    model: Path = typer.Argument(..., help="An exported .onnx with its .json sidecar."),
    workspace_gib: float = typer.Option(2.0, help="Builder workspace limit, GiB."),
    dla_core: int = typer.Option(None, help="Jetson DLA core (GPU fallback on)."),
    timing_cache: Path = typer.Option(None, help="Timing cache file, reused across builds."),
    implicit_int8: bool = typer.Option(
        False, help="TensorRT < 10: entropy calibrator on the FP32 ONNX."
    ),
    calib_data: str = typer.Option(
        None,
        help="--implicit-int8 calibration frames (folder, glob, video, list); default: "
        "generated scenes for the bundled demo model only.",
    ),
    calib_samples: int = typer.Option(32, help="--implicit-int8 calibration frames."),
    force: bool = typer.Option(False, help="Replace an existing engine."),
    device: int = typer.Option(0, min=0, help="CUDA GPU index to build for. Example: --device 1"),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Build a TensorRT engine from MODEL.onnx (run this on the target device)."""
    from export.trt_build import EngineOptions, build_engine

    def run() -> int:
        if not model.is_file():
            raise FileNotFoundError(
                f"{model} does not exist; pass an .onnx written by scaseg-export"
            )
        check_engine_paths(model, timing_cache, calib_data)
        options = EngineOptions(
            workspace_gib=workspace_gib,
            dla_core=dla_core,
            timing_cache=timing_cache,
            implicit_int8=implicit_int8,
            calib_data=calib_data,
            calib_samples=calib_samples,
            force=force,
            device=device,
        )
        print_engine_result(console, build_engine(model, options))
        return 0

    raise typer.Exit(_guarded(run, debug))


def _guarded(run, debug: bool) -> int:
    from runtime.cli_errors import guarded

    return guarded(
        run,
        prog="scaseg-export",
        debug=debug,
        console=console,
        # Ctrl-C / SIGINT: stage folders and temp files are already gone
        interrupted="scaseg-export: interrupted; artifacts finished before the interrupt are "
        "complete, nothing else was placed",
        describe=_disk_full,
    )


def _disk_full(err: BaseException) -> str | None:
    """The fix for a full disk, naming the folder (the output, or $TMPDIR where stages build)."""
    from runtime.disk_space import is_disk_full

    if not is_disk_full(err):
        return None
    target = err.filename2 or err.filename  # type: ignore[attr-defined]
    tmp = Path(tempfile.gettempdir())  # stages are built in $TMPDIR/scaseg-*/, then placed
    if not target:
        return (
            f"a disk is full ({err.strerror}): --out's, or {tmp} where stages are built; free "
            "some space, choose another --out, or set TMPDIR to a disk with room"
        )
    folder = Path(target).parent
    staging = folder.name.startswith("scaseg-") and folder.parent == tmp
    fix = "set TMPDIR to a disk with room" if staging else "choose another --out"
    return (
        f"no space left on the disk of {folder} while writing into it; nothing was placed "
        f"half-written. Free some space or {fix}"
    )


def main(argv: list[str] | None = None) -> None:
    """Console script: `scaseg-export [OPTIONS]` exports, `scaseg-export build-engine` builds."""
    from runtime.cli_app import run_app

    run_app(app, "scaseg-export", list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
