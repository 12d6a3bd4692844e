"""Frame sources: video files, images (file, folder, glob), cameras, network streams, GStreamer.

`open_source(spec)` reads the spec the way a user types it on the command line:
  clip.mp4 | photo.jpg | frames/ | 'frames/*.png' | 0 | /dev/video0 | rtsp://... | http://...
  | 'v4l2src ! ... ! appsink' (GStreamer) | csi://0 (Jetson CSI camera via nvarguscamerasrc)
Every frame comes out as (H,W,3) uint8 BGR whatever the file held (gray, BGRA, 16-bit).

A source that stops early ends the stream with the frames so far: a file that ends before the
frame count in its header says so in a warning (a truncated file). A live source (camera, stream)
that drops ends the stream too, unless `Reconnect(attempts=N)` lets it be reopened: each attempt
waits (1 s, 2 s, 4 s, ... at most 30 s, interrupted by `stop` or close()), a frame after a
reopening resets the count, and after N failed attempts frames() raises SourceLostError.

CaptureSource, Reconnect and the openers for videos, cameras and streams are in
runtime/io/capture.py; the types every source shares (Frame, SourceInfo, SourceError) are in
runtime/io/source_types.py.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from runtime.errors import UserInputError
from runtime.io.capture import (
    CaptureSource,
    Reconnect,
    csi_pipeline,
    open_camera,
    open_stream,
    require_gstreamer,
    warn_reconnect_unused,
)
from runtime.io.files import GLOB_CHARS, Listing, glob_files, list_files
from runtime.io.source_types import SOURCE_HELP, Frame, SourceError, SourceInfo
from runtime.preprocess import read_image
from runtime.sampling import natural_key
from runtime.text import shown

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "udp", "tcp", "srt")
STREAM_SCHEMES = (*LIVE_SCHEMES, "http", "https")
STREAM_TIMEOUT_S = 10.0  # network streams: longest wait to open, or for the next frame


def _image_paths(spec: str) -> list[Path] | None:
    """Images named by a folder or a glob, sorted naturally; None if spec is neither. Entries
    that are not regular files (FIFOs, sockets, devices) are skipped with a warning."""
    is_image = lambda name: name.lower().endswith(IMAGE_SUFFIXES)  # noqa: E731
    if os.path.isdir(spec):
        listing = list_files(spec, f"folder {shown(spec)}", keep=is_image)
        what = f"folder {shown(spec)}"
    elif any(ch in spec for ch in GLOB_CHARS):
        found = glob_files(spec, f"glob {shown(spec)!r}")
        listing = Listing(
            tuple(p for p in found.files if is_image(p.name)),
            tuple(s for s in found.skipped if is_image(s[0].name)),
        )
        what = f"glob {shown(spec)!r}"
    else:
        return None
    if listing.skipped:
        warnings.warn(f"{what}: {listing.warning()}", stacklevel=3)
    if not listing.files:
        raise SourceError(f"{what} holds no images ({', '.join(IMAGE_SUFFIXES)}); {SOURCE_HELP}")
    return sorted(listing.files, key=natural_key)


class ImageSource:
    """A list of image files, read one by one."""

    def __init__(self, spec: str, paths: list[Path], loop: bool = False):
        self.paths = paths
        self.loop = loop
        first = self._read(paths[0])
        self.info = SourceInfo(
            spec,
            "images",
            False,
            0.0,
            None if loop else len(paths),
            (first.shape[1], first.shape[0]),
        )

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        return read_image(path, SourceError)

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            for path in self.paths:
                yield Frame(index, self._read(path), path.stem, time.time())
                index += 1
            if not self.loop:
                return

    def close(self) -> None:
        pass


def open_source(
    spec: str,
    loop: bool = False,
    reconnect: Reconnect | None = None,
    stop: threading.Event | None = None,
    stream_timeout_s: float = STREAM_TIMEOUT_S,
) -> ImageSource | CaptureSource:
    """Open a source from its command-line spelling (see the module docstring).

    `reconnect` reopens a live source that drops (a warning on other sources); `stop` (the
    pipeline's stop event) cuts a reconnect wait short; `stream_timeout_s` bounds how long a
    network stream may take to open or to deliver the next frame."""
    if not (math.isfinite(stream_timeout_s) and stream_timeout_s > 0):
        raise UserInputError(
            f"--stream-timeout must be a number of seconds > 0, got {stream_timeout_s!r}; pass e.g. 10"
        )
    spec = str(spec)
    scheme = urlparse(spec).scheme.lower() if "://" in spec else ""
    live_opts = {"reconnect": reconnect, "stop": stop}
    if scheme == "csi":
        require_gstreamer(spec)
        pipeline = csi_pipeline(spec)
        return CaptureSource(
            spec, "csi", True, lambda: cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER), **live_opts
        )
    if scheme in STREAM_SCHEMES:
        live = True if scheme in LIVE_SCHEMES else None
        return CaptureSource(
            spec, "stream", live, lambda: open_stream(spec, stream_timeout_s), loop, **live_opts
        )
    if "!" in spec and "appsink" in spec:
        require_gstreamer(spec)
        return CaptureSource(
            spec, "gstreamer", True, lambda: cv2.VideoCapture(spec, cv2.CAP_GSTREAMER), **live_opts
        )
    if spec.isdigit():
        return CaptureSource(
            spec, "camera", True, lambda: open_camera(spec, int(spec)), **live_opts
        )
    if re.fullmatch(r"/dev/video\d+", spec):
        if not os.path.exists(spec):
            raise SourceError(f"camera {spec} does not exist; list cameras with `ls /dev/video*`")
        return CaptureSource(spec, "camera", True, lambda: open_camera(spec, spec), **live_opts)
    paths = _image_paths(spec)
    if paths is not None:
        warn_reconnect_unused(spec, "images", reconnect)
        return ImageSource(spec, paths, loop)
    if not os.path.exists(spec):
        raise SourceError(f"source {shown(spec)} not found; {SOURCE_HELP}")
    if Path(spec).suffix.lower() in IMAGE_SUFFIXES:
        warn_reconnect_unused(spec, "image", reconnect)
        return ImageSource(spec, [Path(spec)], loop)
    return CaptureSource(spec, "video", False, lambda: cv2.VideoCapture(spec), loop, reconnect)
