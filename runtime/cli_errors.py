"""The one mapping from an exception to a message and an exit code, shared by every CLI.

    2    bad input: the message says what was given and how to fix it
    1    a runtime failure (source lost, disk full, failed build, missed accuracy gate,
         missing optional package) -- or a bug in scaseg, reported as an internal error
    130  interrupted (the caller prints its own line: what was kept and what was not)

The kind is the exception's type, chosen where it was raised (runtime/errors.py): a
`UserInputError` (and its BudgetError, UnsafePathError, MetaError, SourceError, scaseg's
CheckpointError, ...), a Typer `BadParameter`, or an OS error about a path (file not found,
permission denied) is bad input; a
`ScasegError` (RunError, MissingDependencyError) or an OS/memory error is a failure while
running. Anything else -- a bare ValueError, TypeError, KeyError, from our code or a library's --
is a bug on our side: it gets "internal error", and the traceback goes to a log file (and to the
terminal with --debug). Nothing is guessed from tracebacks: a library error that is really about
the user's file must be translated where scaseg calls the library.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from runtime.errors import ScasegError, UserInputError
from runtime.text import printable

_PATH_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
                NotADirectoryError)  # fmt: skip
# Failures while running: ours (RunError, MissingDependencyError, ...) and the system's.
_FAILURES = (ScasegError, OSError, MemoryError)


# Library errors name options as the Python API does (`device=0`, `kind='openvino'`,
# `overwrite=True`); on the command line the same option is a flag. Every CLI spells them alike.
API_FLAGS = {
    "device": "--device",
    "kind": "--backend",
    "provider": "--provider",
    "ov_precision": "--ov-precision",
    "trt_cache_dir": "--trt-cache",
    "cuda_graph": "--cuda-graph",
    "intra_op_threads": "--threads",
    "overwrite": "--force",
    "force": "--force",
}
_API_VALUE = re.compile(r"\b(" + "|".join(API_FLAGS) + r")=(?:'([^']*)'|([^\s,;:)]+))")
_API_NAME = re.compile(r"`(" + "|".join(API_FLAGS) + r")`")


def in_cli_terms(message: str) -> str:
    """`message` with API option names turned into flags: device='CPU' -> --device CPU,
    overwrite=True -> --force, `ov_precision` -> --ov-precision."""

    def flag(match: re.Match) -> str:
        value = match.group(2) if match.group(2) is not None else match.group(3)
        name = API_FLAGS[match.group(1)]
        return name if value == "True" else f"{name} {value}"

    message = _API_VALUE.sub(flag, message)
    return _API_NAME.sub(lambda m: API_FLAGS[m.group(1)], message)


class UsageError(UserInputError):
    """Bad command-line input: flags that contradict each other or need something absent."""


def is_bad_input(err: BaseException) -> bool:
    """True when `err`'s type says the user's input was wrong (see the module docstring)."""
    return isinstance(err, (UserInputError, *_PATH_ERRORS, typer.BadParameter))


MESSAGE_LIMIT = 4000  # characters of one error line; messages quote names and paths, not files


def one_line(err: BaseException) -> str:
    """The message on one line, as visible text: messages quote class names and paths from
    users' files, whose control characters (ESC, BEL, lone surrogates of undecodable names)
    must not reach the terminal raw."""
    text = " ".join(str(err).split()) or type(err).__name__
    return printable(text, limit=MESSAGE_LIMIT, markup=False)


def write_traceback_log(prog: str, err: BaseException) -> Path | None:
    """Write the traceback to a file in $TMPDIR; its path, or None when nothing could be written."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = prog.replace(" ", "-")
    try:
        with tempfile.NamedTemporaryFile(
            "w", prefix=f"{name}-error-{stamp}-", suffix=".log", delete=False, encoding="utf-8"
        ) as f:
            f.write("".join(traceback.format_exception(err)))
            return Path(f.name)
    except OSError:
        return None


def guarded(
    run: Callable[[], int],
    *,
    prog: str,
    debug: bool,
    console: Console,
    prefix: str | None = None,
    interrupted: str | None = None,
    describe: Callable[[BaseException], str | None] | None = None,
) -> int:
    """Call `run` and turn what it raises into one line on `console` and an exit code.

    `prefix` starts the error line (default "<prog>: error:"); `interrupted` is the line printed
    on Ctrl-C; `describe` may give a better message for a failure (e.g. a full disk)."""
    prefix = prefix or f"{prog}: error:"
    try:
        return run()
    except KeyboardInterrupt:
        console.print(interrupted or f"{prog}: interrupted", soft_wrap=True, highlight=False)
        return 130
    except (typer.Exit, typer.Abort):  # click's own control flow (both are RuntimeErrors)
        raise
    except Exception as err:
        if debug:
            raise
        if is_bad_input(err):
            code, message = 2, one_line(err)
        elif isinstance(err, _FAILURES):
            code, message = 1, (describe and describe(err)) or one_line(err)
        else:
            code, message = 1, _internal(prog, err)
        message = in_cli_terms(message)
        console.print(f"[red]{prefix}[/] {escape(message)}", soft_wrap=True, highlight=False)
        return code


def warning_line(prog: str, text: str, console: Console) -> None:
    """One `<prog>: warning: text` line (warnings are messages, not markup)."""
    shown = printable(in_cli_terms(" ".join(str(text).split())), limit=MESSAGE_LIMIT, markup=False)
    console.print(
        f"[yellow]{prog}: warning:[/] {escape(shown)}",
        markup=True,
        soft_wrap=True,
        highlight=False,
    )


@contextlib.contextmanager
def warnings_as_lines(prog: str, console: Console) -> Iterator[None]:
    """Python warnings raised inside (each once per place) print as `warning_line`s."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        warning_line(prog, str(message), console)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield


def _internal(prog: str, err: BaseException) -> str:
    log = write_traceback_log(prog, err)
    where = f"the traceback is in {log}" if log else "the traceback could not be written"
    return (
        f"internal error (a bug in scaseg, not your input): {type(err).__name__}: "
        f"{one_line(err)}; {where}; rerun with --debug to show it, and report it with that file"
    )
