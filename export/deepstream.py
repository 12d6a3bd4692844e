"""A DeepStream nvinfer configuration for semantic segmentation, generated from an ONNX artifact.

    out/
      config_infer_<name>.txt   [property] group for Gst-nvinfer (network-type=2)
      <name>.deepstream.onnx    the artifact with Softmax over classes: "probs" (N,K,H/4,W/4),
                                with its sidecar (so `scaseg-export build-engine` can build it)
      labels.txt                class names, one per line
      pipeline.txt              gst-launch-1.0 lines (file -> overlay video, CSI camera)

Why a modified ONNX: nvinfer's built-in segmentation parser takes FP32 class *probabilities*; it
starts each pixel at max = -1 and keeps a class only above `segmentation-threshold`, so raw
logits below -1 would come out as "no class" (-1). Softmax keeps the argmax.

Two routes to an engine:
- FP32/FP16: nvinfer builds the engine from the ONNX on the device and caches it at
  `model-engine-file` (its own name, `..._b<batch>_gpu0_<fp32|fp16>.engine`).
- INT8 (and any precision with `prebuilt_engine=True`): nvinfer switches to INT8 only when it has a
  calibrator, i.e. an `int8-calib-file`; without one it logs "INT8 calibration file not specified.
  Trying FP16 mode.", builds FP16 (a Q/DQ graph may not build at all) and caches it under an
  `_fp16` name, so the configured `_int8.engine` never exists and it rebuilds at every start
  (Gst-nvinfer's nvdsinfer_model_builder). A Q/DQ ONNX has no calibration table to give it, so an
  INT8 ONNX is refused for the ONNX route; the engine route writes no `onnx-file`, only
  `model-engine-file` naming the engine `scaseg-export build-engine <name>.deepstream.onnx` writes
  on the device, and `network-mode` = that engine's precision. nvinfer deserializes it as is.

Limits (see docs/deployment.md): nvinfer normalises with one scalar scale, so a per-channel std
becomes its mean (warned, with the error); it resizes with its own scaler, and argmaxes at the
output stride (H/4) where scaseg's runtime upsamples the logits first; fused artifacts (uint8
input or label output) cannot be fed or parsed by nvinfer and are refused. So are sidecars with
slide inference (nvinfer runs one input per frame; it cannot cut crop-sized windows and average
their logits) or keep-ratio resizing (nvinfer feeds one fixed input size and parses class maps of
one size, where keep-ratio inputs change size with the frame and are padded, then cut back).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import replace
from pathlib import Path

from export.artifacts import engine_path_for
from runtime.atomic import atomic_path, atomic_write_text
from runtime.deps import require
from runtime.errors import UserInputError
from runtime.meta import ModelMeta, read_meta, sha256_file, write_meta
from runtime.slide import Inference

NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}  # nvinfer's network-mode values
COLOR_FORMAT = {"rgb": 0, "bgr": 1}  # model-color-format
PROBS = "probs"


class DeepStreamConfigError(UserInputError):
    """The artifact cannot be served by nvinfer as it is; the message says what to export."""


class DeepStreamApproximationWarning(UserWarning):
    """nvinfer cannot reproduce the sidecar's preprocessing exactly; the warning gives the error."""


def int8_onnx_refusal(what: str) -> DeepStreamConfigError:
    """The one-line refusal of an INT8 ONNX for nvinfer's ONNX route, naming the engine route."""
    return DeepStreamConfigError(
        f"{what}: nvinfer builds an ONNX in INT8 only with an int8-calib-file, which a Q/DQ "
        "INT8 ONNX does not have (it would build FP16 under another engine name, at every "
        "start); for INT8 give nvinfer a prebuilt engine: pass prebuilt_engine=True (scaseg-export "
        "--deepstream does for an INT8-only export), then on the device run scaseg-export "
        "build-engine <dir>/<name>.deepstream.onnx"
    )


