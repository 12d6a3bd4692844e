"""The types every frame source shares: `Frame` (one frame and where it sits in the output),
`SourceInfo` (what a source is and what it reports) and `SourceError` (a source that does not exist
or cannot be opened; its message ends with SOURCE_HELP, the list of what a source can be). They
live here so that runtime.io.sources (images, open_source) and runtime.io.capture (video files, cameras,
streams) both use them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.errors import UserInputError

# How every command names generated data as a source. For --calib-data/--val-data these are
# street scenes from the scene generator (the scenes package, build side only); scaseg-profile's
# --source generated is a test-pattern video the runtime makes itself.
GENERATED = "generated"

SOURCE_HELP = (
    "give a video file, an image file/folder/glob, a camera index or /dev/videoN, an rtsp:// or "
    "http:// URL, a GStreamer pipeline ending in appsink, or csi://N"
)


class SourceError(UserInputError):
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
    time_s: float = 0.0  # wall clock (time.time()) when it was read from the source
    pts_ms: float | None = None  # its position in a video file; None for images and live sources
