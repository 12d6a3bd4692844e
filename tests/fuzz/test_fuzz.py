"""Every reader of a user's file keeps the property on mutated real inputs (tests/fuzz/README.md):
it returns, or raises scaseg's own error or a path error; in bounded time and memory; without
killing the interpreter. A fresh CI fuzz run of every target, then every saved regression input.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
pytest.importorskip("mmengine")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from tests.fuzz.driver import replay
from tests.fuzz.targets import TARGETS

REGRESSIONS = Path(__file__).parent / "regressions"
REGRESSION_FILES = sorted(
    p for p in REGRESSIONS.glob("*/*") if p.is_file() and not p.name.startswith(".")
)
MIN_INPUTS = 1000
# Regression inputs whose reader is not fixed yet: "<target>/<file name>". Each is an expected
# failure until its fix lands; then the test passes unexpectedly and fails (strict), and the
# entry must go. Never skip one silently.
KNOWN_OPEN: set[str] = set()


def _describe(findings: list[dict]) -> str:
    return "\n".join(
        f"- {f['kind']} {f['error']}: {f['message'][:200]}\n  at {f.get('reader_frame', '?')} "
        f"(last frame {f.get('frame', '?')})\n  input {f.get('input', '?')} ({f.get('plan', '')})\n"
        f"  reproduce: .venv/bin/python -m tests.fuzz.replay {f.get('input', '?')}"
        for f in findings
    )


@pytest.fixture(scope="module")
def replayed(fuzz_seeds: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    if not REGRESSION_FILES:
        return {}
    return replay(fuzz_seeds, tmp_path_factory.mktemp("fuzz-replay"), REGRESSION_FILES)


@pytest.mark.parametrize("target", list(TARGETS))
def test_reader_keeps_the_property_on_mutated_inputs(
    ci_fuzz_report: dict, replayed: dict[str, dict], target: str
) -> None:
    result = ci_fuzz_report[target]
    assert result["inputs"] > 0
    known = {
        replayed[str(REGRESSIONS / name)]["finding"]["signature"]
        for name in KNOWN_OPEN
        if (replayed[str(REGRESSIONS / name)]["finding"] or {}).get("signature")
    }
    new = [f for f in result["findings"] if f["signature"] not in known]
    assert not new, (
        f"{target}: {len(new)} new distinct findings in {result['inputs']} inputs; copy each "
        f"input into {REGRESSIONS}/{target}/, add it to KNOWN_OPEN and route the fix:\n"
        + _describe(new)
    )
    if result["findings"]:
        pytest.xfail(f"{target}: known open findings: {_describe(result['findings'])}")


def test_a_run_fuzzes_at_least_1000_inputs(ci_fuzz_report: dict) -> None:
    total = sum(r["inputs"] for r in ci_fuzz_report.values())
    assert total >= MIN_INPUTS, f"only {total} inputs fuzzed"


def test_known_open_names_existing_regression_files() -> None:
    names = {f"{p.parent.name}/{p.name}" for p in REGRESSION_FILES}
    assert names >= KNOWN_OPEN, f"KNOWN_OPEN names missing files: {sorted(KNOWN_OPEN - names)}"


@pytest.mark.parametrize("path", REGRESSION_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_regression_input_keeps_the_property(
    replayed: dict[str, dict], path: Path, request: pytest.FixtureRequest
) -> None:
    if f"{path.parent.name}/{path.name}" in KNOWN_OPEN:
        request.applymarker(pytest.mark.xfail(strict=True, reason="reader fix not landed yet"))
    finding = replayed[str(path)]["finding"]
    assert finding is None, _describe([{**finding, "input": str(path)}])