def check_artifact(artifact: Path, meta: ModelMeta) -> None:
    if artifact.suffix != ".onnx":
        raise DeepStreamConfigError(
            f"{artifact.name}: DeepStream needs the ONNX (nvinfer adds a Softmax output and builds "
            "its own engine on the device); pass the .onnx this engine was built from"
        )
    if meta.fused_preprocess or meta.fused_argmax:
        raise DeepStreamConfigError(
            f"{artifact.name} has fused preprocessing or argmax (input {meta.input.name!r} "
            f"{meta.input.dtype}, output {meta.output.name!r}); nvinfer feeds float planar frames "
            "and parses class scores, so export a plain graph (no fused pre/post) for DeepStream"
        )
    check_frame_geometry(artifact, meta)
    if meta.input.layout != "NCHW" or meta.output_kind != "logits":
        raise DeepStreamConfigError(
            f"{artifact.name}: nvinfer needs an NCHW input and class-score output, got "
            f"{meta.input.layout} input and {meta.output_kind} output"
        )


def check_frame_geometry(artifact: Path, meta: ModelMeta) -> None:
    """nvinfer stretches each frame to one input size and runs it once: refuse sidecars that
    ask for slide windows or keep-ratio resizing, naming the export that nvinfer can run."""
    refusal = frame_geometry_refusal(
        artifact.name, meta.inference, meta.preprocess.resize, meta.preprocess.scale
    )
    if refusal is not None:
        raise refusal


def frame_geometry_refusal(
    what: str, inference: Inference, resize: str, scale: tuple[int, int] | None
) -> DeepStreamConfigError | None:
    """The one-line refusal of slide inference or keep-ratio resizing for nvinfer, None where
    frames are stretched and run whole. Callers that know the plan before exporting (an
    InferencePlan's inference, resize and scale) can refuse --deepstream up front."""
    if inference.slide:
        return DeepStreamConfigError(
            f"{what} runs {inference.describe()} (windows of the resized frame, logits "
            "averaged), which nvinfer cannot do; serve it with scaseg-run or the Triton Python "
            "model, or re-export with --inference whole --resize stretch for DeepStream"
        )
    if resize == "keep_ratio":
        return DeepStreamConfigError(
            f"{what} resizes frames keeping their aspect ratio (scale {scale}, padded per frame "
            "size), which nvinfer's one fixed input size cannot do; serve it with scaseg-run or "
            "the Triton Python model, or re-export with --resize stretch for DeepStream"
        )
    return None


def scale_factor(meta: ModelMeta) -> float:
    """nvinfer's single net-scale-factor; warns when the per-channel std must be averaged."""
    std = meta.preprocess.std
    mean_std = sum(std) / 3
    worst = max(abs(s / mean_std - 1) for s in std)
    if worst > 1e-6:
        warnings.warn(
            f"nvinfer applies one scale to all channels: std {tuple(std)} becomes "
            f"{mean_std:.4f} (inputs off by up to {worst:.1%} per channel); label maps may differ "
            "slightly from scaseg's runtime. Use scaseg-run or Triton for exact preprocessing.",
            DeepStreamApproximationWarning,
            stacklevel=3,
        )
    return 1.0 / mean_std


def add_softmax(artifact: Path, meta: ModelMeta, dst: Path) -> None:
    """Copy the ONNX with Softmax over classes (and float32) as the only output, "probs", and
    give it a sidecar, so `scaseg-export build-engine` can build it (the engine route)."""
    onnx = require("onnx", "to write the DeepStream ONNX")
    from onnx import TensorProto, helper

    model = onnx.load(str(artifact))
    graph = model.graph
    logits = meta.output.name
    graph.node.append(helper.make_node("Softmax", [logits], ["probs_raw"], axis=1))
    graph.node.append(helper.make_node("Cast", ["probs_raw"], [PROBS], to=TensorProto.FLOAT))
    shape = [d if isinstance(d, int) else str(d) for d in meta.output.shape]
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(PROBS, TensorProto.FLOAT, shape))
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
    output = replace(meta.output, name=PROBS, dtype="float32")
    hashes = {**meta.hashes, "source_onnx": sha256_file(artifact), "artifact": sha256_file(dst)}
    extra = {**meta.extra, "deepstream": "Softmax over classes: output 'probs' (probabilities)"}
    write_meta(dst, replace(meta, output=output, hashes=hashes, extra=extra))


