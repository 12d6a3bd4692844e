"""Video sinks: the overlay video and the colour label-map video, optionally cut into segments.

A file is opened on the first frame (image folders only know their size then) through
runtime.io.video.VideoOutput, which writes to a temp path and renames on close. With
`segment_frames`, the output is a numbered series (`overlay_00000.mp4`, `overlay_00001.mp4`, ...):
each file is finalised, and so playable, as soon as it is full. For runs that last days this
bounds the damage of a power cut to the open segment, lets finished files be collected while
the run goes on, and bounds the writer's memory: an MP4 keeps its sample index in memory until
the file is closed (~80 bytes per frame measured, about 200 MiB a day at 30 FPS).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from runtime.atomic import check_writable_target
from runtime.errors import UserInputError
from runtime.io.overlay import blend, colorize
from runtime.io.sink_types import Result
from runtime.io.video import VideoOutput, check_video_path
from runtime.text import shown


class SizeChangeWarning(UserWarning):
    """Frames of different sizes went into one video and were resized to the first one's size."""


def segment_path(path: Path, number: int) -> Path:
    """overlay.mp4, 3 -> overlay_00003.mp4"""
    return path.with_name(f"{path.stem}_{number:05d}{path.suffix}")


def existing_segments(path: Path) -> list[Path]:
    """Files of `path`'s segment series already in its folder."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(path.stem) + r"_\d{5}" + re.escape(path.suffix) + "$")
    return sorted(p for p in folder.iterdir() if pattern.match(p.name))


class _VideoSink:
    """One video, or a series of `segment_frames`-frame videos, of rendered results."""

    def __init__(
        self,
        path: Path,
        fps: float,
        codec: str,
        overwrite: bool,
        segment_frames: int | None = None,
    ):
        path = check_video_path(path)
        if segment_frames is not None and segment_frames < 1:
            raise UserInputError(f"segment length must be >= 1 frame, got {segment_frames}")
        self.path, self.segment_frames = path, segment_frames
        # Fail before the run, not at frame 1 (or at the 40th segment).
        check_writable_target(self._path_for(0), overwrite)
        if segment_frames is not None and not overwrite and (old := existing_segments(path)):
            raise FileExistsError(
                f"{old[0]} and {len(old) - 1} more segment(s) of {path.name} already exist; "
                "pass overwrite=True to replace them, or choose another output path"
            )
        self.fps, self.codec, self.overwrite = fps, codec, overwrite
        self.output: VideoOutput | None = None
        self._finished: list[tuple[Path, int]] = []  # closed segments: (path, frames)
        self._warned_size = False

    def _path_for(self, number: int) -> Path:
        return self.path if self.segment_frames is None else segment_path(self.path, number)

    def _write_image(self, image_bgr: np.ndarray) -> None:
        size_wh = (image_bgr.shape[1], image_bgr.shape[0])
        if self.output is not None and self.output.frames == self.segment_frames:
            self._close_segment()
        if self.output is None:
            target = self._path_for(len(self._finished))
            self.output = VideoOutput(target, self.fps, size_wh, self.codec, self.overwrite)
            self.codec = self.output.codec  # a fallback codec is warned about once, not per file
        elif size_wh != self.output.size_wh and not self._warned_size:
            self._warned_size = True
            warnings.warn(
                f"frames differ in size; {self.path.name} resizes them to the first frame's "
                f"{self.output.size_wh[0]}x{self.output.size_wh[1]}",
                SizeChangeWarning,
                stacklevel=2,
            )
        self.output.write(image_bgr)

    def _close_segment(self) -> None:
        output, self.output = self.output, None
        if output is not None and output.close():
            self._finished.append((output.path, output.frames))

    def close(self) -> str | None:
        self._close_segment()
        if not self._finished:
            return None
        frames = sum(n for _, n in self._finished)
        if self.segment_frames is None:
            return f"{shown(self.path)} ({frames} frames, {self.codec})"
        first, last = self._finished[0][0], self._finished[-1][0]
        files = len(self._finished)
        span = shown(first) if files == 1 else f"{shown(first)} ... {shown(last.name)}"
        return f"{span} ({frames} frames in {files} file(s), {self.codec})"

    def abort(self) -> None:
        """Throw away the open file; finished segments are complete videos and stay."""
        if self.output is not None:
            self.output.abort()
            self.output = None


class OverlayVideoSink(_VideoSink):
    def __init__(
        self,
        path: Path,
        fps: float,
        table_bgr: np.ndarray,
        alpha: float,
        codec: str = "mp4v",
        overwrite: bool = False,
        segment_frames: int | None = None,
    ):
        super().__init__(path, fps, codec, overwrite, segment_frames)
        if not 0.0 <= alpha <= 1.0:
            raise UserInputError(f"--alpha must be in [0, 1], got {alpha}")
        self.table_bgr, self.alpha = table_bgr, alpha

    def write(self, result: Result) -> None:
        self._write_image(blend(result.frame_bgr, result.labels, self.table_bgr, self.alpha))


class LabelVideoSink(_VideoSink):
    """Label maps in palette colours, for viewing: video codecs are lossy, so exact class ids
    belong in a PNG folder."""

    def __init__(
        self,
        path: Path,
        fps: float,
        table_bgr: np.ndarray,
        codec: str = "mp4v",
        overwrite: bool = False,
        segment_frames: int | None = None,
    ):
        # FFV1 is lossless and always available in .mkv/.avi; elsewhere honour --codec.
        if Path(path).suffix.lower() in (".mkv", ".avi") and codec == "mp4v":
            codec = "FFV1"
        super().__init__(path, fps, codec, overwrite, segment_frames)
        self.table_bgr = table_bgr

    def write(self, result: Result) -> None:
        self._write_image(colorize(result.labels, self.table_bgr))
