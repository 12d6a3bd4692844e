"""Sources that cv2.VideoCapture reads: video files, cameras, network streams and GStreamer
pipelines (`CaptureSource`), with the openers for each (`open_camera`, `open_stream` with its FFmpeg
time-outs, `csi_pipeline` for Jetson CSI cameras, and the GStreamer check). A video file that ends
before the frame count in its header says so in a warning (a truncated file); a live source that
drops is reopened as `Reconnect` allows, with a growing wait between attempts, and raises
SourceLostError when none of them brings it back. runtime.io.sources.open_source picks the opener
from the spec a user types.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from runtime.budgets import check
from runtime.errors import BudgetError, RunError, UserInputError
from runtime.io.files import opencv_path
from runtime.io.source_types import SOURCE_HELP, Frame, SourceError, SourceInfo
from runtime.preprocess import as_bgr8
from runtime.text import shown

RECONNECT_MAX_DELAY_S = 30.0  # backoff cap between reconnect attempts
_POLL_S = 0.05  # how often a backoff wait looks at the stop event


class SourceLostError(RunError):
    """A live source dropped and did not come back within its reconnect attempts.

    Not a SourceError: the input was right, the camera or network failed (scaseg-run exit code
    1). runtime.pipeline ends the stream on it like on a normal end (every frame already inferred
    is written and the outputs are finalised) and then raises it, with `summary` set to the run's
    RunSummary so far.
    """

    summary: object | None = None


@dataclass(frozen=True)
class Reconnect:
    """How a live source is reopened after it drops: up to `attempts` times (0: never), waiting
    `delay_s` before the first attempt and twice as long before each next one, capped at
    `max_delay_s` (or `delay_s` if that is longer)."""

    attempts: int = 0
    delay_s: float = 1.0
    max_delay_s: float = RECONNECT_MAX_DELAY_S

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise UserInputError(
                f"--reconnect takes a whole number of attempts, got {self.attempts!r}"
            )
        if self.attempts < 0:
            raise UserInputError(
                f"--reconnect must be >= 0, got {self.attempts}: give the number of attempts to "
                "reopen a dropped live source (0 turns it off)"
            )
        for name, value in (("--reconnect-delay", self.delay_s), ("max_delay_s", self.max_delay_s)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise UserInputError(
                    f"{name} must be a number of seconds > 0, got {value!r}; pass e.g. 1.0"
                )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (counting from 1)."""
        doubled = self.delay_s * 2.0 ** min(max(attempt - 1, 0), 64)
        return min(doubled, max(self.max_delay_s, self.delay_s))


def has_gstreamer() -> bool:
    info = cv2.getBuildInformation()
    return re.search(r"GStreamer:\s+YES", info) is not None


def warn_reconnect_unused(spec: str, kind: str, reconnect: Reconnect | None) -> None:
    if reconnect is not None and reconnect.attempts:
        warnings.warn(
            f"--reconnect has no effect on {kind} {shown(spec)}: only live sources (cameras, streams) "
            "are reopened after they drop",
            stacklevel=3,
        )