def input_size(meta: ModelMeta) -> tuple[int, int]:
    """(height, width) nvinfer feeds: the static input size, else the sidecar's preprocess size."""
    pp = meta.preprocess
    _, _, h, w = meta.input.shape
    return (pp.height if isinstance(h, str) else h), (pp.width if isinstance(w, str) else w)


def mask_size(meta: ModelMeta) -> tuple[tuple[int, int], str]:
    """(height, width) of the class map nvinfer attaches (NvDsInferSegmentationMeta), and how it
    follows from the sidecar.

    nvinfer's segmentation parser takes the map's size from the output tensor's last two dims,
    and Gst-nvsegvisual draws that map, so its width/height must be the output size, not the
    input's: H/stride x W/stride for class scores (output_stride 4 here), the input size for a
    fused-argmax label output (sidecar output_kind "labels", stride 1).
    """
    h, w = input_size(meta)
    stride = 1 if meta.output_kind == "labels" else meta.output_stride
    derived = (h // stride, w // stride)
    oh, ow = meta.output.shape[-2:]
    how = (
        f"output {meta.output.name!r} {tuple(meta.output.shape)}: H x W = input {h}x{w} / "
        f"output_stride {stride}"
    )
    if isinstance(oh, int) and isinstance(ow, int):
        return (oh, ow), how if (oh, ow) == derived else f"output {meta.output.name!r} {(oh, ow)}"
    return derived, how


def nvinfer_config(
    meta: ModelMeta,
    source: str,
    onnx_name: str | None,
    engine_name: str,
    batch_size: int,
) -> str:
    """`onnx_name` None: the engine route (nvinfer only deserializes `engine_name`)."""
    pp = meta.preprocess
    h, w = input_size(meta)
    (mh, mw), how = mask_size(meta)
    offsets = ";".join(f"{m:g}" for m in pp.mean)
    if onnx_name is not None:
        model_lines = [
            f"onnx-file={onnx_name}",
            "# nvinfer builds this engine from the ONNX on first run and reuses it afterwards",
            "# (FP32/FP16 only: INT8 would need an int8-calib-file, which a Q/DQ ONNX lacks).",
            f"model-engine-file={engine_name}",
        ]
    else:
        build = f"scaseg-export build-engine {re.sub(r'[.]engine$', '.onnx', engine_name)}"
        model_lines = [
            "# Engine route: no onnx-file, so nvinfer never builds (and never falls back to FP16",
            "# for want of an int8-calib-file); it deserializes this engine. Build it first, on",
            f"# the device that runs DeepStream, from this folder: {build}",
            f"model-engine-file={engine_name}",
        ]
    lines = [
        f"# Generated by scaseg from {source} and its sidecar ({meta.variant}, {meta.precision}).",
        "# nvinfer computes y = net-scale-factor * (x - offsets) on the resized frame, in",
        f"# model-color-format order ({pp.color}); scaseg uses per-channel std {tuple(pp.std)}.",
        f"# Class map nvinfer outputs, and nvsegvisual's width x height: {mw}x{mh} ({how}).",
        "[property]",
        "gpu-id=0",
        f"net-scale-factor={scale_factor(meta):.9g}",
        f"offsets={offsets}",
        f"model-color-format={COLOR_FORMAT[pp.color]}",
        *model_lines,
        "labelfile-path=labels.txt",
        f"infer-dims=3;{h};{w}",
        f"batch-size={batch_size}",
        "# 0=FP32 1=INT8 2=FP16: the precision of the engine nvinfer builds or loads.",
        f"network-mode={NETWORK_MODE[meta.precision]}",
        "network-type=2",
        f"num-detected-classes={meta.num_classes}",
        f"output-blob-names={PROBS}",
        "segmentation-threshold=0.0",
        "maintain-aspect-ratio=0",
        "scaling-filter=1",
        "process-mode=1",
        "gie-unique-id=1",
        "interval=0",
    ]
    return "\n".join(lines) + "\n"


def pipeline_text(config_name: str, meta: ModelMeta) -> str:
    (h, w), how = mask_size(meta)
    infer = f"nvinfer config-file-path={config_name} ! nvsegvisual width={w} height={h}"
    encode = "nvvideoconvert ! nvv4l2h264enc ! h264parse ! qtmux ! filesink location=segmented.mp4"
    mux = "nvstreammux name=m batch-size=1 width=1280 height=720"
    return (
        "# Run from this folder on a DeepStream 6.3+/7.x device (JetPack 6 or x86 + GPU).\n"
        f"# nvsegvisual {w}x{h} = the class map nvinfer outputs ({how}).\n"
        "# Video file -> coloured class map video (nvsegvisual draws nvinfer's class map):\n"
        f"gst-launch-1.0 -e uridecodebin uri=file://$PWD/input.mp4 ! m.sink_0 {mux} ! {infer} ! "
        f"{encode}\n"
        "# Jetson CSI camera -> screen:\n"
        "gst-launch-1.0 nvarguscamerasrc sensor-id=0 ! "
        "'video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1' ! m.sink_0 "
        f"{mux} live-source=1 ! {infer} ! nvvideoconvert ! nv3dsink\n"
    )


def write_deepstream_config(
    artifact: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    engine_path: str | None = None,
    batch_size: int = 1,
    force: bool = False,
    prebuilt_engine: bool = False,
) -> Path:
    """Write nvinfer config, Softmax ONNX (+ sidecar), labels and pipeline into `out_dir`;
    returns the config.

    ONNX route (default; FP32/FP16): nvinfer builds the engine from the Softmax ONNX and caches it
    at `engine_path` (relative to `out_dir`), default nvinfer's own name
    `<name>.deepstream.onnx_b<batch>_gpu0_<precision>.engine`. An INT8 ONNX is refused here.
    Engine route (`prebuilt_engine=True`; the one for INT8): no onnx-file; `model-engine-file`
    names `<name>.deepstream.engine`, which `scaseg-export build-engine
    <out_dir>/<name>.deepstream.onnx` writes on the device, and network-mode is its precision.
    """
    artifact = Path(artifact)
    if not artifact.is_file():
        raise FileNotFoundError(f"artifact {artifact} not found; build it with scaseg-export first")
    meta = read_meta(artifact)
    check_artifact(artifact, meta)
    if meta.precision == "int8" and not prebuilt_engine:
        raise int8_onnx_refusal(artifact.name)
    lo, hi = _batch_range(meta)
    if not lo <= batch_size <= hi:
        raise DeepStreamConfigError(
            f"batch size {batch_size} is outside what {artifact.name} accepts ({lo}..{hi}); "
            "re-export with a dynamic batch range that includes it"
        )
    name = re.sub(r"\.onnx$", "", artifact.name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_name = f"{name}.deepstream.onnx"
    if prebuilt_engine:
        engine = engine_path or engine_path_for(Path(onnx_name)).name
    else:
        engine = engine_path or f"{onnx_name}_b{batch_size}_gpu0_{meta.precision}.engine"
    config_name = f"config_infer_{re.sub(r'[^A-Za-z0-9_]', '_', name)}.txt"
    files = (config_name, onnx_name, f"{onnx_name}.json", "labels.txt", "pipeline.txt")
    for f in files:
        if (out / f).exists() and not force:
            raise FileExistsError(f"{out / f} already exists; pass force=True to replace it")
    config = nvinfer_config(
        meta, artifact.name, None if prebuilt_engine else onnx_name, engine, batch_size
    )  # warns before writing
    add_softmax(artifact, meta, out / onnx_name)
    atomic_write_text(out / "labels.txt", "\n".join(meta.class_names) + "\n")
    atomic_write_text(out / "pipeline.txt", pipeline_text(config_name, meta))
    return atomic_write_text(out / config_name, config)


def _batch_range(meta: ModelMeta) -> tuple[int, int]:
    first = meta.input.shape[0]
    if isinstance(first, int):
        return first, first
    if meta.input.profile:
        return int(meta.input.profile[0][0]), int(meta.input.profile[2][0])
    return 1, 1 << 16
