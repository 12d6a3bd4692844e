"""Targets that break the property on purpose, to prove the harness notices: a reader with a
bare KeyError, one that kills the interpreter, one that never returns. Each behaves on its seed
(the harness requires seeds to read) and misbehaves on any mutated input."""

from __future__ import annotations

import ctypes
import time
from pathlib import Path

from tests.fuzz.targets import Target

SEED = "classes_json"
SEED_TEXT = '["road", "car", "person", "sky"]'


def _mutated(path: Path) -> bool:
    return path.read_text(errors="replace") != SEED_TEXT


def raise_key_error(path: Path) -> None:
    if _mutated(path):
        raise KeyError("class")  # what an unchecked dict lookup on a user's file raises


def segfault(path: Path) -> None:
    if _mutated(path):
        ctypes.string_at(0)  # reads address 0: SIGSEGV, as a broken decoder would


def sleep_forever(path: Path) -> None:
    if _mutated(path):
        while True:
            time.sleep(0.01)


SELFTEST_TARGETS = {
    t.name: t
    for t in (
        Target("selftest_key_error", raise_key_error, {SEED: "classes.json"}),
        Target("selftest_segfault", segfault, {SEED: "classes.json"}),
        Target("selftest_hang", sleep_forever, {SEED: "classes.json"}),
    )
}
