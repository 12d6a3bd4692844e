"""Atomic file writes: a temp file in the same folder, fsync, then rename over the final path.

A crash or SIGKILL at any point leaves either the old file or nothing at the final path, never a
half-written artifact. Temp names start with '.' and end in '.tmp' plus the real suffix (some
writers, like OpenCV's VideoWriter, choose the container from the extension).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """mkstemp creates 0600 files; final artifacts get the usual 0666 & ~umask instead."""
    return 0o666 & ~current_umask()


def _fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_writable_target(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing final path unless overwrite; refuse a folder there (a file never
    replaces one) and a missing or read-only parent folder."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; choose a file path for this output")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    folder = path.parent if str(path.parent) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise FileNotFoundError(f"{folder} is a file, not a folder; choose another output path")
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder {folder} does not exist; create it first")
    _probe_write(folder, f"output {path}", "choose another output path")
    return path


def check_writable_folder(folder: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse, before any work starts, an output folder that is a file or cannot be written.

    A folder that does not exist yet is judged by its nearest existing parent, where it will be
    created."""
    folder = Path(folder)
    nearest = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not nearest.is_dir():
        raise FileNotFoundError(
            f"{flag} {folder}: {nearest} is a file, not a folder; choose another {flag}"
        )
    _probe_write(nearest, f"{flag} {folder}", f"choose another {flag}")
    return folder


def _probe_write(folder: Path, what: str, fix: str) -> None:
    """Create and remove a probe file in `folder`; PermissionError saying `what` and `fix` if
    that fails. os.access is not enough: it says yes to root for folders root still cannot
    write (NFS with root_squash, FUSE mounts, /proc), and root is who runs most Jetson services."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".scaseg-write-probe.")
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise PermissionError(f"{what}: cannot write in {folder} ({reason}); {fix}") from err
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success fsync and rename it into place."""
    path = check_writable_target(path, overwrite)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, default_file_mode())
    try:
        yield tmp_path
        _fsync_file(tmp_path)
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_durably(path: str | os.PathLike) -> bool:
    """Remove `path` if it exists and sync its folder, so the removal lands before later renames."""
    path = Path(path)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    _fsync_dir(path.parent)
    return True


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite)
