"""The fuzzing process: Hypothesis draws mutation plans per target and every input is checked
against the property (tests/fuzz/oracle.py). Distinct findings (by signature) are shrunk and
saved; the run keeps going. Started by tests/fuzz/driver.py in a child process, so a reader that
crashes the interpreter ends this process only; the driver saves the input it was on.

    python -m tests.fuzz.runner --seeds DIR --work DIR --report FILE [--profile ci|deep]
        [--targets a,b] [--examples N] [--save DIR] [--replay FILE ...]
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import resource
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings

from tests.fuzz.oracle import Limits, check, timed
from tests.fuzz.plans import Plan, apply, plans
from tests.fuzz.targets import TARGETS, target_named
from tests.fuzz.workspace import Workspace, read_input, save_input

# Inputs per target in CI: 1,050 in all, weighted by what a target costs and how much it parses.
CI_EXAMPLES = {
    "checkpoint_read": 150, "checkpoint_load": 40, "sidecar": 100, "onnx_guard": 100,
    "onnx_open": 80, "image": 120, "mask": 100, "val_pair": 80, "calibration": 80,
    "classes": 100, "video": 100,
}  # fmt: skip
DEEP_EXAMPLES = 3000
_COMMON = dict(
    database=None,
    deadline=None,  # time is the property's to judge (confirmed twice), not Hypothesis's
    suppress_health_check=list(HealthCheck),
    phases=(Phase.explicit, Phase.generate),  # nothing raises: there is nothing to shrink
    print_blob=False,
)
settings.register_profile("ci", derandomize=True, **_COMMON)
settings.register_profile("deep", derandomize=False, **_COMMON)


def shrink(
    ws: Workspace, plan: Plan, data: bytes, signature: str, limits: Limits, budget_s: float
) -> bytes:
    """A smaller input with the same signature: fewer mutation steps, then fewer bytes."""
    deadline = time.monotonic() + budget_s

    def same(candidate: bytes) -> bool:
        _, finding = check(ws.target.run, ws.place(plan.seed, candidate), limits)
        return finding is not None and finding.signature == signature

    steps = list(plan.steps)
    for step in list(steps):
        if len(steps) > 1 and time.monotonic() < deadline:
            fewer = [s for s in steps if s is not step]
            candidate = apply(Plan(plan.seed, tuple(fewer), plan.heavy), ws.seed_bytes)
            if same(candidate):
                steps, data = fewer, candidate
    chunk = len(data) // 2
    while chunk >= 1 and len(data) <= (64 << 10) and time.monotonic() < deadline:
        at, progress = 0, False
        while at < len(data) and time.monotonic() < deadline:
            candidate = data[:at] + data[at + chunk :]
            if same(candidate):
                data, progress = candidate, True
            else:
                at += chunk
        chunk = chunk if progress and chunk > 1 else chunk // 2
    return data


def warm_up(ws: Workspace) -> None:
    """Read every seed once: imports and first-call costs are not the inputs' time, and a seed
    that does not read means the harness or the reader's module is broken, not an input."""
    for seed, data in ws.seed_bytes.items():
        error, _, _ = timed(ws.target.run, ws.place(seed, data), Limits(hang_s=120))
        if error is not None:
            raise RuntimeError(f"seed {seed} of target {ws.target.name} does not read") from error


def fuzz(ws: Workspace, examples: int, limits: Limits, save: Path, deep: bool) -> dict:
    findings: dict[str, dict] = {}
    outcomes: Counter[str] = Counter()
    warm_up(ws)

    @settings(max_examples=examples)
    @given(plans(sorted(ws.target.seeds), heavy=deep))
    def one(plan: Plan) -> None:
        data = apply(plan, ws.seed_bytes)
        result, finding = check(ws.target.run, ws.place(plan.seed, data), limits)
        outcomes[result] += 1
        if finding is None or finding.signature in findings:
            return
        small = shrink(ws, plan, data, finding.signature, limits, 30.0 if deep else 5.0)
        saved = save_input(save / ws.target.name, ws.target, plan.seed, small)
        findings[finding.signature] = {
            **finding.to_dict(),
            "input": str(saved),
            "plan": plan.describe(),
        }

    start = time.monotonic()
    one()
    return {
        "inputs": outcomes.total(),
        "seconds": round(time.monotonic() - start, 1),
        "outcomes": dict(outcomes.most_common()),
        "findings": list(findings.values()),
    }


def replay(files: list[Path], seeds: Path, work: Path, limits: Limits, report: Path) -> None:
    """Check each saved input; the report is rewritten after each, so a crash keeps the rest."""
    results, spaces = [], {}
    for file in files:
        name = file.parent.name
        if name not in spaces:
            spaces[name] = Workspace(target_named(name), seeds, work / name, work / "current.json")
            warm_up(spaces[name])
        ws = spaces[name]
        seed, data = read_input(file)
        # Once fast, a regression input stays far under the limit: one slow run is a finding.
        result, finding = check(ws.target.run, ws.place(seed, data), limits, confirm=False)
        results.append(
            {"file": str(file), "outcome": result, "finding": finding and finding.to_dict()}
        )
        report.write_text(json.dumps(results, indent=1))


def _cap_address_space(gib: int = 16) -> None:
    """A reader that asks for tens of GB gets a MemoryError (a finding) instead of making the
    machine swap or the OOM killer pick another process. Torch and ONNX Runtime reserve a few GB
    of address space at import, well under this."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = gib << 30
    if hard == resource.RLIM_INFINITY or hard > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.runner")
    parser.add_argument("--seeds", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--profile", choices=("ci", "deep"), default="ci")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--examples", type=int, default=None, help="inputs per target")
    parser.add_argument("--save", type=Path, help="where findings go (<save>/<target>/)")
    parser.add_argument("--replay", type=Path, nargs="*", default=None)
    parser.add_argument("--hang-s", type=float, default=Limits.hang_s, help="per-input hard stop")
    args = parser.parse_args(argv)
    limits = Limits(hang_s=args.hang_s)
    faulthandler.enable()  # a segfault prints the Python stack before the process dies
    _cap_address_space()
    warnings.simplefilter("ignore")
    settings.load_profile(args.profile)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.replay is not None:
        replay(args.replay, args.seeds, args.work, limits, args.report)
        return 0
    report = json.loads(args.report.read_text()) if args.report.is_file() else {}
    save = args.save or args.work / "findings"
    for name in args.targets.split(","):
        if name in report:
            continue  # done before a crash restarted this process
        examples = args.examples or (
            CI_EXAMPLES.get(name, 50) if args.profile == "ci" else DEEP_EXAMPLES
        )
        ws = Workspace(target_named(name), args.seeds, args.work / name, args.work / "current.json")
        report[name] = fuzz(ws, examples, limits, save, args.profile == "deep")
        args.report.write_text(json.dumps(report, indent=1))
        done = report[name]
        print(f"{name}: {done['inputs']} inputs, {len(done['findings'])} findings, {done['seconds']} s",
              file=sys.stderr, flush=True)  # fmt: skip
    return 0


HARNESS_ERROR = 3  # the runner itself failed (readers' errors never reach here): not a finding

if __name__ == "__main__":
    try:
        status = main()
    except Exception:
        traceback.print_exc()
        status = HARNESS_ERROR
    sys.exit(status)
