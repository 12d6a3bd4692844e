"""Frame sources: video files, images (file, folder, glob), cameras, network streams, GStreamer.

`open_source(spec)` reads the spec the way a user types it on the command line:
  clip.mp4 | photo.jpg | frames/ | 'frames/*.png' | 0 | /dev/video0 | rtsp://... | http://...
  | 'v4l2src ! ... ! appsink' (GStreamer) | csi://0 (Jetson CSI camera via nvarguscamerasrc)
Every frame comes out as (H,W,3) uint8 BGR whatever the file held (gray, BGRA, 16-bit).
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from runtime.preprocess import as_bgr8

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "udp", "tcp", "srt")
STREAM_SCHEMES = (*LIVE_SCHEMES, "http", "https")
SOURCE_HELP = (
    "give a video file, an image file/folder/glob, a camera index or /dev/videoN, an rtsp:// or "
    "http:// URL, a GStreamer pipeline ending in appsink, or csi://N"
)


class SourceError(ValueError):
    """A source that does not exist or cannot be opened; the message says what to give instead."""


@dataclass(frozen=True)
class SourceInfo:
    spec: str
    kind: str  # video | images | camera | stream | gstreamer | csi
    live: bool  # frames arrive in real time: stale ones are dropped rather than queued
    fps: float  # 0.0 when unknown
    frame_count: int | None  # None when unknown or endless
    size_wh: tuple[int, int] | None


@dataclass(frozen=True)
class Frame:
    index: int  # position in the output, counting from 0 across --loop passes
    frame_bgr: np.ndarray  # (H,W,3) uint8
    name: str  # image file stem, or the zero-padded index for video


def has_gstreamer() -> bool:
    info = cv2.getBuildInformation()
    return re.search(r"GStreamer:\s+YES", info) is not None


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _image_paths(spec: str) -> list[Path] | None:
    """Images named by a folder or a glob, sorted naturally; None if spec is neither."""
    if os.path.isdir(spec):
        paths = [p for p in Path(spec).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        what = f"folder {spec}"
    elif any(ch in spec for ch in "*?["):
        paths = [Path(p) for p in glob.glob(spec) if Path(p).suffix.lower() in IMAGE_SUFFIXES]
        what = f"glob {spec!r}"
    else:
        return None
    if not paths:
        raise SourceError(f"{what} holds no images ({', '.join(IMAGE_SUFFIXES)}); {SOURCE_HELP}")
    return sorted(paths, key=_natural_key)


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
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise SourceError(f"cannot read image {path}: not an image OpenCV can decode")
        return as_bgr8(image)

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            for path in self.paths:
                yield Frame(index, self._read(path), path.stem)
                index += 1
            if not self.loop:
                return

    def close(self) -> None:
        pass


class CaptureSource:
    """Anything cv2.VideoCapture opens: files, cameras, URLs, GStreamer pipelines."""

    def __init__(
        self,
        spec: str,
        kind: str,
        live: bool | None,  # None: live unless the stream reports a length (http file vs camera)
        open_capture: Callable[[], cv2.VideoCapture],
        loop: bool = False,
    ):
        self._open = open_capture
        self._cap = open_capture()
        if not self._cap.isOpened():
            raise SourceError(f"cannot open {kind} {spec}: OpenCV could not read it; {SOURCE_HELP}")
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        live = count <= 0 if live is None else live
        if loop and live:
            warnings.warn(f"--loop has no effect on live source {spec}", stacklevel=3)
        self.loop = loop and not live  # a live source has no end to loop from
        size = (
            int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        self.info = SourceInfo(
            spec,
            kind,
            live,
            float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0),
            count if count > 0 and not live and not self.loop else None,
            size if min(size) > 0 else None,
        )

    def frames(self) -> Iterator[Frame]:
        index = this_pass = 0
        while True:
            ok, frame = self._cap.read()
            if not ok:
                if index == 0 and not self.info.live:
                    raise SourceError(
                        f"{self.info.kind} {self.info.spec} has no frames OpenCV can decode; "
                        "give a complete video file (is it empty, truncated or not a video?)"
                    )
                if not self.loop or this_pass == 0:
                    return
                self._cap.release()
                self._cap = self._open()  # reopening is more reliable than seeking to frame 0
                this_pass = 0
                continue
            yield Frame(index, as_bgr8(frame), f"{index:06d}")
            index += 1
            this_pass += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def csi_pipeline(spec: str) -> str:
    """csi://N[?width=W&height=H&fps=F] -> a Jetson nvarguscamerasrc pipeline ending in BGR appsink."""
    url = urlparse(spec)
    sensor = url.netloc or "0"
    if not sensor.isdigit():
        raise SourceError(f"{spec}: expected csi://N with a sensor number, e.g. csi://0")
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    width, height, fps = (
        int(query.get(k, d)) for k, d in (("width", 1280), ("height", 720), ("fps", 30))
    )
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, "
        f"height={height}, framerate={fps}/1 ! nvvidconv ! video/x-raw, format=BGRx ! "
        "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1"
    )


def _require_gstreamer(spec: str) -> None:
    if not has_gstreamer():
        raise SourceError(
            f"{spec!r} needs OpenCV built with GStreamer, and this OpenCV has none (pip's "
            "opencv-python never does); on a Jetson use JetPack's python3-opencv, or give a "
            "camera index, /dev/videoN or a video file"
        )


def _camera(spec: str, device: int | str) -> cv2.VideoCapture:
    backend = cv2.CAP_V4L2 if isinstance(device, str) else cv2.CAP_ANY
    cap = cv2.VideoCapture(device, backend)
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue adds latency; we keep our own
    return cap


def open_source(spec: str, loop: bool = False) -> ImageSource | CaptureSource:
    """Open a source from its command-line spelling (see the module docstring)."""
    spec = str(spec)
    scheme = urlparse(spec).scheme.lower() if "://" in spec else ""
    if scheme == "csi":
        _require_gstreamer(spec)
        pipeline = csi_pipeline(spec)
        return CaptureSource(
            spec, "csi", True, lambda: cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
        )
    if scheme in STREAM_SCHEMES:
        live = True if scheme in LIVE_SCHEMES else None
        return CaptureSource(
            spec, "stream", live, lambda: cv2.VideoCapture(spec, cv2.CAP_FFMPEG), loop
        )
    if "!" in spec and "appsink" in spec:
        _require_gstreamer(spec)
        return CaptureSource(
            spec, "gstreamer", True, lambda: cv2.VideoCapture(spec, cv2.CAP_GSTREAMER)
        )
    if spec.isdigit():
        return CaptureSource(spec, "camera", True, lambda: _camera(spec, int(spec)))
    if re.fullmatch(r"/dev/video\d+", spec):
        if not os.path.exists(spec):
            raise SourceError(f"camera {spec} does not exist; list cameras with `ls /dev/video*`")
        return CaptureSource(spec, "camera", True, lambda: _camera(spec, spec))
    paths = _image_paths(spec)
    if paths is not None:
        return ImageSource(spec, paths, loop)
    if not os.path.exists(spec):
        raise SourceError(f"source {spec} not found; {SOURCE_HELP}")
    if Path(spec).suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(spec, [Path(spec)], loop)
    return CaptureSource(spec, "video", False, lambda: cv2.VideoCapture(spec), loop)
