"""The artifact sidecar: `model.int8.onnx.json` next to every model file the toolkit writes.

The runtime reads only an artifact and its sidecar. The sidecar is parsed as data (JSON, checked
field by field against this schema); an unknown schema version is refused, not guessed at.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runtime.atomic import atomic_write_text
from runtime.budgets import budget, check
from runtime.errors import UserInputError
from runtime.jsonfile import read_json
from runtime.meta_fields import FIX, FieldError, Fields
from runtime.preprocess import (
    COLOR_ORDERS,
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    RESIZE_MODES,
    Preprocess,
)
from runtime.slide import INFERENCE_MODES, Inference
from runtime.text import printable

SCHEMA_VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8")
OUTPUT_KINDS = ("logits", "labels")
DTYPES = ("float32", "float16", "uint8", "int32", "int64")
LAYOUTS = ("NCHW", "NHWC", "NHW")


class MetaError(UserInputError):
    """A missing, unreadable or invalid sidecar."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output. Dynamic dims are strings ("batch", "height", "width")."""

    name: str
    dtype: str
    layout: str  # NCHW, NHWC (fused uint8 input), NHW (label map)
    shape: tuple  # e.g. (1, 3, 512, 512) or ("batch", 3, "height", "width")
    # For dynamic shapes: concrete (min, opt, max) shapes, TensorRT optimization-profile style.
    profile: tuple | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise MetaError(f"tensor {self.name!r}: dtype {self.dtype!r} is not one of {DTYPES}")

    @property
    def dynamic(self) -> bool:
        return any(isinstance(d, str) for d in self.shape)

    @classmethod
    def from_dict(cls, data: dict) -> TensorSpec:
        return cls.from_fields(Fields(data))

    @classmethod
    def from_fields(cls, f: Fields) -> TensorSpec:
        return cls(
            name=f.text("name"),
            dtype=f.choice("dtype", DTYPES),
            layout=f.choice("layout", LAYOUTS),
            shape=f.shape("shape"),
            profile=f.profile("profile"),
        )


@dataclass(frozen=True)
class ModelMeta:
    variant: str
    precision: str  # the precision actually built
    class_names: tuple[str, ...]
    palette_rgb: tuple[tuple[int, int, int], ...]
    input: TensorSpec
    output: TensorSpec
    output_kind: str  # logits (K,H/stride,W/stride) or labels (fused argmax, at input size)
    output_stride: int
    preprocess: Preprocess
    fused_preprocess: bool = False  # input is (N,H,W,3) uint8 BGR, normalised inside the graph
    fused_argmax: bool = False  # output is a label map at input size
    hashes: dict = field(default_factory=dict)  # sha256 of source onnx, checkpoint, calib data
    calibration: dict | None = None  # method, samples, library, data description
    engine: dict | None = None  # TensorRT/CUDA versions, GPU, compute capability, JetPack, DLA
    fp32_nodes: tuple[str, ...] = ()  # nodes kept in float32 in an FP16 graph
    extra: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    # whole (one input per frame) or slide (crop-sized windows, one batched call per frame)
    inference: Inference = field(default_factory=Inference)
    # Estimated from the graph at export (runtime/memory_estimate.py): peak_activation_mb at the
    # input shape the export was made for (and max_peak_activation_mb at a dynamic profile's max)
    memory: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise MetaError(f"precision {self.precision!r} is not one of {PRECISIONS}")
        if self.output_kind not in OUTPUT_KINDS:
            raise MetaError(f"output_kind {self.output_kind!r} is not one of {OUTPUT_KINDS}")
        if len(self.palette_rgb) < len(self.class_names):
            raise MetaError(
                f"palette_rgb has {len(self.palette_rgb)} colours for {len(self.class_names)} "
                f"class_names; give one colour per class ({FIX})"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        data["inference"] = self.inference.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "sidecar") -> ModelMeta:
        """A sidecar's parsed JSON -> ModelMeta; MetaError naming the field for any value the
        runtime cannot use, BudgetError for counts and sizes over the reader budgets."""
        if not isinstance(data, dict):
            raise MetaError(f"{source}: expected a JSON object, got {type(data).__name__}; {FIX}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise MetaError(
                f"{source}: schema_version {version!r} is not supported by this runtime "
                f"(it reads version {SCHEMA_VERSION}); re-export the model with this scaseg version"
            )
        try:
            meta = _from_fields(Fields(data), source)
        except (FieldError, MetaError) as err:
            raise MetaError(f"{source}: {err}") from err
        _check_consistency(meta, source)
        return meta


