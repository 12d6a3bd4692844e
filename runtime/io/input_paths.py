"""What a command reads, as resolved paths: the inputs runtime/io/output_paths.py protects.

    model_inputs("m.onnx")         the model, its sidecar and its external-data files
    file_inputs(path)              one file (a checkpoint, a class file), if it exists
    folder_inputs(path)            a folder whose files are read (--val-data, --val-masks)
    source_inputs(spec)            a source as typed: a file, a folder (scanned), every file a
                                   glob matches (and, where the glob reaches into folders, its
                                   base folder as scanned), a .txt list and every file it lists

Specs that name no file (a camera index, a URL, a GStreamer pipeline, 'generated') read nothing
that could be overwritten and give no inputs. Globs and lists are expanded within the
folder_entries budget, the list file's size within list_bytes.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from runtime.budgets import check
from runtime.errors import UserInputError
from runtime.io.files import glob_files

GLOB_CHARS = "*?["


@dataclass(frozen=True)
class InputPath:
    """One thing a command reads. `scanned`: a folder whose files are read, so nothing may be
    written anywhere inside it (the next run would read it, or it would replace an input)."""

    flag: str  # how the user named it: "SOURCE", "--model", "--calib-data", ...
    path: str  # as given, for messages
    real: str  # os.path.realpath: symlinks and '..' resolved
    ident: tuple[int, int] | None  # (st_dev, st_ino) where it exists: hard links, case folding
    scanned: bool = False


def identity(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return None
    return st.st_dev, st.st_ino


def input_path(path: str | os.PathLike, flag: str, scanned: bool = False) -> InputPath:
    return InputPath(flag, os.fspath(path), os.path.realpath(path), identity(path), scanned)


def file_inputs(path: str | os.PathLike | None, flag: str) -> list[InputPath]:
    """`path` if it is an existing file (a checkpoint, a class file), else nothing."""
    if path is None or not os.path.isfile(path):
        return []
    return [input_path(path, flag)]


def folder_inputs(path: str | os.PathLike | None, flag: str) -> list[InputPath]:
    """`path` as a scanned folder if it exists (a file there is an input file)."""
    if path is None or not os.path.exists(path):
        return []
    return [input_path(path, flag, scanned=os.path.isdir(path))]


def model_inputs(model: str | os.PathLike, flag: str = "--model") -> list[InputPath]:
    """The model file, its sidecar and, for ONNX, the external-data files it names."""
    from runtime.meta import sidecar_path
    from runtime.onnx_guard import check_external_data

    model = Path(model)
    found = file_inputs(model, flag) + file_inputs(sidecar_path(model), f"{flag} sidecar")
    if model.suffix.lower() == ".onnx" and model.is_file():
        try:
            names = check_external_data(model)
        except UserInputError:  # a model the guard refuses: its loader says why, before any write
            names = []
        found += [input_path(model.parent / name, f"{flag} data") for name in names]
    return found


def source_inputs(spec: str | os.PathLike, flag: str, lists: bool = False) -> list[InputPath]:
    """What a source spec reads (see the module docstring); `lists`: a .txt file lists images
    (calibration data), else it is read as it stands."""
    text = os.fspath(spec)
    if os.path.isdir(text):
        return [input_path(text, flag, scanned=True)]
    if os.path.isfile(text):
        if lists and text.lower().endswith(".txt"):
            return [input_path(text, flag), *_listed(Path(text), flag)]
        return [input_path(text, flag)]
    if any(ch in text for ch in GLOB_CHARS):
        return _globbed(text, flag)
    return [input_path(text, flag)] if os.path.lexists(text) else []


def _globbed(pattern: str, flag: str) -> list[InputPath]:
    """Every file the pattern matches (recursive '**' too: the widest reading of the pattern),
    plus its base folder as scanned where the pattern reaches into folders."""
    # The readers' own walk: each real folder once (no symlink cycle), entries within budget.
    listing = glob_files(pattern, f"{flag} {pattern!r}")
    found = [input_path(p, flag) for p in listing.files]
    head, _ = os.path.split(pattern)
    if any(ch in head for ch in GLOB_CHARS):
        parts = Path(head).parts
        base = Path(*itertools.takewhile(lambda p: not any(c in p for c in GLOB_CHARS), parts))
        found += folder_inputs(base if base.parts else Path("."), flag)
    return found


def _listed(path: Path, flag: str) -> list[InputPath]:
    """The files a list names, one a line, relative to the list's folder (as calibration reads
    them); entries that do not exist are left to the reader to refuse."""
    size = check("list_bytes", path.stat().st_size, f"{flag} {path}: a list of images")
    with open(path, "rb") as f:
        lines = f.read(size).decode("utf-8", "surrogateescape").splitlines()
    entries = [e.strip() for e in lines if e.strip() and not e.strip().startswith("#")]
    check("folder_entries", len(entries), f"{flag} {path}: the images it lists")
    return [input_path(path.parent / e, flag) for e in entries if os.path.isfile(path.parent / e)]
