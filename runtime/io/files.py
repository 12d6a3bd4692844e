"""Reading a user's files and folders without being hung, looped or flooded by them.

- paths print through `runtime.text.shown`. A file name that is not UTF-8 (b"fr\\xe9me.png" on
  Linux) reaches Python as a str with surrogate escapes; printing it raises UnicodeEncodeError on
  a strict stream, so messages show such bytes as \\xe9 and control characters as \\n, \\x1b.
- `opencv_path(path, what, error)`: the str OpenCV may be given, or `error` saying to rename the
  file: OpenCV 5.1 (cv2.imread, cv2.VideoCapture) segfaults on a str holding surrogates.
- `read_bytes(path, key, what, error)`: a regular file's bytes, its size checked against a budget
  before reading; a FIFO, socket or device is never opened (open() on a FIFO blocks until a writer
  comes, so one FIFO in an image folder would hang the run).
- `list_files(folder)` and `glob_files(pattern)`: regular files (or links to one) under a folder
  or matching a pattern, in the order found. Every folder is visited once however many links lead
  to it, so a symlink cycle (`frames/loop -> ..`) cannot loop, and the entries looked at are
  bounded by the `folder_entries` budget. Entries that are not regular files are skipped and
  listed (`Listing.skipped`, `Listing.warning()`).
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runtime.budgets import budget, check
from runtime.text import shown

GLOB_CHARS = "*?["
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
SHOWN_SKIPPED = 3  # entries named in the "skipped" warning before "(+N more)"


def opencv_path(path: str | os.PathLike, what: str, error: type[Exception]) -> str:
    """`path` as the str OpenCV opens; `error` when its name is not valid UTF-8 (OpenCV would
    crash on it)."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise error(
            f"{what} {shown(path)}: the file name is not valid UTF-8, and OpenCV cannot open such "
            "a name; rename it (e.g. to ASCII letters and digits)"
        ) from err
    return text


def kind_of(mode: int) -> str:
    """What a stat mode that is not a regular file is, in words ("a FIFO (named pipe)")."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_bytes(path: str | os.PathLike, key: str, what: str, error: type[Exception]) -> bytes:
    """The bytes of the regular file `path`: `error` for anything else (FIFO, device, folder),
    BudgetError when its size is over budget `key`, checked before reading."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise error(f"{what} {shown(path)} is {kind_of(mode)}, not a regular file; give a file")
    limit = budget(key).limit
    # O_NONBLOCK: if the path was swapped for a FIFO since the stat, opening it cannot block.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    with open(os.open(path, flags), "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} {shown(path)} is {kind_of(st.st_mode)}, not a regular file")
        check(key, st.st_size, f"{what} {shown(path)}")
        data = f.read(st.st_size + 1)  # read(limit) would allocate the whole limit first
        if len(data) > st.st_size:  # it grew since: read on, within the budget
            data += f.read(limit + 1 - len(data))
    if len(data) > limit:
        check(key, len(data), f"{what} {shown(path)}")
    return data


@dataclass(frozen=True)
class Listing:
    files: tuple[Path, ...]  # regular files (or links to one), in the order found
    skipped: tuple[tuple[Path, str], ...]  # (entry, what it is) for entries that are not

    def warning(self) -> str | None:
        """One line naming the skipped entries, or None when nothing was skipped."""
        if not self.skipped:
            return None
        n = len(self.skipped)
        named = ", ".join(f"{shown(p)} ({kind})" for p, kind in self.skipped[:SHOWN_SKIPPED])
        more = f" (+{n - SHOWN_SKIPPED} more)" if n > SHOWN_SKIPPED else ""
        noun = (
            "entry that is not a regular file" if n == 1 else "entries that are not regular files"
        )
        return f"skipped {n} {noun}: {named}{more}"


def list_files(
    folder: str | os.PathLike,
    what: str,
    recursive: bool = False,
    keep: Callable[[str], bool] = lambda name: True,
) -> Listing:
    """Regular files in `folder` (and below it when `recursive`) whose name passes `keep`."""
    on = frozenset({0})  # one state: every folder is entered (if recursive), every file kept

    def step(_: frozenset, name: str, is_dir: bool) -> tuple[frozenset, bool]:
        if is_dir:
            return (on if recursive else frozenset()), False
        return on, keep(name)

    return _walk(Path(folder), on, step, what)


