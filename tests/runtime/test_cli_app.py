"""Usage errors of all three CLIs are one line at any terminal width, with a did-you-mean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from runtime.cli_app import did_you_mean, run_app, usage_message

REPO = Path(__file__).resolve().parents[2]


def test_did_you_mean_picks_the_closest_choice():
    assert did_you_mean("in8", ["fp32", "fp16", "int8", "all"]) == " (did you mean 'int8'?)"
    assert did_you_mean("FP61", ["fp32", "fp16", "int8"]) == " (did you mean 'fp16'?)"
    assert did_you_mean("zzzz", ["fp32", "fp16", "int8"]) == ""


def _tiny_app() -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command()
    def go(size: int = typer.Option(8, min=1), mode: str = "a") -> None:
        if size == 99:
            raise typer.Exit(7)

    return app


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (["--size", "0"], 2, ("tiny: error:", "--size", "--help")),
        (["--size", "many"], 2, ("tiny: error:", "'many'")),
        (["--sise", "3"], 2, ("no such option: --sise", "--size")),
        (["--size", "99"], 7, ()),
        (["--size", "3"], 0, ()),
    ],
)
def test_run_app_exit_codes_and_single_line(capsys, argv, code, words):
    with pytest.raises(SystemExit) as exc:
        run_app(_tiny_app(), "tiny", argv)
    assert exc.value.code == code
    err = capsys.readouterr().err
    if words:
        assert len(err.strip().splitlines()) == 1, err
        for word in words:
            assert word.lower() in err.lower(), err
    else:
        assert "error" not in err


def test_usage_message_drops_the_validator_prefix():
    err = typer.BadParameter("Value error, 'x' is not one of 'a', 'b'.")
    assert usage_message(err) == "Invalid value: 'x' is not one of 'a', 'b'"


@pytest.mark.parametrize(
    ("module", "argv", "words"),
    [
        ("export.cli", ["--precision", "in8"], ("--precision", "did you mean 'int8'")),
        ("export.cli", ["build-engine", "m.onnx", "--workspace-gib", "x"], ("--workspace-gib",)),
        ("runtime.cli", ["clip.mp4", "--provider", "cdua"], ("did you mean 'cuda'",)),
        ("runtime.cli", ["clip.mp4", "--alpha", "3"], ("--alpha",)),
        ("runtime.profiling.cli", ["--bogus"], ("--bogus",)),
    ],
)
def test_cli_usage_errors_fit_one_line_on_a_narrow_terminal(module, argv, words):
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "40"}
    result = subprocess.run(
        [sys.executable, "-m", module, *argv], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error:" in lines[0] and "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
