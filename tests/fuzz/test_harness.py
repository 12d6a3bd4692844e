"""The fuzz harness itself: the property accepts scaseg's errors and flags everything else; a
reader that raises a bare error, kills the interpreter or never returns is found, and its input
saved and replayed; mutations are reproducible from their plan."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
from runtime.errors import BudgetError, RunError
from tests.fuzz.driver import replay, run_fuzz
from tests.fuzz.oracle import Limits, check
from tests.fuzz.plans import FORMAT_OPS, Plan, apply
from tests.fuzz.seeds import SEEDS
from tests.fuzz.workspace import read_input, save_input


def _raise(error: BaseException):
    def run(path: Path) -> None:
        raise error

    return run


@pytest.mark.parametrize(
    "error", [BudgetError("big"), RunError("lost"), FileNotFoundError(2, "gone"), PermissionError()]
)
def test_scaseg_and_path_errors_keep_the_property(tmp_path: Path, error: BaseException) -> None:
    assert check(_raise(error), tmp_path, Limits()) == (type(error).__name__, None)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("x"),
        KeyError("k"),
        RecursionError(),
        MemoryError(),
        OSError(5, "EIO"),
        SystemExit(1),
    ],
)
def test_any_other_error_is_a_finding_with_its_frame(tmp_path: Path, error: BaseException) -> None:
    _, finding = check(_raise(error), tmp_path, Limits())
    assert finding is not None and finding.kind == "exception"
    assert finding.error == type(error).__name__ and "in run" in finding.frame


def test_slow_and_memory_hungry_readers_are_findings(tmp_path: Path) -> None:
    def hungry(path: Path) -> None:
        block = bytearray(64 << 20)
        block[::4096] = b"\x01" * len(block[::4096])  # touched: resident, not just reserved

    _, finding = check(hungry, tmp_path, Limits(memory_bytes=32 << 20))
    assert finding is not None and finding.kind == "memory"
    _, finding = check(lambda p: __import__("time").sleep(0.3), tmp_path, Limits(slow_s=0.1))
    assert finding is not None and finding.kind == "slow"


def test_plans_make_the_same_bytes_every_time(fuzz_seeds: Path) -> None:
    seed_bytes = {name: (fuzz_seeds / file).read_bytes() for name, (file, _) in SEEDS.items()
                  if name != "mmengine_tiny"}  # fmt: skip
    for name in seed_bytes:
        plan = Plan(name, ((3, 7), (11, 42)))
        assert apply(plan, seed_bytes) == apply(plan, seed_bytes)
    assert set(FORMAT_OPS) >= {fmt for _, fmt in SEEDS.values()}


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("selftest_key_error", "exception"),
        ("selftest_segfault", "crash"),
        ("selftest_hang", "hang"),
    ],
)
def test_findings_are_saved_and_replayed_even_when_the_reader_kills_python(
    fuzz_seeds: Path, tmp_path: Path, target: str, kind: str
) -> None:
    save = tmp_path / "found"
    report = run_fuzz(fuzz_seeds, tmp_path / "work", [target], save=save, examples=3, hang_s=0.5)
    findings = report[target]["findings"]
    assert [f["kind"] for f in findings] == [kind]
    saved = Path(findings[0]["input"])
    assert saved.parent == save / target and saved.is_file()
    replayed = replay(fuzz_seeds, tmp_path / "replay", [saved], hang_s=0.5)[str(saved)]
    assert replayed["finding"] is not None and replayed["finding"]["kind"] in (kind, "crash")


def test_large_inputs_are_saved_gzipped(tmp_path: Path) -> None:
    from tests.fuzz.targets import TARGETS

    data = bytes(range(256)) * 4096  # 1 MiB
    path = save_input(tmp_path, TARGETS["checkpoint_read"], "mmengine_tiny", data)
    assert path.name.endswith(".pth.gz") and path.stat().st_size < len(data) // 10
    assert read_input(path) == ("mmengine_tiny", data)