def glob_files(pattern: str, what: str) -> Listing:
    """Regular files matching `pattern`: `*`, `?` and `[...]` within one name, `**` for any
    number of folders (as glob.glob(recursive=True); names starting with "." only match a part
    that starts with ".")."""
    parts = [p for p in Path(pattern).parts if p]
    lead = 0
    while lead < len(parts) - 1 and not any(c in parts[lead] for c in GLOB_CHARS):
        lead += 1
    root = Path(*parts[:lead]) if lead else Path(".")
    rest = tuple(parts[lead:])
    if not root.is_dir():
        return Listing((), ())
    return _walk(root, _closure(rest, {0}), _pattern_steps(rest), what)


# A walk is driven by `step(states, name, is_dir) -> (states after name, match)`: the set of
# pattern positions reached after the entry's name, and whether a file of that name matches.
Step = Callable[[frozenset, str, bool], tuple[frozenset, bool]]


def _walk(root: Path, start: frozenset, step: Step, what: str) -> Listing:
    limit, entries = budget("folder_entries").limit, 0
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    seen: set[tuple[int, int, frozenset]] = set()
    pending = [(root, start)]
    while pending:
        folder, states = pending.pop()
        found = []
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino, states) in seen:
                continue  # reached again through a link: a cycle, or listed already
            seen.add((st.st_dev, st.st_ino, states))
            with os.scandir(folder) as scan:
                for entry in scan:
                    entries += 1
                    if entries > limit:
                        check("folder_entries", entries, f"listing {what}")
                    found.append(entry)
        except OSError:
            if folder == root:
                raise  # the folder the user named: its own error (missing, permission) says it
            skipped.append((folder, "a folder that cannot be read"))
            continue
        inner = []
        for entry in sorted(found, key=lambda e: e.name):
            _visit(entry, states, step, inner, files, skipped)
        pending.extend(reversed(inner))  # folders in name order, depth first
    return Listing(tuple(files), tuple(skipped))


def _visit(entry: os.DirEntry, states, step: Step, pending, files, skipped) -> None:
    try:
        mode = entry.stat().st_mode  # follows a link: a link to a file is a file
    except OSError:
        mode = None  # a broken link, or a link loop
    if mode is not None and stat.S_ISDIR(mode):
        inner, _ = step(states, entry.name, True)
        if inner:
            pending.append((Path(entry.path), inner))
        return
    _, match = step(states, entry.name, False)
    if not match:
        return
    if mode is not None and stat.S_ISREG(mode):
        files.append(Path(entry.path))
    else:
        skipped.append((Path(entry.path), "a broken link" if mode is None else kind_of(mode)))


def _pattern_steps(parts: tuple[str, ...]) -> Step:
    """A small automaton over the pattern's parts: state i = parts[:i] matched so far."""
    end = len(parts)

    def step(states: frozenset, name: str, is_dir: bool) -> tuple[frozenset, bool]:
        after = set()
        for i in states:
            if i == end:
                continue
            if parts[i] == "**":
                if not name.startswith("."):
                    after.add(i)  # `**` takes this name and may take more
            elif _name_matches(name, parts[i]):
                after.add(i + 1)
        closed = _closure(parts, after)
        return (frozenset(s for s in closed if s < end) if is_dir else closed), end in closed

    return step


def _closure(parts: tuple[str, ...], states) -> frozenset:
    """`states` plus the positions reached by letting each `**` match no folder at all."""
    out = set(states)
    for i in states:
        while i < len(parts) and parts[i] == "**":
            i += 1
            out.add(i)
    return frozenset(out)


def _name_matches(name: str, part: str) -> bool:
    if name.startswith(".") and not part.startswith("."):
        return False  # as glob: `*` does not match hidden names
    return fnmatch.fnmatchcase(name, part)


def list_entries(folder: str | os.PathLike, what: str) -> list[tuple[str, bool]]:
    """(name, is a folder) of each entry of `folder`, in name order, within `folder_entries`."""
    limit, found = budget("folder_entries").limit, []
    with os.scandir(folder) as scan:
        for entry in scan:
            if len(found) >= limit:
                check("folder_entries", len(found) + 1, f"listing {what}")
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            found.append((entry.name, is_dir))
    return sorted(found)
