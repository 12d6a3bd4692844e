"""A live source faster than the model: the real scaseg-run drops stale frames and stays current.

A real MJPEG stream over HTTP (what IP cameras serve, read by OpenCV's FFmpeg) carries its frame
number in the pixels; the model is SCASeg-T at 512x512 on whatever backend `auto` picks. Its speed
is measured first and the stream runs STREAM_SPEEDUP times faster, so at most one frame in four
can be segmented on a slow machine and a fast one alike. The overlay video (`--alpha 0`: the frames
themselves) tells which frames were: they must be in order, with gaps (stale frames dropped, not
queued), and the last one must be from the end of the stream, not from a backlog.
"""

from __future__ import annotations

import re
import time

import cv2
import numpy as np
import pytest

from tests.support.mjpeg import MjpegServer, run_cli

STREAM_SPEEDUP = 4.0  # stream FPS / measured model FPS
MAX_STREAM_FPS = 1000.0  # beyond this the test HTTP server and decoder become the bottleneck
FRAMES = 150
BITS = 8  # frame number as 8 stripes, black = 0, white = 1
SIZE_WH = (128, 96)


def coded_frame(number: int) -> np.ndarray:
    frame = np.zeros((SIZE_WH[1], SIZE_WH[0], 3), np.uint8)
    stripe = SIZE_WH[0] // BITS
    for bit in range(BITS):
        if number >> bit & 1:
            frame[:, bit * stripe : (bit + 1) * stripe] = 255
    return frame


def read_number(frame_bgr: np.ndarray) -> int:
    stripe = frame_bgr.shape[1] // BITS
    middle = frame_bgr[frame_bgr.shape[0] // 4 : -frame_bgr.shape[0] // 4]
    bits = [middle[:, b * stripe + 3 : (b + 1) * stripe - 3].mean() > 127 for b in range(BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


class CountingMjpegServer(MjpegServer):
    """MjpegServer whose frames carry their number; the stream ends after FRAMES frames."""

    def __init__(self, fps: float) -> None:
        super().__init__(drop_after=FRAMES, back_after_s=None, fps=fps)
        self._frames = [cv2.imencode(".jpg", coded_frame(i))[1].tobytes() for i in range(256)]


def test_frame_numbers_survive_the_round_trip():
    for number in (0, 1, 77, 149, 255):
        assert read_number(coded_frame(number)) == number


@pytest.fixture(scope="module")
def scaseg_t_512(tmp_path_factory):
    """SCASeg-T (the bundled weights) exported to FP32 ONNX at 512x512, no gate: speed only."""
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from export import cli as export_cli

    out = tmp_path_factory.mktemp("t512")
    result = CliRunner().invoke(
        export_cli.app,
        ["--out", str(out), "--no-verify", "--name", "t512"],
        prog_name="scaseg-export",
    )
    assert result.exit_code == 0, result.output
    return out / "t512.fp32.onnx"


def measure_model_fps(model, runs: int = 5) -> float:
    """Frames per second of the model on this machine, per frame as scaseg-run does it."""
    from runtime.backends import open_backend
    from runtime.segmenter import Segmenter

    with open_backend(model) as backend:
        segment = Segmenter(backend)
        frame_bgr = coded_frame(0)
        segment(frame_bgr)  # warm-up: first-run allocations and graph optimisation
        start = time.perf_counter()
        for _ in range(runs):
            segment(frame_bgr)
        return runs / (time.perf_counter() - start)


@pytest.mark.slow
def test_a_camera_faster_than_the_model_is_followed_not_queued(tmp_path, scaseg_t_512):
    stream_fps = STREAM_SPEEDUP * measure_model_fps(scaseg_t_512)
    if stream_fps > MAX_STREAM_FPS:
        pytest.skip(f"the model runs at {stream_fps / STREAM_SPEEDUP:.0f} FPS here: a stream "
                    f"{STREAM_SPEEDUP:g}x faster is beyond what the test server can serve")  # fmt: skip
    server = CountingMjpegServer(stream_fps).start()
    try:
        result = run_cli(
            [server.url, "--model", str(scaseg_t_512), "--out", "o.mp4", "--alpha", "0"], tmp_path
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    dropped = re.search(r"(\d+) stale live frames dropped", result.stdout)
    assert dropped is not None and int(dropped.group(1)) > 0, result.stdout

    cap, numbers = cv2.VideoCapture(str(tmp_path / "o.mp4")), []
    while (frame := cap.read())[0]:
        numbers.append(read_number(frame[1]))
    assert len(numbers) >= 5, numbers
    assert numbers == sorted(set(numbers)), numbers  # in order, none twice
    assert len(numbers) < FRAMES // 2, numbers  # most frames were dropped, not segmented late
    gaps = np.diff(numbers)
    assert np.median(gaps) >= 2, numbers  # skipping ahead, frame after frame
    # Current at the end: a queue would still be busy with frame ~len(numbers) here.
    assert numbers[-1] >= FRAMES - 1 - 20, numbers
