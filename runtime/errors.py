"""The kinds of error scaseg raises, chosen where the error is raised, never guessed afterwards.

    UserInputError   bad input: a flag, a path, or the content of a file the caller gave.
                     The CLIs exit 2 with the message, which says what was wrong and how to fix it.
      BudgetError    a file asks for more than a reader allows (bytes, pixels, frames, classes,
                     nesting); the message names the limit and, where it can be raised, how.
      UnsafePathError  an output would equal, contain or sit inside an input, or a path leaves
                     the folder it must stay in.
    RunError       the input was fine but the work failed (source lost, disk full, failed
                     build, missed accuracy gate). The CLIs exit 1 with the message.
    MissingDependencyError (runtime/deps.py) an optional package is missing: exit 1 with the hint.

Anything else that reaches a CLI is a bug in scaseg: "internal error", and the traceback goes to
a log file. Third-party exceptions (OpenCV, zlib, json, protobuf, onnxruntime, OpenVINO) are
translated into these where scaseg calls the library on a user's file.

`scaseg/` (the PyTorch model) raises its own CheckpointError and ModelConfigError
(scaseg/errors.py); the CLIs that load checkpoints register them as bad input too.
Importing this module costs nothing: no third-party imports.
"""

from __future__ import annotations


class ScasegError(Exception):
    """Base of every error scaseg raises on purpose; `exit_code` is what the CLIs return."""

    exit_code = 1


class UserInputError(ScasegError, ValueError):
    """Bad input: a flag or argument, a path, or the content of a file the caller gave.

    A ValueError too, so API callers that catch ValueError keep working."""

    exit_code = 2


class BudgetError(UserInputError):
    """A user's file asks for more than a reader's budget (checked before the cost is paid)."""


class UnsafePathError(UserInputError):
    """An output path that would overwrite, contain or sit inside an input, or escape its folder."""


class RunError(ScasegError, RuntimeError):
    """The input was acceptable, but the work failed while running."""
