"""Session fixtures of the fuzz tests: the seed files, one CI fuzz run of every target, and the
line at the end of the pytest run that says how many inputs were fuzzed."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

SUMMARY = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def fuzz_seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fuzz.seeds import make_seeds

    folder = tmp_path_factory.mktemp("fuzz-seeds")
    make_seeds(folder)
    return folder


@pytest.fixture(scope="session")
def ci_fuzz_report(
    fuzz_seeds: Path, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> dict:
    """Every target fuzzed with the "ci" Hypothesis profile (derandomized: the same inputs on
    every run), in child processes."""
    from tests.fuzz.driver import run_fuzz
    from tests.fuzz.targets import TARGETS

    start = time.monotonic()
    # Findings are kept outside pytest's rotating temp folders, so the paths in a failure stay.
    findings = Path(tempfile.gettempdir()) / "scaseg-fuzz-findings"
    report = run_fuzz(
        fuzz_seeds, tmp_path_factory.mktemp("fuzz-work"), list(TARGETS), save=findings
    )
    inputs = sum(r["inputs"] for r in report.values())
    findings = sum(len(r["findings"]) for r in report.values())
    pytestconfig.stash[SUMMARY] = (
        f"fuzz: {inputs:,} mutated inputs through {len(report)} readers in "
        f"{time.monotonic() - start:.0f} s, {findings} distinct findings"
    )
    return report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if SUMMARY in config.stash:
        terminalreporter.write_line(config.stash[SUMMARY])
