"""Artifact names, the existence check (--force), atomic placement and sidecars.

Names: `<out>/<name>.<precision>.onnx` and `<name>.<precision>.engine`, each with `<artifact>.json`
(runtime.meta). A target is checked before any work starts, so a refused export leaves nothing
behind; files are moved into place atomically (temp file in the same folder, fsync, rename).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

from runtime.atomic import (
    atomic_path,
    check_writable_folder,
    check_writable_target,
    remove_durably,
)
from runtime.errors import UserInputError
from runtime.meta import ModelMeta, sidecar_path, write_meta

# A plain name: an artifact's file stem, or a Triton model (a folder and a URL path segment).
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_name(name: str) -> str:
    if not PLAIN_NAME.match(name) or name.endswith((".onnx", ".engine")):
        raise UserInputError(
            f"--name {name!r} is not a plain file stem; use letters, digits, '_', '-', '.' "
            "(the precision and extension are added: NAME.fp16.onnx)"
        )
    return name


def onnx_path(out: Path, name: str, precision: str) -> Path:
    return out / f"{name}.{precision}.onnx"


def engine_path_for(onnx_file: Path) -> Path:
    return onnx_file.with_suffix(".engine")


def preflight(targets: list[Path], force: bool) -> None:
    """Refuse existing artifacts (or their sidecars) without --force, and unwritable folders."""
    existing = [p for t in targets for p in (t, sidecar_path(t)) if p.exists()]
    if existing and not force:
        shown = ", ".join(str(p) for p in existing[:4])
        raise FileExistsError(f"{shown} already exist(s); pass force=True to replace them")
    for folder in dict.fromkeys(t.parent for t in targets):
        check_writable_folder(folder, "--out")


def place(staged: Path, target: Path, meta: ModelMeta, force: bool) -> Path:
    """Copy a staged file to `target` atomically, then write its sidecar (also atomically).

    The sidecar is the commit mark: the runtime refuses an artifact without one. An old sidecar
    (--force) is removed once the copy is complete and before the rename, so a kill at any point
    leaves the old pair, an artifact without sidecar, or the new pair; never the new artifact
    described by the old sidecar.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    check_writable_target(target, overwrite=force)
    with atomic_path(target, overwrite=force) as tmp:
        shutil.copyfile(staged, tmp)
        remove_durably(sidecar_path(target))
    try:
        write_meta(target, meta)
    except BaseException:
        target.unlink(missing_ok=True)  # never an artifact without its sidecar
        raise
    return target


def with_artifact_hash(meta: ModelMeta, artifact_sha256: str) -> ModelMeta:
    return replace(meta, hashes={**meta.hashes, "artifact": artifact_sha256})
