"""What scaseg-export and build-engine write, checked against what they read before anything
loads: no output may replace, hold or sit inside an input (runtime/io/output_paths.py).

Artifacts beside the checkpoint are fine (`--out` is a folder scaseg writes named files into);
an output inside a folder the export reads (--calib-data, --val-data, --val-masks) is not, nor a
--triton-repo that holds an input (its model folders are replaced with --force).
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from export.artifacts import engine_path_for
from runtime.io.input_paths import file_inputs, folder_inputs, model_inputs, source_inputs
from runtime.io.output_paths import check_outputs, files_in, output_file, output_folder
from runtime.io.source_types import GENERATED
from runtime.meta import sidecar_path
from runtime.text import shown

# What the export writes into a folder it is given (fnmatch patterns): --out per precision,
# --deepstream, --sensitivity-report (export/int8/sensitivity.py), --calib-cache (one JSON a key).
ARTIFACT_NAMES = ("*.{p}.onnx", "*.{p}.onnx.json", "*.{p}.engine", "*.{p}.engine.json")
DEEPSTREAM_NAMES = ("config_infer_*.txt", "*.deepstream.onnx", "*.deepstream.onnx.json",
                    "*.deepstream.engine", "labels.txt", "pipeline.txt")  # fmt: skip
SENSITIVITY_NAMES = ("int8_sensitivity*",)
CACHE_NAMES = ("*.json",)
TIMING_CACHE = "tensorrt.timing.cache"  # build-engine's default, beside the ONNX


def shown_path(path: str | Path) -> str:
    """A path for a rich markup line: shown as typed (no markup, no raw control bytes)."""
    return escape(shown(path))


def check_export_paths(request, triton_repo: Path | None, deepstream: Path | None) -> None:
    """Refuse an export (export.request.ExportRequest plus the Triton and DeepStream folders)
    whose outputs would replace, hold or sit inside what it reads."""
    from export.request import DEMO_CHECKPOINT

    inputs = file_inputs(request.checkpoint or DEMO_CHECKPOINT, "--checkpoint")
    inputs += file_inputs(request.classes, "--classes")
    if request.calib_data not in (None, GENERATED):
        inputs += source_inputs(request.calib_data, "--calib-data", lists=True)
    inputs += folder_inputs(request.val_data, "--val-data")
    inputs += folder_inputs(request.val_masks, "--val-masks")
    names = [n.format(p=p) for p in request.precisions for n in ARTIFACT_NAMES]
    outputs = [files_in(request.out, names, "--out")]
    for folder, flag, written in (
        (request.calib_cache, "--calib-cache", CACHE_NAMES),
        (request.sensitivity_report, "--sensitivity-report", SENSITIVITY_NAMES),
        (deepstream, "--deepstream", DEEPSTREAM_NAMES),
    ):
        if folder is not None:
            outputs.append(files_in(folder, written, flag))
    if triton_repo is not None:
        outputs.append(output_folder(triton_repo, "--triton-repo"))
    check_outputs(inputs, outputs)


def check_engine_paths(model: Path, timing_cache: Path | None, calib_data: str | None) -> None:
    """The engine, its sidecar and the timing cache never replace the ONNX, its sidecar or
    data, or the calibration frames."""
    inputs = model_inputs(model, "MODEL")
    if calib_data not in (None, GENERATED):
        inputs += source_inputs(calib_data, "--calib-data", lists=True)
    engine = engine_path_for(model)
    outputs = [output_file(engine, "engine"), output_file(sidecar_path(engine), "engine sidecar")]
    cache = timing_cache or model.parent / TIMING_CACHE
    check_outputs(inputs, [*outputs, output_file(cache, "--timing-cache")])
