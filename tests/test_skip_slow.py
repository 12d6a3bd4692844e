"""SKIP_SLOW=1 (as in `make test SKIP_SLOW=1`) leaves out the tests marked `slow`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_slow_probe():
    """Does nothing; exists so that the tests below have a slow test to see (de)selected."""


def _collect(skip_slow: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SKIP_SLOW"}
    if skip_slow is not None:
        env["SKIP_SLOW"] = skip_slow
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/test_skip_slow.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_skip_slow_deselects_slow_tests():
    result = _collect("1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_slow_probe" not in result.stdout and "1 deselected" in result.stdout
    assert "test_skip_slow_deselects_slow_tests" in result.stdout


def test_slow_tests_run_by_default_and_a_bad_value_is_refused():
    assert "test_slow_probe" in _collect(None).stdout
    assert "test_slow_probe" in _collect("0").stdout
    bad = _collect("yes")
    assert bad.returncode != 0 and "SKIP_SLOW must be 1" in bad.stdout + bad.stderr
