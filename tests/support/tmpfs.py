"""A small real filesystem for disk-full tests: a tmpfs mounted for one test.

Needs root and permission to mount (CI's machines have both); the test is skipped, with the
reason, where either is missing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(parent: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of `size` (mount's spelling: "3m", "512k") in a new folder under `parent`."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = parent / f"disk-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
