"""A full output disk: the run stops while its outputs can still be finalised, keeps every frame
written so far, and never leaves a half-written JSON line or PNG.

Unit tests use a FAKE free-space function; the slow tests fill a real tmpfs (mounted by the test,
so they need root and mount permission, and skip without them) through the real scaseg-run.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.classes import palette_bgr
from runtime.disk_space import MIB, OutputSpaceError, SpaceGuard, is_disk_full
from runtime.io.sink_types import Result
from runtime.io.sinks import JsonLinesSink, LabelPngSink, OutputSpec
from runtime.io.source_types import Frame
from runtime.io.video_sinks import OverlayVideoSink
from runtime.pipeline import run_pipeline
from runtime.segmenter import StageTimes
from scenes.classes import DEMO_PALETTE_RGB
from tests.support.tmpfs import small_tmpfs

TABLE = palette_bgr(DEMO_PALETTE_RGB, num_classes=4)
REPO = Path(__file__).resolve().parents[2]


class FakeDisk:
    """A FAKE free-space reading: `free_mib` MiB, less `per_check_mib` at every look."""

    def __init__(self, free_mib: float, per_check_mib: float = 0.0):
        self.free, self.step, self.checks = free_mib * MIB, per_check_mib * MIB, 0

    def __call__(self, folder: Path) -> int:
        self.checks += 1
        self.free -= self.step
        return int(self.free)


class _Stages:
    def prepare(self, frame_bgr):
        return frame_bgr[None, ..., 0]

    def infer(self, batch):
        return batch // 64

    def postprocess(self, output, frame_hw):
        return output[0].astype(np.uint8)


def _frames(n: int):
    for i in range(n):
        yield Frame(i, np.full((48, 64, 3), (i * 20) % 256, np.uint8), f"{i:06d}")


def _result(i: int) -> Result:
    labels = np.full((8, 8), i % 4, np.uint8)
    return Result(i, f"{i:06d}", np.zeros((8, 8, 3), np.uint8), labels, StageTimes(1.0, 2.0, 3.0))


def _count_frames(path: Path) -> int:
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    return n


# --- the guard ----------------------------------------------------------------------------------


def test_guard_trips_below_the_margin_and_names_folder_and_fix(tmp_path):
    disk = FakeDisk(10.0, per_check_mib=3.0)
    guard = SpaceGuard([tmp_path], 2 * MIB, interval_s=0.0, free=disk)
    guard.check(0)  # 7 MiB left
    guard.check(1)  # 4 MiB
    with pytest.raises(OutputSpaceError) as err:
        guard.check(2)  # 1 MiB < 2 MiB
    message = str(err.value)
    assert str(tmp_path) in message and "stopped after 2 frames" in message
    assert "--min-free-mb 2" in message and "free some space" in message


def test_guard_looks_once_per_interval_and_once_per_filesystem(tmp_path):
    now = [0.0]
    disk = FakeDisk(100.0)
    (tmp_path / "a").mkdir()
    guard = SpaceGuard(
        [tmp_path, tmp_path / "a"], MIB, interval_s=1.0, free=disk, clock=lambda: now[0]
    )
    for _ in range(10):
        guard.check(0)
    assert disk.checks == 1  # same filesystem, inside one interval
    now[0] = 1.5
    guard.check(0)
    assert disk.checks == 2


def test_zero_margin_turns_the_guard_off(tmp_path):
    disk = FakeDisk(0.0)
    guard = SpaceGuard([tmp_path], 0, interval_s=0.0, free=disk)
    guard.check(5)
    guard.check_before_start()
    assert disk.checks == 0
    assert OutputSpec(min_free_mb=0).space_guard() is None


def test_a_run_refuses_to_start_below_the_margin(tmp_path):
    guard = SpaceGuard([tmp_path], 64 * MIB, free=FakeDisk(10.0))
    with pytest.raises(OutputSpaceError, match=r"only 10\.0 MiB free .* lower --min-free-mb"):
        guard.check_before_start()


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_bad_margins_are_refused(value):
    with pytest.raises(ValueError, match="--min-free-mb"):
        OutputSpec(min_free_mb=value)


def test_full_disk_errnos_are_recognised():
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(OSError("no errno"))


# --- the pipeline keeps what it wrote -----------------------------------------------------------


def test_pipeline_stops_at_the_margin_and_finalises_every_output(tmp_path):
    out, stats, labels = tmp_path / "o.avi", tmp_path / "s.jsonl", tmp_path / "labels"
    sinks = [
        OverlayVideoSink(out, 25.0, TABLE, 0.5, "MJPG"),
        LabelPngSink(labels, TABLE),
        JsonLinesSink(stats, ("a", "b", "c", "d")),
    ]
    guard = SpaceGuard([tmp_path], 2 * MIB, interval_s=0.0, free=FakeDisk(10.0, per_check_mib=1.0))
    with pytest.raises(OutputSpaceError) as err:
        run_pipeline(_frames(30), False, _Stages(), sinks, guard=guard)
    written = [json.loads(line)["frame"] for line in stats.read_text().splitlines()]
    assert written == list(range(8))  # free 9, 8, ... 2 MiB: 8 frames, then 1 MiB < 2 MiB
    assert err.value.summary.frames == 8 and "stopped after 8 frames" in str(err.value)
    assert _count_frames(out) == 8
    assert len(list(labels.glob("*.png"))) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels", "o.avi", "s.jsonl"]  # no temps


class _FullDiskSink:
    """A FAKE sink on a disk that fills up at frame `full_at` (raises ENOSPC like a real write)."""

    path = Path("/fake/full.bin")

    def __init__(self, full_at: int):
        self.full_at, self.frames, self.closed = full_at, 0, False

    def write(self, result: Result) -> None:
        if result.index >= self.full_at:
            raise OSError(errno.ENOSPC, "No space left on device", "/fake/.full.tmp.bin")
        self.frames += 1

    def close(self) -> str:
        self.closed = True
        return f"fake ({self.frames})"

    def abort(self) -> None:
        raise AssertionError("a full disk must not throw the outputs away")


def test_enospc_in_a_sink_ends_the_run_like_the_margin(tmp_path):
    stats = tmp_path / "s.jsonl"
    full = _FullDiskSink(full_at=4)
    sinks = [JsonLinesSink(stats, ("a", "b", "c", "d")), full]
    with pytest.raises(OutputSpaceError, match=r"disk is full .* stopped after 4 frames") as err:
        run_pipeline(_frames(20), False, _Stages(), sinks)
    assert full.closed and err.value.summary.frames == 4
    # The JSON sink wrote frame 4 before the fake sink failed on it; it is kept (5 lines), whole.
    assert [json.loads(line)["frame"] for line in stats.read_text().splitlines()] == list(range(5))


class _ShortWriteFile:
    """A FAKE unbuffered file on a disk with `room` bytes left: takes what fits, then ENOSPC."""

    def __init__(self, real, room: int):
        self.real, self.room = real, room

    def write(self, data) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        part = bytes(data[: self.room])
        self.room -= len(part)
        return self.real.write(part)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_json_lines_never_keep_a_half_line(tmp_path):
    path = tmp_path / "s.jsonl"
    sink = JsonLinesSink(path, ("a", "b", "c", "d"))
    sink.write(_result(0))
    sink.write(_result(1))
    size = sink._complete_bytes
    sink._file = _ShortWriteFile(sink._file, room=size // 4)  # room for part of one more line
    with pytest.raises(OSError) as err:
        sink.write(_result(2))
    assert err.value.errno == errno.ENOSPC
    sink._file = sink._file.real  # space freed: the next line follows the last whole one
    sink.write(_result(3))
    sink.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == [0, 1, 3]


def test_label_png_cut_off_by_a_full_disk_is_removed(tmp_path, monkeypatch):
    sink = LabelPngSink(tmp_path / "labels", TABLE)
    sink.write(_result(0))
    real_write = Path.write_bytes

    def full_disk(self, data):
        real_write(self, data[:10])  # part of the PNG reaches the disk
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OSError):
        sink.write(_result(1))
    monkeypatch.undo()
    sink.close()
    assert [p.name for p in (tmp_path / "labels").glob("*.png")] == ["000000.png"]


# --- the real CLI on a real, small filesystem -------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    with small_tmpfs(tmp_path, "3m") as mount:
        yield mount


def _scaseg_run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *argv],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    )  # fmt: skip


def _noisy_video(path: Path, frames: int) -> Path:
    """Random pixels: every frame costs real bytes in every output, so the disk fills fast."""
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (320, 240))
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (240, 320, 3), np.uint8))
    writer.release()
    return path


def _fill(tmp_path, disk: Path, model: Path, min_free_mb: str):
    """scaseg-run of 200 noisy frames into `disk` (MJPG video + JSON lines); it must end with
    exit 1, no traceback and one error line, which is returned with the result."""
    video = _noisy_video(tmp_path / "noise.avi", 200)
    result = _scaseg_run(
        str(video), "--model", str(model), "--out", str(disk / "out.avi"), "--codec", "MJPG",
        "--jsonl", str(disk / "s.jsonl"), "--min-free-mb", min_free_mb,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    return result, errors[0]


@pytest.mark.slow
def test_scaseg_run_stops_at_the_margin_on_a_real_small_disk(tmp_path, small_disk, plain_model):
    result, error = _fill(tmp_path, small_disk, plain_model, min_free_mb="1")
    assert "left on the disk of" in error, result.stderr
    lines = (small_disk / "s.jsonl").read_text().splitlines()
    assert 0 < len(lines) < 200
    assert _count_frames(small_disk / "out.avi") == len(lines)  # playable, every frame written
    assert sorted(p.name for p in small_disk.iterdir()) == ["out.avi", "s.jsonl"]


@pytest.mark.slow
def test_scaseg_run_on_a_disk_that_fills_keeps_whole_lines(tmp_path, small_disk, plain_model):
    """No margin: the disk really fills. JSON lines stay whole; the run ends with exit 1 and one
    error line; a video whose index could not be written is reported, not silently passed."""
    result, error = _fill(tmp_path, small_disk, plain_model, min_free_mb="0")
    assert "output disk is full" in error, result.stderr
    for line in (small_disk / "s.jsonl").read_text().splitlines():
        json.loads(line)  # every line whole
    frames = _count_frames(small_disk / "out.avi") if (small_disk / "out.avi").exists() else 0
    if frames == 0:
        assert "cannot read it back" in result.stderr or "not finalised" in error
