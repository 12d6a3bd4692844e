"""scaseg-run's outputs, checked before anything loads or any frame is read.

No output may replace, hold or sit inside an input or another output (runtime/io/output_paths.py:
the model with its sidecar and data, the source's files and folders); an existing one needs
--force, and an existing --labels-out folder must be one scaseg wrote (runtime/io/output_folder.py).
"""

from __future__ import annotations

from pathlib import Path

from runtime.atomic import check_writable_folder, check_writable_target
from runtime.cli_errors import UsageError
from runtime.io.input_paths import model_inputs, source_inputs
from runtime.io.output_folder import check_refillable
from runtime.io.output_paths import (
    OutputPath,
    check_outputs,
    files_in,
    output_file,
    output_folder,
    shown,
)
from runtime.io.sinks import OutputSpec, display_available
from runtime.io.video import VIDEO_SUFFIXES, check_video_path
from runtime.io.video_sinks import existing_segments

# What ONNX Runtime's TensorRT provider writes into --trt-cache (engines, profiles, timing cache).
TRT_CACHE_NAMES = ("TensorrtExecutionProvider_*", "*.engine", "*.profile", "*.timing*")


def check_run_outputs(
    model: Path, source: str, outputs: OutputSpec, profile: Path | None, trt_cache: str | None
) -> None:
    """Refuse, before any work, an output that is unsafe (see the module docstring), exists
    without --force, or cannot be written."""
    if outputs.show and not display_available():
        raise UsageError("--show needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set")
    inputs = model_inputs(model) + source_inputs(source, "SOURCE")
    check_outputs(inputs, output_paths(outputs, profile, trt_cache))
    videos = [p for p in (outputs.overlay, outputs.labels) if p is not None and is_video(p)]
    for path in videos:
        check_writable_target(check_video_path(path), outputs.overwrite)
    if outputs.jsonl is not None:
        check_writable_target(outputs.jsonl, outputs.overwrite)
    if outputs.labels is not None and not is_video(outputs.labels):
        check_refillable(outputs.labels, outputs.overwrite)
        check_writable_folder(outputs.labels, "--labels-out")
    if profile is not None:
        _check_profile_dir(profile, outputs.overwrite)


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def output_paths(
    outputs: OutputSpec, profile: Path | None, trt_cache: str | None
) -> list[OutputPath]:
    """Every path the run writes: videos with the segment files already there, the label
    folder (or video), JSON lines, the profile and ONNX Runtime's TensorRT cache folders."""
    from runtime.profiling.report import FILES

    found = []
    for path, flag in ((outputs.overlay, "--out"), (outputs.labels, "--labels-out")):
        if path is None:
            continue
        if flag == "--labels-out" and not is_video(path):
            found.append(output_folder(path, flag))
            continue
        found.append(output_file(path, flag))
        if outputs.segment_minutes is not None:
            found += [output_file(p, flag) for p in existing_segments(path)]
    if outputs.jsonl is not None:
        found.append(output_file(outputs.jsonl, "--jsonl"))
    if profile is not None:
        found.append(files_in(profile, FILES.values(), "--profile"))
    if trt_cache:
        found.append(files_in(trt_cache, TRT_CACHE_NAMES, "--trt-cache"))
    return found


def _check_profile_dir(folder: Path, overwrite: bool) -> None:
    from runtime.profiling.report import FILES

    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--profile {shown(folder)} is a file; give a folder for the report")
    existing = [folder / name for name in FILES.values() if (folder / name).exists()]
    if existing and not overwrite:
        raise UsageError(f"{shown(existing[0])} already exists; pass --force to replace it")
    check_writable_folder(folder, "--profile")
