"""Coverage-guided fuzzing of one target with atheris (libFuzzer), for `make fuzz`:

    python -m tests.fuzz.atheris_targets --target checkpoint_read [--seed mmengine_mini] -runs=2000

The readers (scaseg/, runtime/, calibration/) are instrumented for coverage; inputs start from
the seed file and are mutated by libFuzzer and by the harness's own format-aware mutations. The
property is tests/fuzz/oracle.py's: the first input that breaks it (or kills the process) is
written by libFuzzer to tests/fuzz/regressions/<target>/<seed>-crash-<sha1>, which every test
run replays. Other arguments starting with "-" go to libFuzzer (-runs, -max_total_time, ...).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

# Imported under instrumentation before anything else loads them (see main).
READER_MODULES = (
    "scaseg.checkpoint", "scaseg.checkpoint_read", "scaseg.safe_pickle", "runtime.meta",
    "runtime.onnx_guard", "runtime.backends", "runtime.preprocess", "runtime.masks",
    "runtime.val_data", "calibration.sources", "runtime.classes", "runtime.io.sources",
)  # fmt: skip
REGRESSIONS = Path(__file__).parent / "regressions"
WORK = Path(tempfile.gettempdir()) / "scaseg-atheris"


class PropertyBrokenError(Exception):
    """The reader broke the property on this input (libFuzzer saves it as a crash)."""


def _arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.atheris_targets")
    parser.add_argument("--target", required=True)
    parser.add_argument("--seed", help="which of the target's seeds (default: its first small one)")
    parser.add_argument("--save", type=Path, default=REGRESSIONS)
    return parser.parse_known_args(argv)


def main(argv: list[str]) -> None:
    import importlib

    import atheris

    with atheris.instrument_imports(include=["scaseg", "runtime", "calibration"]):
        for module in READER_MODULES:
            importlib.import_module(module)
    import warnings

    from tests.fuzz.oracle import Limits, check
    from tests.fuzz.plans import mutate
    from tests.fuzz.seeds import make_seeds
    from tests.fuzz.targets import target_named
    from tests.fuzz.workspace import Workspace

    args, libfuzzer = _arguments(argv[1:])
    warnings.simplefilter("ignore")
    target = target_named(args.target)
    seeds = make_seeds(WORK / "seeds")
    seed = args.seed or min(target.seeds, key=lambda s: seeds[s].stat().st_size)
    ws = Workspace(target, WORK / "seeds", WORK / "work" / target.name, WORK / "current.json")
    corpus = WORK / "corpus" / f"{target.name}-{seed}"
    corpus.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(seeds[seed], corpus / "seed")
    (args.save / target.name).mkdir(parents=True, exist_ok=True)
    donors = [b for name, b in ws.seed_bytes.items() if name != seed and len(b) < (1 << 20)]
    limits = Limits()

    def test_one_input(data: bytes) -> None:
        _, finding = check(target.run, ws.place(seed, data), limits)
        if finding is not None:
            raise PropertyBrokenError(
                f"{finding.signature}: {finding.message} at {finding.reader_frame}"
            )

    def mutator(data: bytes, max_size: int, rng_seed: int) -> bytes:
        rng = random.Random(rng_seed)
        if rng.random() < 0.5:
            return atheris.Mutate(data, max_size)
        return mutate(seed, rng.randrange(256), data, rng, donors)[:max_size]

    flags = [
        f"-artifact_prefix={args.save / target.name}/{seed}-",
        f"-max_len={max(4096, 2 * seeds[seed].stat().st_size)}",
        "-timeout=30",
        "-rss_limit_mb=4096",
        *libfuzzer,
        str(corpus),
    ]
    atheris.Setup([argv[0], *flags], test_one_input, custom_mutator=mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
