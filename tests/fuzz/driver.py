"""Runs tests/fuzz/runner.py in child processes and survives them: when a reader kills the
interpreter (a segfault in a decoder, an abort, a hang past the time limit), the input it was
reading is saved as a finding and a new child goes on with the targets left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.fuzz.runner import HARNESS_ERROR
from tests.fuzz.targets import target_named
from tests.fuzz.workspace import save_input

REPO = Path(__file__).resolve().parents[2]


def _child(args: list[str], log: Path, stall_s: float) -> int | str:
    """The runner's exit code, or "timeout" when its progress file (rewritten before every
    input) went `stall_s` without a change: a reader stuck in native code, which the runner's
    own alarm cannot interrupt."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PYTHONFAULTHANDLER": "1",
        # Hypothesis keeps a cache even without an example database: not in the repository.
        "HYPOTHESIS_STORAGE_DIRECTORY": str(log.parent / ".hypothesis"),
    }
    progress = log.parent / "current.json"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.runner", *args],
            cwd=REPO, env=env, stdout=out, stderr=out,
        )  # fmt: skip
        last, seen = time.monotonic(), None
        while True:
            try:
                return proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                stamp = progress.stat().st_mtime_ns if progress.is_file() else None
                if stamp != seen:
                    last, seen = time.monotonic(), stamp
                elif time.monotonic() - last > stall_s:
                    proc.kill()
                    proc.wait()
                    return "timeout"


def _tail(log: Path, lines: int = 12) -> str:
    text = log.read_text(errors="replace").splitlines()
    return "\n".join(line for line in text[-lines:] if not line.startswith("libpng"))


def _crash_finding(work: Path, save: Path, status: int | str, log: Path) -> tuple[str, int, dict]:
    """The target, the inputs it had run and a finding for the input the dead child was on
    (saved under `save`)."""
    progress = json.loads((work / "current.json").read_text())
    target = target_named(progress["target"])
    data = Path(progress["path"]).read_bytes()
    saved = save_input(save / target.name, target, progress["seed"], data)
    kind = "hang" if status == "timeout" else "crash"
    error = "timeout" if status == "timeout" else f"exit status {status}"
    return target.name, progress["placed"], {
        "kind": kind, "error": error, "message": _tail(log), "frame": "?", "reader_frame": "?",
        "signature": f"{kind}:{error}@{target.name}", "input": str(saved), "plan": progress["seed"],
    }  # fmt: skip


def run_fuzz(
    seeds: Path, work: Path, targets: list[str], profile: str = "ci", save: Path | None = None,
    examples: int | None = None, stall_s: float = 180.0, hang_s: float | None = None,
) -> dict:  # fmt: skip
    """{target: {"inputs", "seconds", "outcomes", "findings": [...]}} for every target."""
    work.mkdir(parents=True, exist_ok=True)
    report_path, log = work / "report.json", work / "runner.log"
    save = save or work / "findings"
    while True:
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
        left = [t for t in targets if t not in report]
        if not left:
            return report
        args = ["--seeds", str(seeds), "--work", str(work), "--report", str(report_path),
                "--profile", profile, "--targets", ",".join(left), "--save", str(save)]  # fmt: skip
        if examples is not None:
            args += ["--examples", str(examples)]
        if hang_s is not None:
            args += ["--hang-s", str(hang_s)]
        (work / "current.json").unlink(missing_ok=True)
        status = _child(args, log, stall_s)
        if status == 0:
            continue
        if status == HARNESS_ERROR or not (work / "current.json").is_file():
            raise RuntimeError(f"the fuzz harness failed (exit status {status}):\n{_tail(log, 40)}")
        name, inputs, finding = _crash_finding(work, save, status, log)
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
        report[name] = {"inputs": inputs, "seconds": 0.0, "outcomes": {}, "findings": [finding]}
        report_path.write_text(json.dumps(report, indent=1))


def replay(
    seeds: Path,
    work: Path,
    files: list[Path],
    stall_s: float = 180.0,
    hang_s: float | None = None,
) -> dict[str, dict]:
    """{file: {"outcome", "finding"}} for saved inputs; a file that kills the child is a crash."""
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    report, log = work / "replay.json", work / "replay.log"
    while left := [f for f in files if str(f) not in results]:
        report.unlink(missing_ok=True)
        args = ["--seeds", str(seeds), "--work", str(work), "--report", str(report)]
        if hang_s is not None:
            args += ["--hang-s", str(hang_s)]
        args.append("--replay")
        status = _child([*args, *map(str, left)], log, stall_s)
        if status == HARNESS_ERROR:
            raise RuntimeError(f"the fuzz harness failed replaying:\n{_tail(log, 40)}")
        if report.is_file():  # written after every file: a crash keeps the ones before it
            results.update({r["file"]: r for r in json.loads(report.read_text())})
        if status != 0:
            dead = next(f for f in left if str(f) not in results)
            error = "timeout" if status == "timeout" else f"exit status {status}"
            results[str(dead)] = {
                "file": str(dead), "outcome": "crash",
                "finding": {"kind": "crash", "error": error, "message": _tail(log)},
            }  # fmt: skip
    return results