def _from_fields(f: Fields, source: str) -> ModelMeta:
    return ModelMeta(
        variant=f.text("variant"),
        precision=f.choice("precision", PRECISIONS),
        class_names=f.names("class_names", "class names"),
        palette_rgb=f.palette("palette_rgb"),
        input=TensorSpec.from_fields(f.sub("input")),
        output=TensorSpec.from_fields(f.sub("output")),
        output_kind=f.choice("output_kind", OUTPUT_KINDS),
        output_stride=f.whole("output_stride", 1, budget("input_side").limit),
        preprocess=_preprocess(f.sub("preprocess"), source),
        fused_preprocess=f.flag("fused_preprocess", False),
        fused_argmax=f.flag("fused_argmax", False),
        hashes=f.hashes("hashes"),
        calibration=f.mapping("calibration", None),
        engine=f.mapping("engine", None),
        fp32_nodes=f.names("fp32_nodes", "node names", ()),
        extra=f.mapping("extra", {}) or {},
        inference=_inference(f),
        memory=f.mapping("memory", {}) or {},
    )


def _preprocess(f: Fields, source: str) -> Preprocess:
    height, width = f.whole("height", 1, 1 << 31), f.whole("width", 1, 1 << 31)
    check("input_side", max(height, width), f"{source}: preprocess size {height}x{width}")
    resize = f.choice("resize", RESIZE_MODES, "stretch")
    scale = None
    if resize == "keep_ratio":
        scale = f.pair("scale", 1, budget("input_side").limit)
    elif f.get("scale", None) is not None:
        raise f.fail("scale", f.get("scale"), "null or absent with resize 'stretch'")
    return Preprocess(
        height=height,
        width=width,
        color=f.choice("color", COLOR_ORDERS, "rgb"),
        mean=f.numbers("mean", 3, list(IMAGENET_MEAN_RGB)),
        std=f.numbers("std", 3, list(IMAGENET_STD_RGB), positive=True),
        resize=resize,
        scale=scale,
    )


def _inference(f: Fields) -> Inference:
    """The optional `inference` section; absent (sidecars before slide inference) is whole."""
    if f.get("inference", None) is None:
        return Inference()
    sub = f.sub("inference")
    mode = sub.choice("mode", INFERENCE_MODES, "whole")
    if mode == "whole":
        for key in ("crop", "stride"):
            if sub.get(key, None) is not None:
                raise sub.fail(key, sub.get(key), "nothing with mode 'whole' (it is for 'slide')")
        return Inference()
    high = budget("input_side").limit
    crop, stride = sub.pair("crop", 1, high), sub.pair("stride", 1, high)
    try:
        return Inference("slide", crop, stride)
    except UserInputError as err:
        raise FieldError(f"inference: {err}; {FIX}") from err


_RANKS = {"NCHW": 4, "NHWC": 4, "NHW": 3}
_HW_AXES = {"NCHW": (2, 3), "NHWC": (1, 2), "NHW": (1, 2)}


def _check_consistency(meta: ModelMeta, source: str) -> None:
    """Fields that must agree with each other: shapes with their layouts, the preprocessing
    size with the input shape, the class count with the logits' channels."""
    for name, spec in (("input", meta.input), ("output", meta.output)):
        if len(spec.shape) != _RANKS[spec.layout]:
            raise MetaError(
                f"{source}: {name}.shape {list(spec.shape)} has {len(spec.shape)} dims but "
                f"layout {spec.layout} needs {_RANKS[spec.layout]}; {FIX}"
            )
    pp, shape = meta.preprocess, meta.input.shape
    dims = [shape[i] for i in _HW_AXES[meta.input.layout]]
    if any(isinstance(d, int) and d != want for d, want in zip(dims, (pp.height, pp.width))):
        raise MetaError(
            f"{source}: preprocess size {pp.height}x{pp.width} does not match the sidecar input "
            f"shape {list(shape)}; {FIX}"
        )
    channels = meta.output.shape[1] if meta.output.layout == "NCHW" else None
    if meta.output_kind == "logits" and isinstance(channels, int) and channels != meta.num_classes:
        raise MetaError(
            f"{source}: class_names lists {meta.num_classes} classes but the sidecar output shape "
            f"{list(meta.output.shape)} has {channels} channels; {FIX}"
        )
    check_inference(meta, source)


