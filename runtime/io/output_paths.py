"""The one rule for where scaseg writes: no output equals, contains or sits inside an input.

Every CLI lists what it reads (runtime/io/input_paths.py) and what it writes, and calls
`check_outputs` before any work starts. An output is one of:

    FILE      a file (--out, --jsonl, --json, an engine). Refused when it is an input or lies
              inside a scanned input folder.
    FOLDER    a folder scaseg fills and, with --force, clears of its own files (--labels-out,
              a Triton repository). Refused as a FILE is, and also when it holds an input or
              another output.
    FILES_IN  a folder scaseg writes files of known names into and never clears (--out of
              scaseg-export, --profile, --deepstream). Refused inside a scanned input folder, or
              when an input in it has a name scaseg writes there.

So a file output beside an input file is fine (scaseg-export writes m.fp32.onnx next to the
checkpoint; scaseg-run 'in/*.png' --out in/o.mp4), while a scanned folder (an image folder,
--calib-data, --val-data) takes no outputs at all. Paths are compared after os.path.realpath
(symlinks, '..') and, where they exist, by (st_dev, st_ino): hard links and case-insensitive
file systems. Two outputs may not share a path either.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass

from runtime.errors import UnsafePathError
from runtime.io.input_paths import InputPath, identity
from runtime.text import shown

FILE, FOLDER, FILES_IN = "file", "folder", "files in"


@dataclass(frozen=True)
class OutputPath:
    flag: str  # "--out", "--labels-out", ...
    path: str  # as given, for messages
    real: str
    ident: tuple[int, int] | None
    kind: str = FILE
    names: tuple[str, ...] = ()  # FILES_IN: fnmatch patterns of the names scaseg writes there


def output_file(path: str | os.PathLike, flag: str) -> OutputPath:
    return OutputPath(flag, os.fspath(path), os.path.realpath(path), identity(path))


def output_folder(path: str | os.PathLike, flag: str) -> OutputPath:
    return OutputPath(flag, os.fspath(path), os.path.realpath(path), identity(path), FOLDER)


def files_in(path: str | os.PathLike, names: Iterable[str], flag: str) -> OutputPath:
    real = os.path.realpath(path)
    return OutputPath(flag, os.fspath(path), real, identity(path), FILES_IN, tuple(names))


class _Ancestors:
    """(st_dev, st_ino) of a real path's existing folders, cached across one check."""

    def __init__(self) -> None:
        self._cache: dict[str, frozenset] = {}

    def __call__(self, real: str) -> frozenset:
        if real not in self._cache:
            chain, here = set(), real
            while True:
                ident = identity(here)
                if ident is not None:
                    chain.add(ident)
                parent = os.path.dirname(here)
                if parent == here:
                    break
                here = parent
            self._cache[real] = frozenset(chain)
        return self._cache[real]


def _inside(child: str, folder: str, folder_ident, ancestors: _Ancestors) -> bool:
    """`child` (a real path) is `folder` or lies somewhere below it."""
    if child == folder or child.startswith(folder.rstrip(os.sep) + os.sep):
        return True
    return folder_ident is not None and folder_ident in ancestors(child)


def _name_under(real: str, folder: str) -> str:
    """The first component of `real` below `folder` ('' when not below it by name)."""
    rel = os.path.relpath(real, folder)
    return "" if rel.startswith("..") else rel.split(os.sep)[0]


def _fix(folder: InputPath) -> str:
    return f"choose an output outside {shown(folder.path).rstrip('/')}/"


def check_outputs(inputs: Iterable[InputPath], outputs: Iterable[OutputPath]) -> None:
    """Raise UnsafePathError naming the first output that would equal, contain or sit inside
    an input (see the module docstring), or that shares its path with another output."""
    inputs, outputs = list(inputs), list(outputs)
    ancestors = _Ancestors()
    by_real = {i.real: i for i in inputs}
    by_ident = {i.ident: i for i in inputs if i.ident is not None}
    scanned = [i for i in inputs if i.scanned]
    # Input files grouped by folder: "does this folder hold an input" is asked once per folder.
    folders: dict[str, list[InputPath]] = {}
    for i in inputs:
        folders.setdefault(i.real if i.scanned else os.path.dirname(i.real), []).append(i)
    for out in outputs:
        _check_same(out, by_real, by_ident)
        for folder in scanned:
            if _inside(out.real, folder.real, folder.ident, ancestors):
                raise UnsafePathError(
                    f"{out.flag} {shown(out.path)} is inside the input folder "
                    f"{shown(folder.path)} ({folder.flag}), which scaseg reads; {_fix(folder)}"
                )
        if out.kind != FILE:
            _check_holds(out, folders, ancestors)
    _check_among(outputs, ancestors)


def _check_same(out: OutputPath, by_real: dict, by_ident: dict) -> None:
    hit = by_real.get(out.real) or (by_ident.get(out.ident) if out.ident else None)
    if hit is None:
        return
    if hit.scanned:
        raise UnsafePathError(
            f"{out.flag} {shown(out.path)} is the input folder {shown(hit.path)} "
            f"({hit.flag}), which scaseg reads; {_fix(hit)}"
        )
    raise UnsafePathError(
        f"{out.flag} {shown(out.path)} is the input {shown(hit.path)} ({hit.flag}); writing it "
        "would replace the input: choose another output path"
    )


def _check_holds(out: OutputPath, folders: dict, ancestors: _Ancestors) -> None:
    """A FOLDER may hold no input; FILES_IN no input under a name scaseg writes there."""
    for folder, held in folders.items():
        if not _inside(folder, out.real, out.ident, ancestors):
            continue
        for i in held:
            name = _name_under(i.real, out.real)
            if out.kind == FILES_IN and not any(fnmatch.fnmatch(name, p) for p in out.names):
                continue
            what = "a name scaseg writes there: " if out.kind == FILES_IN else ""
            raise UnsafePathError(
                f"{out.flag} {shown(out.path)} holds the input {shown(i.path)} ({i.flag}), "
                f"{what}writing there could replace it; choose a folder that holds no inputs, "
                "e.g. a new one"
            )


def _check_among(outputs: list[OutputPath], ancestors: _Ancestors) -> None:
    for n, a in enumerate(outputs):
        for b in outputs[n + 1 :]:
            if a.real == b.real or (a.ident is not None and a.ident == b.ident):
                if a.kind == b.kind == FILES_IN:
                    continue  # one folder, files of different names (--out and --deepstream)
                raise UnsafePathError(
                    f"{b.flag} {shown(b.path)} is also given as {a.flag}; give each output its "
                    "own path"
                )
            for outer, inner in ((a, b), (b, a)):
                if outer.kind == FILE or not _inside(
                    inner.real, outer.real, outer.ident, ancestors
                ):
                    continue
                name = _name_under(inner.real, outer.real)
                if outer.kind == FOLDER or any(fnmatch.fnmatch(name, p) for p in outer.names):
                    raise UnsafePathError(
                        f"{inner.flag} {shown(inner.path)} is inside the {outer.flag} folder "
                        f"{shown(outer.path)}, which scaseg fills; choose an output outside it"
                    )
