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
from runtime.errors import UserInputError
from runtime.preprocess import Preprocess

SCHEMA_VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8")
OUTPUT_KINDS = ("logits", "labels")
DTYPES = ("float32", "float16", "uint8", "int32", "int64")


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
        profile = data.get("profile")
        return cls(
            name=str(data["name"]),
            dtype=str(data["dtype"]),
            layout=str(data["layout"]),
            shape=tuple(data["shape"]),
            profile=tuple(tuple(s) for s in profile) if profile else None,
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

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise MetaError(f"precision {self.precision!r} is not one of {PRECISIONS}")
        if self.output_kind not in OUTPUT_KINDS:
            raise MetaError(f"output_kind {self.output_kind!r} is not one of {OUTPUT_KINDS}")
        if len(self.palette_rgb) < len(self.class_names):
            raise MetaError(
                f"palette has {len(self.palette_rgb)} colours for {len(self.class_names)} classes"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "sidecar") -> ModelMeta:
        if not isinstance(data, dict):
            raise MetaError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise MetaError(
                f"{source}: schema_version {version!r} is not supported by this runtime "
                f"(it reads version {SCHEMA_VERSION}); re-export the model with this scaseg version"
            )
        try:
            return cls(
                variant=str(data["variant"]),
                precision=str(data["precision"]),
                class_names=tuple(str(n) for n in data["class_names"]),
                palette_rgb=tuple(tuple(int(v) for v in c) for c in data["palette_rgb"]),
                input=TensorSpec.from_dict(data["input"]),
                output=TensorSpec.from_dict(data["output"]),
                output_kind=str(data["output_kind"]),
                output_stride=int(data["output_stride"]),
                preprocess=Preprocess.from_dict(data["preprocess"]),
                fused_preprocess=bool(data.get("fused_preprocess", False)),
                fused_argmax=bool(data.get("fused_argmax", False)),
                hashes=dict(data.get("hashes") or {}),
                calibration=data.get("calibration"),
                engine=data.get("engine"),
                fp32_nodes=tuple(data.get("fp32_nodes") or ()),
                extra=dict(data.get("extra") or {}),
            )
        except MetaError as err:
            raise MetaError(f"{source}: {err}") from err
        except (KeyError, TypeError, ValueError) as err:
            raise MetaError(
                f"{source}: invalid or missing field ({err!r}); re-export the model"
            ) from err


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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MetaError(f"{path} is not valid JSON ({err}); re-export the model") from err
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
) -> None:
    """Refuse a sidecar whose input/output names or input shape are not the graph's (what a
    backend read from the model); `input_shape` is the named input's dims (None: names only),
    with anything but an int for a dynamic dim."""
    name = Path(artifact).name
    if meta.input.name not in inputs or meta.output.name not in outputs:
        raise MetaError(
            f"{name}: sidecar names input {meta.input.name!r} and output {meta.output.name!r} "
            f"but the graph has inputs {inputs} and outputs {outputs}; the sidecar belongs to "
            "another model: re-export both together"
        )
    if input_shape is None:
        return
    graph, sidecar = list(input_shape), list(meta.input.shape)
    if len(graph) != len(sidecar) or any(
        isinstance(g, int) and isinstance(m, int) and g != m for g, m in zip(graph, sidecar)
    ):
        raise MetaError(
            f"{name}: sidecar input shape {sidecar} does not match the graph's {graph}; the "
            "sidecar belongs to another model: re-export both together"
        )
