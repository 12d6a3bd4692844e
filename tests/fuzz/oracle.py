"""The property every reader must keep, whatever bytes it is given: it returns, or raises one of
scaseg's own errors (`runtime.errors.ScasegError`, scaseg.errors.CheckpointError included) or an
OS error about a path -- the errors a CLI turns into a one-line message. Anything else (a bare
ValueError, KeyError, cv2.error, zlib.error, a protobuf DecodeError, an onnxruntime exception,
RecursionError, MemoryError) would reach the user as "internal error": a finding. So is an input
that takes more than `slow_s` (twice in a row) or grows the process's peak memory by more than
`memory_bytes`; a hard `hang_s` alarm stops a reader that never returns."""

from __future__ import annotations

import contextlib
import resource
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from runtime.cli_errors import is_bad_input
from runtime.errors import ScasegError

REPO = Path(__file__).resolve().parents[2]
PROJECT = ("scaseg/", "runtime/", "calibration/", "export/", "scenes/")


@dataclass(frozen=True)
class Limits:
    slow_s: float = 2.0
    hang_s: float = 20.0
    memory_bytes: int = 1 << 30


@dataclass(frozen=True)
class Finding:
    kind: str  # exception | slow | memory | hang | crash
    error: str  # the exception's type (or what was exceeded)
    message: str
    frame: str  # the last frame of the traceback: file:line in function
    reader_frame: str  # the last frame in scaseg's own code: where the fix goes
    seconds: float
    peak_bytes: int

    @property
    def signature(self) -> str:
        """Distinct failures: kind, error type and the last frame's file and function (not its
        line: readers being edited move lines but keep the failure)."""
        where = self.frame.split(" in ")[-1] if " in " in self.frame else self.frame
        file = self.frame.split(":")[0]
        return f"{self.kind}:{self.error}@{file}:{where}"

    def to_dict(self) -> dict:
        return {**asdict(self), "signature": self.signature}


class Hang(BaseException):
    """Raised by the alarm in the reader's frame when an input runs past `hang_s` (a
    BaseException, so a reader's `except Exception` cannot swallow it)."""


def allowed(err: BaseException) -> bool:
    return isinstance(err, ScasegError) or is_bad_input(err)


def _frame_text(frame: traceback.FrameSummary) -> str:
    name = frame.filename
    with contextlib.suppress(ValueError):
        name = str(Path(name).resolve().relative_to(REPO))
    if "site-packages/" in name:
        name = name.split("site-packages/")[-1]
    return f"{name}:{frame.lineno} in {frame.name}"


def frames(err: BaseException) -> tuple[str, str]:
    """(last frame, last frame in scaseg's code) of the exception's traceback."""
    stack = traceback.extract_tb(err.__traceback__)
    texts = [_frame_text(f) for f in stack if f.filename != __file__] or ["?"]
    ours = [t for t in texts if t.startswith(PROJECT)] or ["?"]
    return texts[-1], ours[-1]


def _peak_reset() -> Callable[[], int]:
    """Resets the process's peak RSS; returns a function that reads it (bytes). Linux's
    clear_refs makes the peak per input; elsewhere ru_maxrss only grows (still a bound)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    rss = _status_kib("VmRSS") * 1024
    return lambda: _status_kib("VmHWM") * 1024 - rss


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def stop(signum, frame):
        raise Hang(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def timed(run: Callable[[Path], object], path: Path, limits: Limits):
    peak = _peak_reset()
    start = time.perf_counter()
    error = None
    try:
        with _alarm(limits.hang_s):
            run(path)
    except (KeyboardInterrupt, SystemExit) as err:
        if isinstance(err, KeyboardInterrupt):
            raise
        error = err  # a reader that exits is a finding too
    except BaseException as err:  # the property classifies every kind itself
        error = err
    return error, time.perf_counter() - start, max(0, peak())


def outcome(error: BaseException | None) -> str:
    """What an input did, for the tally: "returned" or the error's type name."""
    return "returned" if error is None else type(error).__name__


def check(
    run: Callable[[Path], object], path: Path, limits: Limits, confirm: bool = True
) -> tuple[str, Finding | None]:
    """Run the reader on `path`: (outcome, the finding if the property does not hold). A slow
    input is run again to confirm it (`confirm`), since a busy machine slows any input."""
    error, seconds, peak = timed(run, path, limits)
    if error is not None and not allowed(error):
        kind = "hang" if isinstance(error, Hang) else "exception"
        last, ours = frames(error)
        message = (str(error).splitlines() or [""])[0][:300]
        return outcome(error), Finding(
            kind, type(error).__name__, message, last, ours, seconds, peak
        )
    what = f"{type(error).__name__}: {error}"[:300] if error is not None else "returned"
    where = frames(error) if error is not None else ("?", "?")
    if peak > limits.memory_bytes:
        finding = Finding(
            "memory", f">{limits.memory_bytes >> 20} MiB", what, *where, seconds, peak
        )
        return outcome(error), finding
    if seconds > limits.slow_s:
        _, seconds_again, _ = timed(run, path, limits) if confirm else (None, seconds, 0)
        if seconds_again > limits.slow_s:
            slowest = min(seconds, seconds_again)
            finding = Finding("slow", f">{limits.slow_s:g} s", what, *where, slowest, peak)
            return outcome(error), finding
    return outcome(error), None
