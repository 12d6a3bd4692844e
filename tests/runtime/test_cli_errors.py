"""One exception -> exit code mapping for every CLI: bad input 2, failures 1, bugs 1 + a log file."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from runtime.backends import BackendOptions
from runtime.cli_errors import in_cli_terms, is_bad_input

runner = CliRunner()


def _raised(fn) -> BaseException:
    try:
        fn()
    except Exception as err:
        return err
    raise AssertionError("nothing was raised")


def test_our_own_validation_is_bad_input():
    assert is_bad_input(_raised(lambda: BackendOptions(provider="rocm")))
    assert is_bad_input(_raised(lambda: open(Path("/nonexistent/x"))))  # noqa: SIM115


def test_an_untyped_value_error_from_our_own_code_is_internal():
    # The kind is the type chosen at the raise site: a bare ValueError is a bug even when our
    # own code raised it (before, the bytecode at the raise site was read to guess).
    def ours():
        raise ValueError("made up")

    assert not is_bad_input(_raised(ours))


def test_scaseg_errors_are_bad_input_by_type():
    from runtime.budgets import check
    from scaseg.config import variant_config
    from scaseg.errors import CheckpointError

    assert is_bad_input(CheckpointError("made up"))
    assert is_bad_input(_raised(lambda: variant_config("XXL", 19)))
    assert is_bad_input(_raised(lambda: check("classes", 10**7, "model.pth: a classifier")))


def test_every_input_error_class_is_bad_input_by_type():
    from calibration.sources import CalibrationDataError
    from export.request import ExportInputError
    from runtime.classes import ClassSpecError
    from runtime.io.source_types import SourceError
    from runtime.masks import ValDataError
    from runtime.meta import MetaError

    for cls in (MetaError, SourceError, CalibrationDataError, ValDataError, ClassSpecError,
                ExportInputError):  # fmt: skip
        assert is_bad_input(cls("made up, never raised"))  # no traceback needed


def test_a_library_value_error_is_not_bad_input():
    # numpy raises it: an internal error of ours, never "check your input"
    assert not is_bad_input(_raised(lambda: np.arange(3).reshape(2, 2)))
    assert not is_bad_input(_raised(lambda: int("x")))
    assert not is_bad_input(_raised(lambda: None + 1))  # TypeError


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("x exists; pass overwrite=True to replace it", "x exists; pass --force to replace it"),
        ("device='CPU' names an OpenVINO device", "--device CPU names an OpenVINO device"),
        ("use device=0, or kind='openvino'", "use --device 0, or --backend openvino"),
        ("`ov_precision` applies to OpenVINO", "--ov-precision applies to OpenVINO"),
        ("cuda_graph=True applies to TensorRT engines", "--cuda-graph applies to TensorRT engines"),
    ],
)
def test_api_terms_become_flags_on_the_command_line(message, expected):
    assert in_cli_terms(message) == expected


def _boom(*_args, **_kwargs):
    raise TypeError("unsupported operand")


def _numpy_boom(*_args, **_kwargs):
    return np.arange(3).reshape(2, 2)  # ValueError from inside numpy


def _cases(tmp_path: Path, monkeypatch) -> dict:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really a model")
    return {
        "scaseg-run": ("runtime.cli", "execute", [str(model), "--model", str(model)], _boom),
        "scaseg-profile": ("runtime.profiling.cli", "execute",
                           [str(model), "--out", str(tmp_path / "prof")], _numpy_boom),
        "scaseg-export": ("export.request", "ExportRequest", ["--out", str(tmp_path / "a")], _boom),
        "scaseg-export build-engine": ("export.trt_build", "build_engine",
                                       ["build-engine", str(model)], _numpy_boom),
        "scaseg-eval": ("export.eval_cli", "load_model_for_eval",
                        [str(model), "--val-data", "generated"], _boom),
    }  # fmt: skip


def _app(prog: str):
    if prog.startswith("scaseg-export"):
        from export.cli import app
    elif prog == "scaseg-eval":
        from export.eval_cli import app
    elif prog == "scaseg-profile":
        from runtime.profiling.cli import app
    else:
        from runtime.cli import app
    return app


PROGS = [
    "scaseg-run",
    "scaseg-profile",
    "scaseg-export",
    "scaseg-export build-engine",
    "scaseg-eval",
]


@pytest.mark.parametrize("prog", PROGS)
def test_a_bug_is_one_line_internal_error_with_the_traceback_in_a_log(prog, tmp_path, monkeypatch):
    module, name, argv, fake = _cases(tmp_path, monkeypatch)[prog]
    monkeypatch.setattr(f"{module}.{name}", fake)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = runner.invoke(_app(prog), argv)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert "internal error" in errors[0] and "--debug" in errors[0], errors[0]
    log = Path(re.search(r"the traceback is in (\S+);", errors[0]).group(1))
    assert log.parent == tmp_path
    text = log.read_text()
    assert text.startswith("Traceback") and ("TypeError" in text or "ValueError" in text)


@pytest.mark.parametrize("prog", PROGS)
def test_debug_lets_the_bug_through(prog, tmp_path, monkeypatch):
    module, name, argv, fake = _cases(tmp_path, monkeypatch)[prog]
    monkeypatch.setattr(f"{module}.{name}", fake)
    result = runner.invoke(_app(prog), [*argv, "--debug"])
    assert isinstance(result.exception, (TypeError, ValueError)), result.output


def test_error_and_warning_lines_show_control_characters_from_files_as_escapes():
    import io

    from rich.console import Console

    from runtime.cli_errors import guarded, warning_line
    from runtime.errors import UserInputError

    name = "ro\x1b[2Jad\udce9[/]"  # ESC, a lone surrogate (an undecodable file name), markup

    def run() -> int:
        raise UserInputError(f"class {name} is unknown; pass a class file")

    out = io.StringIO()
    console = Console(file=out, width=300, force_terminal=False)
    assert guarded(run, prog="scaseg-x", debug=False, console=console) == 2
    warning_line("scaseg-x", f"class {name} was renamed", console)
    text = out.getvalue()
    assert "\x1b" not in text and "\udce9" not in text
    assert "ro\\x1b[2Jad\\xe9[/]" in text  # the byte the name held
    assert len(text.strip().splitlines()) == 2