def check_inference(meta: ModelMeta, source: str = "sidecar") -> None:
    """The inference mode against the graph: slide needs logits (windows are averaged), the
    crop as the input size and a dynamic batch dim (a frame's windows are one call); keep-ratio
    frames in whole mode need a dynamic height and width (their size follows the frame's)."""
    inf, pp, spec = meta.inference, meta.preprocess, meta.input
    hw = [spec.shape[i] for i in _HW_AXES[spec.layout]]
    if not inf.slide:
        if pp.resize == "keep_ratio" and any(isinstance(d, int) for d in hw):
            raise MetaError(
                f"{source}: preprocess resize 'keep_ratio' in whole inference needs a graph with "
                f"dynamic height and width (frames keep their aspect ratio), but the input shape is "
                f"{list(spec.shape)}; re-export with --dynamic, or use inference mode 'slide'"
            )
        return
    if meta.output_kind != "logits":
        raise MetaError(
            f"{source}: slide inference averages the windows' logits, but this model outputs "
            f"{meta.output_kind} (fused argmax); re-export it without --fuse-argmax"
        )
    if inf.crop != (pp.height, pp.width):
        raise MetaError(
            f"{source}: inference crop {inf.crop[0]}x{inf.crop[1]} is not the model input size "
            f"{pp.height}x{pp.width} (preprocess height/width); the graph runs crop-sized "
            f"windows, so they must match; {FIX}"
        )
    if not isinstance(spec.shape[0], str):
        raise MetaError(
            f"{source}: slide inference runs all windows of a frame as one batch, but the input "
            f"shape {list(spec.shape)} fixes the batch to {spec.shape[0]}; re-export with a "
            "dynamic batch dim"
        )
    _check_crop_in_profile(meta, source)


def _check_crop_in_profile(meta: ModelMeta, source: str) -> None:
    spec, crop = meta.input, meta.inference.crop
    if not spec.profile:
        return
    axes = _HW_AXES[spec.layout]
    low, high = spec.profile[0], spec.profile[2]
    if any(not low[a] <= c <= high[a] for a, c in zip(axes, crop)):
        raise MetaError(
            f"{source}: inference crop {crop[0]}x{crop[1]} is outside the input profile "
            f"{list(low)}..{list(high)}; re-export with a profile that covers the crop"
        )


def sidecar_path(artifact: str | os.PathLike) -> Path:
    return Path(f"{artifact}.json")


def read_meta(artifact: str | os.PathLike) -> ModelMeta:
    """Read and validate the sidecar of an artifact (`<artifact>.json`)."""
    path = sidecar_path(artifact)
    if not path.is_file():
        raise MetaError(
            f"{artifact} has no sidecar ({path.name} not found); the runtime needs it to know the "
            "input, classes and preprocessing: re-export with scaseg-export, or copy the .json along"
        )
    data = read_json(path, MetaError, FIX)
    return ModelMeta.from_dict(data, source=str(path))


def write_meta(artifact: str | os.PathLike, meta: ModelMeta) -> Path:
    """Write the sidecar atomically next to the artifact."""
    text = json.dumps(meta.to_dict(), indent=2, sort_keys=False)
    return atomic_write_text(sidecar_path(artifact), text + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_artifact_hash(artifact: str | os.PathLike, meta: ModelMeta) -> None:
    """Refuse an artifact whose bytes are not the ones its sidecar was written for.

    Sidecars written by scaseg-export record the artifact's sha256. A sidecar left beside a file
    that was replaced (copied over by hand, re-saved by another tool, an interrupted copy)
    describes another model: inputs, classes and preprocessing may all be wrong. Sidecars without
    the hash (written by hand or by older versions) are accepted as they are.
    """
    recorded = meta.hashes.get("artifact")
    if not recorded:
        return
    actual = sha256_file(artifact)
    if actual != recorded:
        raise MetaError(
            f"{artifact} does not match its sidecar {sidecar_path(artifact).name} (sha256 "
            f"{actual[:12]}… vs recorded {recorded[:12]}…): the file was replaced after export; "
            "re-export the model with scaseg-export, or copy the artifact and its .json together"
        )


def check_graph_io(
    artifact: str | os.PathLike,
    meta: ModelMeta,
    inputs: list[str],
    outputs: list[str],
    input_shape=None,
    output_shape=None,
) -> None:
    """Refuse a sidecar whose input/output names or shapes are not the graph's (what a backend
    read from the model); `input_shape`/`output_shape` are the named tensors' dims (None: names
    only), with anything but an int for a dynamic dim. The output's channels are the classes."""
    name = Path(artifact).name
    if meta.input.name not in inputs or meta.output.name not in outputs:
        raise MetaError(
            f"{name}: sidecar names input {_quoted(meta.input.name)} and output "
            f"{_quoted(meta.output.name)} but the graph has inputs {_quoted(inputs)} and outputs "
            f"{_quoted(outputs)}; the sidecar belongs to another model: re-export both together"
        )
    for what, graph, spec in (
        ("input", input_shape, meta.input),
        ("output", output_shape, meta.output),
    ):
        if graph is None:
            continue
        graph, sidecar = list(graph), list(spec.shape)
        if len(graph) != len(sidecar) or any(
            isinstance(g, int) and isinstance(m, int) and g != m for g, m in zip(graph, sidecar)
        ):
            raise MetaError(
                f"{name}: sidecar {what} shape {sidecar} does not match the graph's "
                f"{_quoted(graph)}; the sidecar belongs to another model: re-export both together"
            )


def _quoted(value: object) -> str:
    """repr of names read from a graph, control characters escaped and bounded in length."""
    return printable(repr(value), limit=120, markup=False)
