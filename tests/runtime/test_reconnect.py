"""Live sources that drop: bounded reconnect attempts with backoff (--reconnect), and a run that
ends with its outputs finalised when the source is gone.

Unit tests drive CaptureSource with FakeDroppingCapture (a FAKE cv2.VideoCapture) and a
recorded wait; the slow tests run the real scaseg-run against a real MJPEG HTTP stream (what IP
cameras serve, read by OpenCV's FFmpeg as a live source) whose server drops mid-frame.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.classes import palette_bgr
from runtime.io.capture import CaptureSource, Reconnect, SourceLostError
from runtime.io.sinks import JsonLinesSink
from runtime.io.sources import open_source
from runtime.io.video_sinks import OverlayVideoSink
from runtime.pipeline import run_pipeline
from scenes.classes import DEMO_PALETTE_RGB
from tests.support.mjpeg import REPO, MjpegServer, run_cli

SPEC = "rtsp://cam.local/fake"


class FakeDroppingCapture:
    """A FAKE cv2.VideoCapture of a live stream: `frames` frames, then read() fails (the stream
    dropped). frames=None is a reopening that fails (isOpened() is False)."""

    def __init__(self, frames: int | None):
        self.left = frames or 0
        self.opened = frames is not None
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 (cv2's name)
        return self.opened

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_WIDTH: 8, cv2.CAP_PROP_FRAME_HEIGHT: 6}.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.opened or self.left == 0:
            return False, None
        self.left -= 1
        return True, np.zeros((6, 8, 3), np.uint8)

    def release(self) -> None:
        self.released = True


class FakeNetwork:
    """Hands out FakeDroppingCaptures in script order: each entry is how many frames that
    (re)opening delivers, None a reopening that fails; past the script every opening fails."""

    def __init__(self, *script: int | None):
        self.script = list(script)
        self.opened: list[FakeDroppingCapture] = []

    def open(self) -> FakeDroppingCapture:
        cap = FakeDroppingCapture(self.script.pop(0) if self.script else None)
        self.opened.append(cap)
        return cap


class RecordedWait:
    """Stands in for the backoff sleep: records each delay and returns at once."""

    def __init__(self):
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> bool:
        self.delays.append(seconds)
        return False  # not interrupted


def _source(network: FakeNetwork, reconnect: Reconnect | None, **kw) -> CaptureSource:
    return CaptureSource(SPEC, "stream", True, network.open, reconnect=reconnect, **kw)


def _collect(source: CaptureSource) -> tuple[list[int], list[str], BaseException | None]:
    """Frame indices, warning messages and the error (if any) of iterating the source."""
    indices, error = [], None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for frame in source.frames():
                indices.append(frame.index)
        except SourceLostError as err:
            error = err
    return indices, [str(w.message) for w in caught], error


# --- the backoff policy -------------------------------------------------------------------------


def test_delays_double_and_are_capped():
    policy = Reconnect(attempts=7, delay_s=1.0, max_delay_s=30.0)
    assert [policy.delay(k) for k in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert Reconnect(3, 0.2).delay(3) == pytest.approx(0.8)
    assert Reconnect(2, 45.0).delay(2) == 45.0  # a first delay past the cap is kept
    assert Reconnect(2000, 1.0).delay(2000) == 30.0  # no overflow however many attempts


@pytest.mark.parametrize(
    ("attempts", "delay", "match"),
    [
        (-1, 1.0, r"--reconnect must be >= 0, got -1"),
        (1.5, 1.0, r"--reconnect takes a whole number"),
        (2, 0.0, r"--reconnect-delay must be a number of seconds > 0"),
        (2, -1.0, r"--reconnect-delay must be a number of seconds > 0"),
        (2, float("nan"), r"--reconnect-delay must be a number of seconds > 0"),
    ],
)
def test_bad_reconnect_values_say_what_is_allowed(attempts, delay, match):
    with pytest.raises(ValueError, match=match):
        Reconnect(attempts, delay)


# --- CaptureSource with FakeDroppingCapture -----------------------------------------------------


def test_attempts_are_bounded_and_then_the_source_is_lost():
    network, wait = FakeNetwork(5), RecordedWait()
    indices, messages, error = _collect(_source(network, Reconnect(3, 1.0), wait=wait))
    assert indices == [0, 1, 2, 3, 4]
    assert wait.delays == [1, 2, 4]
    assert [m for m in messages if "reconnecting" in m] == [
        f"stream {SPEC} dropped after 5 frames; reconnecting (attempt {k}/3 in {d} s)"
        for k, d in ((1, 1), (2, 2), (3, 4))
    ]
    assert isinstance(error, SourceLostError)
    assert str(error) == (
        f"stream {SPEC} lost after 3 reconnect attempts (5 frames read); check the camera or "
        "stream, or raise --reconnect"
    )
    assert all(cap.released for cap in network.opened)  # nothing left open


def test_a_frame_after_reconnecting_resets_the_count_and_indices_continue():
    # 3 frames | drop, reopening fails | reopened: 2 frames | drop | reopened: 4 frames | drop...
    network, wait = FakeNetwork(3, None, 2, 4), RecordedWait()
    indices, messages, error = _collect(_source(network, Reconnect(2, 1.0), wait=wait))
    assert indices == list(range(9))  # no gap, no restart from 0
    assert wait.delays == [1, 2, 1, 1, 2]  # back to 1 s after each successful reconnect
    assert f"stream {SPEC} reconnected (attempt 2/2); continuing at frame 3" in messages
    assert f"stream {SPEC} reconnected (attempt 1/2); continuing at frame 5" in messages
    assert "lost after 2 reconnect attempts (9 frames read)" in str(error)


def test_without_reconnect_a_drop_ends_the_stream_with_a_hint():
    network, wait = FakeNetwork(4, 10), RecordedWait()
    indices, messages, error = _collect(_source(network, None, wait=wait))
    assert (indices, wait.delays, error) == ([0, 1, 2, 3], [], None)
    assert messages == [
        f"stream {SPEC} ended after 4 frames; if it dropped, --reconnect N reopens it up to N times"
    ]
    assert len(network.opened) == 1


def test_a_live_source_that_never_delivers_is_not_retried():
    network, wait = FakeNetwork(0), RecordedWait()
    indices, messages, error = _collect(_source(network, Reconnect(3), wait=wait))
    assert (indices, messages, error, wait.delays) == ([], [], None, [])


@pytest.mark.parametrize("how", ["stop event", "close()"])
def test_stop_or_close_ends_a_backoff_wait_promptly(how):
    stop = threading.Event()
    source = _source(FakeNetwork(3), Reconnect(3, 30.0), stop=stop)  # the real wait: 30 s
    interrupt = stop.set if how == "stop event" else source.close
    timer = threading.Timer(0.2, interrupt)
    started = time.monotonic()
    timer.start()
    indices, messages, error = _collect(source)
    elapsed = time.monotonic() - started
    timer.join()
    assert indices == [0, 1, 2] and error is None
    assert any("attempt 1/3 in 30 s" in m for m in messages)
    assert elapsed < 2.0, f"the 30 s backoff was not interrupted ({elapsed:.1f} s)"


def test_reconnect_on_files_and_images_warns_that_it_has_no_effect(small_video, tmp_path):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((6, 8, 3), np.uint8))
    for spec, kind in ((small_video, "video"), (image, "image"), (tmp_path / "*.png", "images")):
        with pytest.warns(UserWarning, match=rf"--reconnect has no effect on {kind} "):
            source = open_source(str(spec), reconnect=Reconnect(2))
        assert len(list(source.frames())) >= 1
        source.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at the default (off)
        open_source(str(small_video), reconnect=Reconnect()).close()


# --- the pipeline keeps the frames of a lost source -------------------------------------------


class _Stages:
    def prepare(self, frame_bgr):
        return frame_bgr[None]

    def infer(self, batch):
        return batch

    def postprocess(self, output, frame_hw):
        return (output[0, ..., 0] // 64).astype(np.uint8)


def test_pipeline_finalises_outputs_then_raises_source_lost(tmp_path):
    source = _source(FakeNetwork(6, None), Reconnect(1, 0.01))
    out, stats = tmp_path / "o.avi", tmp_path / "s.jsonl"
    sinks = [
        OverlayVideoSink(out, 25.0, palette_bgr(DEMO_PALETTE_RGB, num_classes=4), 0.5, "MJPG"),
        JsonLinesSink(stats, ("a", "b", "c", "d")),
    ]
    with pytest.warns(UserWarning, match="reconnecting"), pytest.raises(SourceLostError) as lost:
        run_pipeline(source.frames(), True, _Stages(), sinks)
    written = [json.loads(line)["frame"] for line in stats.read_text().splitlines()]
    assert lost.value.summary.frames == len(written)  # the CLI prints this summary
    assert written and written == sorted(written) and written[-1] == 5  # the last one is kept
    cap, count = cv2.VideoCapture(str(out)), 0
    while cap.read()[0]:
        count += 1
    assert count == len(written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.avi", "s.jsonl"]  # no temp files


# --- the real CLI against a real MJPEG HTTP stream --------------------------------------------


def _outputs(tmp_path: Path) -> tuple[list[int], int]:
    """(frame indices in s.jsonl, frames that decode from o.avi)."""
    indices = [
        json.loads(line)["frame"] for line in (tmp_path / "s.jsonl").read_text().splitlines()
    ]
    cap, count = cv2.VideoCapture(str(tmp_path / "o.avi")), 0
    while cap.read()[0]:
        count += 1
    return indices, count


def _summary_frames(stdout: str) -> int:
    return int(re.search(r"done: (\d+) frames", stdout).group(1))


@pytest.fixture
def mjpeg_server():
    servers: list[MjpegServer] = []

    def make(drop_after: int, back_after_s: float | None, stall: bool = False) -> MjpegServer:
        servers.append(MjpegServer(drop_after, back_after_s, stall=stall).start())
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.mark.slow
def test_mjpeg_stream_reconnects_after_the_server_comes_back(tmp_path, plain_model, mjpeg_server):
    server = mjpeg_server(drop_after=25, back_after_s=0.3)
    result = run_cli(
        [server.url, "--model", str(plain_model), "--out", "o.avi", "--jsonl", "s.jsonl",
         "--reconnect", "3", "--reconnect-delay", "0.2", "--max-frames", "60"],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert server.dropped.is_set()
    assert re.search(
        rf"warning: stream {re.escape(server.url)} dropped after 25 frames; reconnecting "
        r"\(attempt 1/3 in 0.2 s\)",
        result.stderr,
    ), result.stderr
    assert re.search(r"reconnected \(attempt [123]/3\); continuing at frame 25", result.stderr)
    assert "Traceback" not in result.stderr
    indices, decoded = _outputs(tmp_path)
    assert indices == sorted(set(indices)) and indices[-1] == 59  # numbering went on past 25
    assert decoded == len(indices) == _summary_frames(result.stdout)


@pytest.mark.slow
def test_mjpeg_stream_drop_without_reconnect_ends_cleanly(tmp_path, plain_model, mjpeg_server):
    server = mjpeg_server(drop_after=25, back_after_s=None)
    result = run_cli(
        [server.url, "--model", str(plain_model), "--out", "o.avi", "--jsonl", "s.jsonl"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(
        rf"warning: stream {re.escape(server.url)} ended after 25 frames; if it dropped, "
        "--reconnect N reopens it",
        result.stderr,
    ), result.stderr
    assert "Traceback" not in result.stderr
    indices, decoded = _outputs(tmp_path)
    assert indices[-1] == 24 and decoded == len(indices) == _summary_frames(result.stdout)


@pytest.mark.slow
def test_mjpeg_stream_lost_exits_1_with_its_frames_written(tmp_path, plain_model, mjpeg_server):
    server = mjpeg_server(drop_after=25, back_after_s=None)
    result = run_cli(
        [server.url, "--model", str(plain_model), "--out", "o.avi", "--jsonl", "s.jsonl",
         "--reconnect", "2", "--reconnect-delay", "0.1"],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [
        f"scaseg-run: error: stream {server.url} lost after 2 reconnect attempts (25 frames "
        "read); check the camera or stream, or raise --reconnect"
    ]
    assert result.stderr.count("reconnecting (attempt") == 2
    assert "Traceback" not in result.stderr
    indices, decoded = _outputs(tmp_path)
    assert indices[-1] == 24 and decoded == len(indices) >= 1
    assert _summary_frames(result.stdout) == decoded  # the summary still names what was written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.avi", "s.jsonl"]


@pytest.mark.slow
def test_ctrl_c_during_a_backoff_wait_ends_the_run_at_once(tmp_path, plain_model, mjpeg_server):
    server = mjpeg_server(drop_after=25, back_after_s=None)
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", server.url, "--model", str(plain_model),
         "--out", "o.avi", "--jsonl", "s.jsonl", "--reconnect", "3", "--reconnect-delay", "30"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while "reconnecting (attempt 1/3 in 30 s)" not in (line := proc.stderr.readline()):
        assert line and time.monotonic() < deadline, "the run never started its backoff wait"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    assert time.monotonic() - sent < 5.0  # not the 30 s of the wait
    assert proc.returncode == 130, stderr
    reported = int(re.search(r"interrupted \(SIGINT\) after (\d+) frames", stdout).group(1))
    indices, decoded = _outputs(tmp_path)
    assert indices[-1] == 24 and decoded == len(indices) == reported
    assert "Traceback" not in stderr


def test_cli_rejects_bad_reconnect_values(tmp_path, plain_model, small_video):
    from typer.testing import CliRunner

    from runtime.cli import app

    for flags, match in (
        (["--reconnect", "-1"], "--reconnect must be >= 0"),
        (["--reconnect-delay", "0"], "--reconnect-delay must be a number of seconds > 0"),
    ):
        result = CliRunner().invoke(app, [str(small_video), "--model", str(plain_model), *flags])
        assert result.exit_code == 2, result.output
        assert match in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_a_stalled_stream_reads_as_dropped_after_stream_timeout(
    tmp_path, plain_model, mjpeg_server
):
    """A camera that freezes with its connection open gives no error; --stream-timeout turns the
    silence into a drop (FFmpeg alone would wait 30 s per read)."""
    server = mjpeg_server(drop_after=20, back_after_s=None, stall=True)
    t0 = time.monotonic()
    result = run_cli(
        [server.url, "--model", str(plain_model), "--out", "o.avi", "--jsonl", "s.jsonl",
         "--stream-timeout", "1"],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # 1.7 s here; the default 10 s time-out (or FFmpeg's own 30 s) could not end this soon
    assert time.monotonic() - t0 < 8
    assert "ended after 20 frames" in result.stderr
    indices, decoded = _outputs(tmp_path)
    # a live source drops stale frames (while the model loads); the last one is always kept
    assert indices == sorted(indices) and indices[-1] == 19 and decoded == len(indices)


def test_stream_timeout_must_be_positive(tmp_path):
    from runtime.io.sources import open_source

    with pytest.raises(ValueError, match=r"--stream-timeout must be a number of seconds > 0"):
        open_source("http://127.0.0.1:9/x.mjpg", stream_timeout_s=0)
