"""`make fuzz`: the deep run. Every target with the "deep" Hypothesis profile (random, many more
inputs, the costly mutations too), then each target under atheris (coverage-guided) when it is
installed. Findings are written to tests/fuzz/regressions/<target>/, which every test run
replays; add them to KNOWN_OPEN in tests/fuzz/test_fuzz.py until their reader is fixed.

    python -m tests.fuzz [--examples N] [--atheris-runs N] [--targets a,b]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.driver import REPO, run_fuzz
from tests.fuzz.seeds import make_seeds
from tests.fuzz.targets import TARGETS

REGRESSIONS = Path(__file__).parent / "regressions"


def _atheris(target: str, runs: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "tests.fuzz.atheris_targets", "--target", target, f"-runs={runs}"]
    return subprocess.run(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz")
    parser.add_argument("--examples", type=int, default=1000, help="Hypothesis inputs per target")
    parser.add_argument("--atheris-runs", type=int, default=2000, help="atheris inputs per target")
    parser.add_argument("--targets", default=",".join(TARGETS))
    args = parser.parse_args(argv)
    targets = args.targets.split(",")
    work = Path(tempfile.mkdtemp(prefix="scaseg-fuzz-"))
    seeds = work / "seeds"
    make_seeds(seeds)
    start = time.monotonic()
    before = set(REGRESSIONS.glob("*/*"))
    report = run_fuzz(seeds, work / "run", targets, "deep", REGRESSIONS, args.examples)
    for name, result in report.items():
        print(
            f"{name}: {result['inputs']} inputs in {result['seconds']} s, outcomes {result['outcomes']}"
        )
        for finding in result["findings"]:
            print(
                f"  {finding['signature']}: {finding['message'][:160]}\n    -> {finding['input']}"
            )
    if importlib.util.find_spec("atheris") is not None and args.atheris_runs > 0:
        for name in targets:
            status = _atheris(name, args.atheris_runs)
            print(
                f"{name}: atheris {args.atheris_runs} runs, "
                + ("clean" if status == 0 else f"finding (exit {status})")
            )
    else:
        print("atheris is not installed: coverage-guided runs skipped (pip install atheris)")
    new = sorted(set(REGRESSIONS.glob("*/*")) - before)
    print(f"fuzz: {sum(r['inputs'] for r in report.values()):,} Hypothesis inputs in {time.monotonic() - start:.0f} s; "
          f"{len(new)} new regression files" + "".join(f"\n  {p.relative_to(REPO)}" for p in new))  # fmt: skip
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
