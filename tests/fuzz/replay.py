"""Replay saved inputs against the property, in this process, with the traceback shown:

    .venv/bin/python -m tests.fuzz.replay tests/fuzz/regressions/<target>/<file> [...]

Exit status 1 if any input breaks the property.
"""

from __future__ import annotations

import sys
import tempfile
import traceback
import warnings
from pathlib import Path

from tests.fuzz.oracle import Limits, allowed, timed
from tests.fuzz.runner import warm_up
from tests.fuzz.seeds import make_seeds
from tests.fuzz.targets import target_named
from tests.fuzz.workspace import Workspace, read_input

CACHE = Path(tempfile.gettempdir()) / "scaseg-fuzz-seeds"


def main(files: list[str]) -> int:
    warnings.simplefilter("ignore")
    seeds = CACHE
    make_seeds(seeds)
    failed = 0
    for name in files:
        path = Path(name)
        target = target_named(path.parent.name)
        with tempfile.TemporaryDirectory() as work:
            ws = Workspace(target, seeds, Path(work) / target.name, Path(work) / "current.json")
            warm_up(ws)  # imports and first calls are not the input's time
            seed, data = read_input(path)
            error, seconds, peak = timed(target.run, ws.place(seed, data), Limits(hang_s=120))
        ok = (
            (error is None or allowed(error))
            and peak <= Limits.memory_bytes
            and seconds <= Limits.slow_s
        )
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {path} ({target.name}, seed {seed}): {seconds:.2f} s, "
              f"peak +{peak >> 20} MiB")  # fmt: skip
        if error is not None:
            traceback.print_exception(error, file=sys.stdout)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
