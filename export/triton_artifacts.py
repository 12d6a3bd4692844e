"""The artifacts a Triton repository serves: loaded with their sidecars, checked as a set.

At most one ONNX (one Python-backend model serves it); engines for several GPUs share one native
model only when their inputs and outputs agree, and each records its compute capability so Triton
can pick its plan per GPU (cc_model_filenames).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from export.triton_config import TritonConfigError
from runtime.backends import backend_kind
from runtime.meta import ModelMeta, read_meta


@dataclass(frozen=True)
class ServedArtifact:
    path: Path
    meta: ModelMeta
    kind: str  # onnxruntime | tensorrt


def load_artifacts(artifacts: Sequence[str | os.PathLike]) -> list[ServedArtifact]:
    if not artifacts:
        raise TritonConfigError("no artifacts given; pass the .onnx or .engine files to serve")
    loaded = []
    for a in artifacts:
        path = Path(a)
        if not path.is_file():
            raise FileNotFoundError(f"artifact {path} not found; build it with scaseg-export first")
        loaded.append(ServedArtifact(path, read_meta(path), backend_kind(path)))
    onnx = [a for a in loaded if a.kind == "onnxruntime"]
    if len(onnx) > 1:
        names = ", ".join(a.path.name for a in onnx)
        raise TritonConfigError(
            f"several ONNX artifacts given ({names}); write one repository model per ONNX "
            "(call again with --model-name) so each keeps its own config"
        )
    return loaded


def engine_files(engines: list[ServedArtifact]) -> tuple[dict[str, Path], dict[str, str]]:
    """{file name in the version folder: source} and cc_model_filenames for the engines."""
    if len(engines) == 1:
        return {"model.plan": engines[0].path}, {}
    files, ccs = {}, {}
    for e in engines:
        cc = str((e.meta.engine or {}).get("compute_capability") or "")
        if not re.fullmatch(r"\d+\.\d+", cc):
            raise TritonConfigError(
                f"{e.path.name}: its sidecar records no compute capability ({cc!r}), so Triton "
                "cannot pick it per GPU; rebuild it with scaseg-export on the target GPU"
            )
        if cc in ccs:
            raise TritonConfigError(
                f"two engines for compute capability {cc} ({ccs[cc]} and {e.path.name}); "
                "pass one engine per GPU type"
            )
        ccs[cc] = e.path.name
        files[f"model_sm{cc.replace('.', '')}.plan"] = e.path
    first = engines[0].meta
    for e in engines[1:]:
        if (e.meta.input, e.meta.output) != (first.input, first.output):
            raise TritonConfigError(
                f"{e.path.name} and {engines[0].path.name} have different inputs/outputs "
                "(shapes or profiles), but one Triton model serves them all; build every engine "
                "from the same ONNX with the same profile"
            )
    return files, {cc: f"model_sm{cc.replace('.', '')}.plan" for cc in ccs}


def default_model_name(artifact: Path, meta: ModelMeta) -> str:
    """`scaseg_t.int8.onnx` -> `scaseg_t_int8`."""
    stem = artifact.name.split(".")[0] or "scaseg"
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{stem}_{meta.precision}")
