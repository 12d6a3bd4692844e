"""Run a Typer app so that usage errors read like every other error of ours: one line.

Typer prints a bad flag value as a usage block plus a bordered panel that wraps the message over
several lines at terminal width. Scripts that grep logs, and people reading a serial console on a
Jetson, want the single line `scaseg-run: error: <what was wrong>; <how to fix it>`. Help output
keeps Typer's rich formatting; only the error path changes.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Sequence

import typer
from rich.console import Console
from rich.markup import escape

# Typer vendors click and does not export its base exception; BadParameter's ancestry has it.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_CHOICE_ERROR = re.compile(r"'(?P<value>[^']*)' is not one of (?P<choices>.+?)\.?$")


def did_you_mean(value: str, choices: Sequence[str]) -> str:
    """' (did you mean 'int8'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(value.lower(), [c.lower() for c in choices], n=1, cutoff=0.5)
    if not close:
        return ""
    original = next(c for c in choices if c.lower() == close[0])
    return f" (did you mean {original!r}?)"


def given_value(option: str, argv: Sequence[str]) -> str | None:
    """The value given for `option` on the command line (`--x v` or `--x=v`), last one wins."""
    value = None
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(option + "="):
            value = arg[len(option) + 1 :]
    return value


def usage_message(err: BaseException, argv: Sequence[str] = ()) -> str:
    """The click error as one line, with the offending value and a did-you-mean for a choice."""
    message = " ".join(err.format_message().split())  # type: ignore[attr-defined]
    message = re.sub(r"(Invalid value(?: for '[^']+')?: )?Value error, ", r"\1", message)
    message = message.rstrip(".")
    option = re.match(r"Invalid value for '(--[\w-]+)", message)
    value = given_value(option.group(1), argv) if option else None
    if value is not None and repr(value) not in message:
        message += f" (got {value!r})"
    match = _CHOICE_ERROR.search(message)
    if match:
        choices = re.findall(r"'([^']*)'", match.group("choices"))
        message += did_you_mean(match.group("value"), choices)
    return message


def run_app(
    app: typer.Typer, prog_name: str, args: Sequence[str] | None = None, obj: object = None
) -> None:
    """Call `app` with `args` (default: sys.argv[1:]) and exit with its code. `obj` becomes the
    commands' `ctx.obj` (click's context object): how a caller hands a command what it runs on
    (e.g. scaseg-run's EngineApis); the console scripts pass none."""
    argv = list(sys.argv[1:] if args is None else args)
    try:
        code = app(argv, prog_name=prog_name, standalone_mode=False, obj=obj)
    except _CLICK_EXCEPTION as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # help was already printed
            sys.exit(2)
        Console(stderr=True, soft_wrap=True).print(
            f"[red]{prog_name}: error:[/] {escape(usage_message(err, argv))}; "
            f"see `{prog_name} --help`",
            highlight=False,
        )
        sys.exit(err.exit_code)  # type: ignore[attr-defined]
    except typer.Abort:
        Console(stderr=True).print(f"{prog_name}: aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
