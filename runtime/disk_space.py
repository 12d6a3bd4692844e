"""Free space on the output disks: stop a run while its outputs can still be finalised.

A device that records for days fills its SD card sooner or later. When it does, OpenCV's video
writer drops frames without an error and cannot write the MP4 index at close (the whole file is
unplayable), and a JSON line or PNG is cut in half. So the pipeline checks the free space of
every output folder's filesystem as it writes (`SpaceGuard`) and ends the run while at least
`--min-free-mb` is left: the outputs are finalised with every frame written so far, and the run
ends with OutputSpaceError (scaseg-run exit code 1). A disk that fills past the margin anyway
(another process writing) raises ENOSPC in a sink; the pipeline turns that into the same error.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from runtime.errors import RunError, UserInputError

DEFAULT_MIN_FREE_MB = 64.0
MIB = 1024 * 1024
# errno values that mean "the output device is full", not "this path is wrong".
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class OutputSpaceError(RunError):
    """The output disk ran out of space, or fell below the free-space margin.

    Like runtime.io.sources.SourceLostError, runtime.pipeline finalises the outputs first (every
    frame written so far) and then raises it with `summary` set to the run's RunSummary.
    """

    summary: object | None = None


def free_bytes(folder: str | os.PathLike) -> int:
    """Bytes an unprivileged writer may still use on `folder`'s filesystem."""
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


def output_folders(paths: Iterable[Path]) -> list[Path]:
    """The folder each output lands in (its parent; for a PNG folder output, also its parent)."""
    folders = {Path(p).parent if str(Path(p).parent) else Path(".") for p in paths}
    return sorted(folders)


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in FULL_ERRNOS


def _mib(n: float) -> str:
    return f"{n / MIB:.1f} MiB"


class SpaceGuard:
    """Raises OutputSpaceError from `check()` once an output filesystem has less than
    `min_free_bytes` free. Each filesystem is looked at once per `interval_s` at most; the
    default looks before every frame (a statvfs call costs about 0.5 us, and a fast model
    writes many MiB in a fraction of a second).

    `free` replaces runtime.disk_space.free_bytes in tests; `clock` replaces time.monotonic.
    """

    def __init__(
        self,
        folders: Iterable[Path],
        min_free_bytes: int,
        interval_s: float = 0.0,
        free: Callable[[Path], int] = free_bytes,
        clock: Callable[[], float] = time.monotonic,
    ):
        if min_free_bytes < 0:
            raise UserInputError(
                f"--min-free-mb must be >= 0 (0 turns the check off), got {min_free_bytes / MIB:g}"
            )
        self.min_free_bytes = int(min_free_bytes)
        self.interval_s = interval_s
        self._free, self._clock = free, clock
        self._folders = self._one_per_filesystem(folders)
        self._next_check = float("-inf")

    @staticmethod
    def _one_per_filesystem(folders: Iterable[Path]) -> list[Path]:
        seen: dict[int, Path] = {}
        for folder in folders:
            try:
                device = os.stat(folder).st_dev
            except OSError:
                continue  # not there yet: its parent's check in the CLI covers it
            seen.setdefault(device, Path(folder))
        return list(seen.values())

    def low_folder(self) -> tuple[Path, int] | None:
        """(folder, free bytes) of the first output filesystem below the margin, else None."""
        for folder in self._folders:
            left = self._free(folder)
            if left < self.min_free_bytes:
                return folder, left
        return None

    def check(self, frames_written: int) -> None:
        if not self.min_free_bytes or not self._folders:
            return
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + self.interval_s
        self._raise_if_low(
            "left on the disk of {folder} (margin --min-free-mb {margin:g}): stopped after "
            f"{frames_written} frames and kept them; free some space, write to another disk, or "
            "record in --segment-minutes files and collect them"
        )

    def check_before_start(self) -> None:
        """Refuse to start a run whose output disk is already below the margin."""
        if self.min_free_bytes:
            self._raise_if_low(
                "free on the disk of {folder}, below --min-free-mb {margin:g}; free some space, "
                "write to another disk, or lower --min-free-mb"
            )

    def _raise_if_low(self, template: str) -> None:
        low = self.low_folder()
        if low is not None:
            folder, left = low
            detail = template.format(folder=folder, margin=self.min_free_bytes / MIB)
            raise OutputSpaceError(f"only {_mib(left)} {detail}")


def disk_full_error(err: OSError, frames_written: int) -> OutputSpaceError:
    """OutputSpaceError for a sink write that hit ENOSPC / EDQUOT / EFBIG."""
    where = f" writing {Path(err.filename).parent}" if err.filename else ""
    reason = err.strerror or "disk full"
    return OutputSpaceError(
        f"the output disk is full ({reason}{where}): stopped after {frames_written} frames and "
        "kept them (a video may lack its last frames); free some space or write to another "
        "disk (--min-free-mb stops a run before the disk is full)"
    )
