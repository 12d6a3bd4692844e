"""Folders scaseg fills (label PNGs, Triton models): a marker says scaseg made them.

A folder scaseg creates gets a small `.scaseg-output` file naming what wrote it. `--force` may
replace the files scaseg writes in a folder only where that marker is: an existing folder that
holds anything without it (a user's folder given by mistake, the folder of the inputs) is refused
even with --force, and even a marked folder keeps every file scaseg does not write there
(unknown files, subfolders).
"""

from __future__ import annotations

import os
from pathlib import Path

from runtime.atomic import atomic_write_text
from runtime.errors import UnsafePathError
from runtime.text import shown

MARKER = ".scaseg-output"
SHOWN = 3  # entries named in a refusal before "(+N more)"


def write_marker(folder: Path, what: str) -> Path:
    """Mark `folder` as filled by scaseg (`what`: the command and option, for whoever looks)."""
    text = f"written by {what}; scaseg --force replaces its own files here and nothing else\n"
    return atomic_write_text(folder / MARKER, text)


def is_marked(folder: Path) -> bool:
    marker = Path(folder) / MARKER
    return marker.is_file() and not marker.is_symlink()


def check_refillable(folder: Path, overwrite: bool, option: str = "overwrite") -> None:
    """Refuse an existing `folder` that scaseg may not fill: one that holds entries but no
    marker (UnsafePathError, whatever `overwrite`), or any existing one without `overwrite`
    (FileExistsError; `option` is the argument's name in the caller's API). A missing folder is
    fine."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    if not is_marked(folder):
        with os.scandir(folder) as entries:
            names = [e.name for _, e in zip(range(SHOWN + 1), entries)]
        if names:
            listed = ", ".join(shown(n) for n in names[:SHOWN])
            more = " and more" if len(names) > SHOWN else ""
            raise UnsafePathError(
                f"{shown(folder)} already holds files scaseg did not write ({listed}{more}) and "
                f"no {MARKER} marker, so even {option}=True leaves it alone; choose a new or "
                "empty folder, or remove those files yourself"
            )
    if not overwrite:
        raise FileExistsError(
            f"{shown(folder)} already exists; pass {option}=True to replace the files scaseg "
            "wrote there"
        )


def own_files(folder: Path, suffix: str) -> list[Path]:
    """Regular files named `*<suffix>` directly in a marked `folder` (what scaseg writes there);
    nothing in an unmarked one, never subfolders or symlinks."""
    folder = Path(folder)
    if not is_marked(folder):
        return []
    with os.scandir(folder) as entries:
        return [
            Path(e.path)
            for e in entries
            if e.name.endswith(suffix) and e.is_file(follow_symlinks=False)
        ]