class CaptureSource:
    """Anything cv2.VideoCapture opens: files, cameras, URLs, GStreamer pipelines.

    `reconnect` applies to live sources only; `stop` (the pipeline's stop event) and close() end
    a backoff wait early. `wait(seconds) -> interrupted` replaces that wait in tests.
    """

    def __init__(
        self,
        spec: str,
        kind: str,
        live: bool | None,  # None: live unless the stream reports a length (http file vs camera)
        open_capture: Callable[[], cv2.VideoCapture],
        loop: bool = False,
        reconnect: Reconnect | None = None,
        stop: threading.Event | None = None,
        wait: Callable[[float], bool] | None = None,
    ):
        opencv_path(spec, f"cannot open {kind}", SourceError)  # OpenCV crashes on such names
        self._open = open_capture
        self._cap = open_capture()
        if not self._cap.isOpened():
            raise SourceError(
                f"cannot open {kind} {shown(spec)}: OpenCV could not read it; {SOURCE_HELP}"
            )
        count, size = self._probe(spec, kind)
        live = count <= 0 if live is None else live
        if loop and live:
            warnings.warn(f"--loop has no effect on live source {shown(spec)}", stacklevel=3)
        if not live:
            warn_reconnect_unused(spec, kind, reconnect)
        self.loop = loop and not live  # a live source has no end to loop from
        self.reconnect = reconnect if live and reconnect is not None else Reconnect()
        self._expected = count if count > 0 and not live else None  # the header's frame count
        self._stop = stop or threading.Event()
        self._closed = threading.Event()
        self._wait = wait or self._wait_unless_stopped
        self.info = SourceInfo(
            spec,
            kind,
            live,
            float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0),
            count if count > 0 and not live and not self.loop else None,
            size,
        )

    def _probe(self, spec: str, kind: str) -> tuple[int, tuple[int, int] | None]:
        """The header's frame count (0: unknown, or not believable) and the frame size. A video
        file's frame size is checked against the pixel budget before its frames are decoded
        (FFmpeg has decoded only the few it probes while opening)."""
        count = header_frame_count(self._cap, spec if kind == "video" else None)
        size = _frame_size(self._cap)
        if kind == "video" and size is not None:
            w, h = size
            try:
                check("image_pixels", w * h, f"video {shown(spec)}: {w}x{h} frames")
            except BudgetError:
                self._release()
                raise
        return count, size

    def frames(self) -> Iterator[Frame]:
        index = this_pass = 0
        attempt = 0  # reconnect attempts since the last frame (live sources)
        what = f"{self.info.kind} {shown(self.info.spec)}"
        while True:
            ok, frame = self._read()
            if self._closed.is_set():
                return
            if ok:
                if attempt:
                    warnings.warn(
                        f"{what} reconnected (attempt {attempt}/{self.reconnect.attempts}); "
                        f"continuing at frame {index}",
                        stacklevel=2,
                    )
                    attempt = 0
                yield Frame(index, as_bgr8(frame), f"{index:06d}", time.time(), self._pts_ms())
                index += 1
                this_pass += 1
                continue
            if self.info.live:
                if index == 0 and attempt == 0:
                    return  # never delivered a frame: nothing dropped, nothing to reconnect
                if not self.reconnect.attempts:
                    warnings.warn(
                        f"{what} ended after {index} frames; if it dropped, --reconnect N "
                        "reopens it up to N times",
                        stacklevel=2,
                    )
                    return
                attempt += 1
                if attempt > self.reconnect.attempts:
                    self._release()
                    raise SourceLostError(
                        f"{what} lost after {self.reconnect.attempts} reconnect attempts "
                        f"({index} frames read); check the camera or stream, or raise --reconnect"
                    )
                delay = self.reconnect.delay(attempt)
                warnings.warn(
                    f"{what} dropped after {index} frames; reconnecting (attempt "
                    f"{attempt}/{self.reconnect.attempts} in {delay:g} s)",
                    stacklevel=2,
                )
                self._release()
                if self._wait(delay):
                    return  # stopped (Ctrl-C, SIGTERM, q) or closed during the wait
                self._reopen()  # a failed reopening reads nothing: the next attempt follows
                continue
            if index == 0:
                raise SourceError(
                    f"{what} has no frames OpenCV can decode; "
                    "give a complete video file (is it empty, truncated or not a video?)"
                )
            if index == this_pass and self._expected is not None and this_pass < self._expected:
                warnings.warn(
                    f"{what} ended after {this_pass} of the expected {self._expected} frames: "
                    f"is the file truncated? Keeping the {this_pass} frames that decoded",
                    stacklevel=2,
                )
            if not self.loop or this_pass == 0:
                return
            self._release()
            self._reopen()  # reopening is more reliable than seeking to frame 0
            this_pass = 0

    def _read(self) -> tuple[bool, np.ndarray | None]:
        cap = self._cap
        if cap is None or self._closed.is_set():
            return False, None
        return cap.read()

    def _pts_ms(self) -> float | None:
        """The position of the frame just read, in a file (a camera's clock means nothing)."""
        if self.info.live or self._cap is None:
            return None
        pts = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
        return pts if math.isfinite(pts) and pts >= 0 else None

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def _reopen(self) -> None:
        try:
            cap = self._open()
        except cv2.error:
            return  # counts as a failed attempt, like a capture that does not open
        if self._closed.is_set():  # closed while opening: do not leak the new capture
            cap.release()
            return
        self._cap = cap

    def _wait_unless_stopped(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as `stop` is set or the source is closed."""
        deadline = time.monotonic() + seconds
        while not (self._stop.is_set() or self._closed.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._stop.wait(min(left, _POLL_S))
        return True

    def close(self) -> None:
        self._closed.set()
        self._release()


def _frame_size(cap: cv2.VideoCapture) -> tuple[int, int] | None:
    """(width, height) the capture reports; None when unknown."""
    w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    if not (math.isfinite(w) and math.isfinite(h) and w >= 1 and h >= 1):
        return None
    return int(w), int(h)


def header_frame_count(cap: cv2.VideoCapture, path: str | None = None) -> int:
    """The frame count a video's header claims, 0 when unknown. The header can lie (a 3.6 kB
    .mkv can claim 60 million frames): for a file (`path`), a claim of more frames than the file
    has bytes cannot be true (every stored frame takes at least a byte) and counts as unknown,
    with a warning. Nothing may be sized by this number without a budget of its own."""
    claimed = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    if not (math.isfinite(claimed) and claimed >= 1):
        return 0
    count = int(claimed)
    if path is not None:
        size = os.stat(path).st_size
        if count > size:
            warnings.warn(
                f"video {shown(path)}: its header claims {count:,} frames, more than its "
                f"{size:,} bytes can hold; its length is treated as unknown (a damaged or "
                "crafted file?)",
                stacklevel=3,
            )
            return 0
    return count


def csi_pipeline(spec: str) -> str:
    """csi://N[?width=W&height=H&fps=F] -> a Jetson nvarguscamerasrc pipeline ending in BGR appsink."""
    url = urlparse(spec)
    sensor = url.netloc or "0"
    if not sensor.isdigit():
        raise SourceError(f"{shown(spec)}: expected csi://N with a sensor number, e.g. csi://0")
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    values = [str(query.get(k, d)) for k, d in (("width", 1280), ("height", 720), ("fps", 30))]
    if not all(v.isdigit() and 0 < int(v) <= 100_000 for v in values):
        raise SourceError(
            f"{shown(spec)}: width, height and fps must be whole numbers > 0, e.g. "
            "csi://0?width=1920&height=1080&fps=30"
        )
    width, height, fps = (int(v) for v in values)
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, "
        f"height={height}, framerate={fps}/1 ! nvvidconv ! video/x-raw, format=BGRx ! "
        "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1"
    )


def require_gstreamer(spec: str) -> None:
    if not has_gstreamer():
        raise SourceError(
            f"{spec!r} needs OpenCV built with GStreamer, and this OpenCV has none (pip's "
            "opencv-python never does); on a Jetson use JetPack's python3-opencv, or give a "
            "camera index, /dev/videoN or a video file"
        )


def open_camera(spec: str, device: int | str) -> cv2.VideoCapture:
    backend = cv2.CAP_V4L2 if isinstance(device, str) else cv2.CAP_ANY
    cap = cv2.VideoCapture(device, backend)
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue adds latency; we keep our own
    return cap


def open_stream(spec: str, timeout_s: float) -> cv2.VideoCapture:
    """A network stream through FFmpeg, with open and read time-outs.

    A stream that stalls with its connection still open (a frozen camera, a dead route) gives no
    error; FFmpeg's own default waits 30 s per read. With the time-out a stall reads as a drop,
    which --reconnect then handles.
    """
    ms = int(timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    return cv2.VideoCapture(spec, cv2.CAP_FFMPEG, params)
