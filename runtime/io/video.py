"""Writing video and label images: codec fallback with a specific warning, atomic finalisation.

Every output goes to a temp file next to its final path and is renamed into place by `close()`,
which also runs on Ctrl-C / SIGTERM, so an interrupted run leaves a playable file holding every
frame written so far, and a crash never leaves a half-written file at the final path.
"""

from __future__ import annotations

import contextlib
import os
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from runtime.atomic import atomic_path, check_writable_target
from runtime.errors import RunError, UserInputError
from runtime.text import shown

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")
# Codecs that pip's opencv-python (FFmpeg without x264/openh264) can always write, per container.
FALLBACK_CODECS = {
    ".mp4": ("mp4v",),
    ".m4v": ("mp4v",),
    ".mov": ("mp4v",),
    ".avi": ("MJPG", "XVID"),
    ".mkv": ("FFV1", "mp4v"),
}


class CodecFallbackWarning(UserWarning):
    """The requested codec could not be opened; another one was used."""


class UnreadableVideoWarning(UserWarning):
    """A finalised video that OpenCV cannot read back (the disk filled up while it was written)."""


class OddSizeWarning(UserWarning):
    """Frames of odd width or height were padded to the even size video codecs store."""


class _DiscardError(Exception):
    """Thrown into atomic_path to drop the temp file instead of renaming it."""


def discard_atomic(atomic_cm: contextlib.AbstractContextManager) -> None:
    """Leave an entered runtime.atomic.atomic_path without renaming: its temp file is deleted."""
    atomic_cm.__exit__(_DiscardError, _DiscardError(), None)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    # FFmpeg prints its own errors (e.g. "Could not open codec h264_v4l2m2m") straight to fd 2
    # while OpenCV probes a codec; our CodecFallbackWarning says it better, once.
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_writer(
    path: Path, fps: float, size_wh: tuple[int, int], codec: str
) -> tuple[cv2.VideoWriter, str]:
    """A cv2.VideoWriter with `codec`, else the container's fallback (with a warning)."""
    suffix = path.suffix.lower()
    if len(codec) != 4:
        raise UserInputError(
            f"--codec must be a 4-character FourCC, got {codec!r}; pass one such as mp4v or avc1"
        )
    for candidate in (codec, *[c for c in FALLBACK_CODECS[suffix] if c != codec]):
        with _quiet_native_stderr():
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*candidate), fps, size_wh)
        if writer.isOpened():
            if candidate != codec:
                warnings.warn(
                    f"codec {codec} is not available in this OpenCV build (pip's opencv-python "
                    f"cannot encode H.264/avc1); wrote {suffix} with {candidate} instead. Re-encode "
                    "with ffmpeg, or use a system OpenCV with H.264, for browser-playable files",
                    CodecFallbackWarning,
                    stacklevel=3,
                )
            return writer, candidate
        writer.release()
    raise RunError(
        f"OpenCV cannot write {suffix} video with {codec} or any fallback; use an .avi output"
    )


class VideoOutput:
    """A video file written through a temp file and renamed into place by close()."""

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        size_wh: tuple[int, int],
        codec: str = "mp4v",
        overwrite: bool = False,
    ):
        self.path = check_writable_target(check_video_path(path), overwrite)
        self.size_wh = (int(size_wh[0]), int(size_wh[1]))
        # OpenCV's FFmpeg writer silently crops odd sizes (77x45 comes back as 76x44) for every
        # codec; padding by one repeated row/column keeps every pixel instead, and says so.
        self.stored_wh = (
            self.size_wh[0] + self.size_wh[0] % 2,
            self.size_wh[1] + self.size_wh[1] % 2,
        )
        if self.stored_wh != self.size_wh:
            warnings.warn(
                f"frame size {self.size_wh[0]}x{self.size_wh[1]} is odd and video codecs store even "
                f"sizes; {self.path.name} is {self.stored_wh[0]}x{self.stored_wh[1]} (last "
                "row/column repeated). Label PNGs keep the exact size",
                OddSizeWarning,
                stacklevel=3,
            )
        self.frames = 0
        self._atomic = atomic_path(self.path, overwrite)
        self._tmp = self._atomic.__enter__()
        try:
            self._writer, self.codec = open_writer(
                self._tmp, fps if fps > 0 else 25.0, self.stored_wh, codec
            )
        except BaseException as err:
            self._atomic.__exit__(type(err), err, err.__traceback__)
            raise

    def write(self, frame_bgr: np.ndarray) -> None:
        if (frame_bgr.shape[1], frame_bgr.shape[0]) != self.size_wh:
            # A video has one size; image folders may not (the sink warns once).
            frame_bgr = cv2.resize(frame_bgr, self.size_wh, interpolation=cv2.INTER_AREA)
        if self.stored_wh != self.size_wh:
            pad_w, pad_h = self.stored_wh[0] - self.size_wh[0], self.stored_wh[1] - self.size_wh[1]
            frame_bgr = cv2.copyMakeBorder(frame_bgr, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        self._writer.write(frame_bgr)
        self.frames += 1

    def close(self) -> bool:
        """Finalise and rename into place; with no frames, drop the temp file. True if written."""
        if self._writer is None:
            return self.frames > 0
        self._writer.release()
        self._writer = None
        if self.frames == 0:
            discard_atomic(self._atomic)
            return False
        self._atomic.__exit__(None, None, None)
        if not readable_video(self.path):
            # OpenCV's writer reports no errors: a full disk loses frames and the container's
            # index silently. The file is kept (it may still be partly recoverable).
            warnings.warn(
                f"{self.path} was finalised but OpenCV cannot read it back: frames or the "
                "container index were lost (disk full?); check free space and the file",
                UnreadableVideoWarning,
                stacklevel=2,
            )
        return True

    def abort(self) -> None:
        """Drop the temp file (used on a crash, never on an interrupt)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            discard_atomic(self._atomic)


def check_video_path(path: str | os.PathLike) -> Path:
    """Refuse a video output path OpenCV cannot take: a suffix it does not write, or a name
    that is not valid UTF-8 (OpenCV 4.x crashes the process on one instead of raising)."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserInputError(
            f"{shown(path)}: video output must end in one of {', '.join(VIDEO_SUFFIXES)}; "
            "choose one of those, or a folder for label PNGs"
        )
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError as err:
        raise UserInputError(
            f"{shown(path)}: OpenCV writes videos only to file names that are valid UTF-8, and "
            "this one is not; choose a UTF-8 name (label PNG folders and JSON lines take any "
            "name)"
        ) from err
    return path


def readable_video(path: Path) -> bool:
    """True if OpenCV opens `path` and decodes its first frame."""
    with _quiet_native_stderr():  # FFmpeg's own "moov atom not found"; the caller says it better
        cap = cv2.VideoCapture(str(path))
    try:
        return cap.isOpened() and cap.read()[0]
    finally:
        cap.release()


def encode_label_png(labels: np.ndarray, table_rgb: np.ndarray) -> bytes:
    """(H,W) uint8 class ids -> a palettised PNG (pixel value = class id, colours from the table).

    Written by hand (one IHDR/PLTE/IDAT) because OpenCV cannot write palette PNGs and Pillow is not
    a runtime dependency. Any PNG reader returns the class ids (Pillow: mode "P").
    """
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"palette PNGs need (H,W) uint8 labels, got {labels.shape} {labels.dtype}")
    h, w = labels.shape
    rows = np.zeros((h, w + 1), np.uint8)  # a leading 0 per row: PNG filter type "None"
    rows[:, 1:] = labels
    palette = np.zeros((256, 3), np.uint8)
    table = np.asarray(table_rgb, np.uint8)[:256]
    palette[: len(table)] = table

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)  # 8-bit, colour type 3 (palette)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"PLTE", palette.tobytes()),
            chunk(b"IDAT", zlib.compress(rows.tobytes(), 3)),
            chunk(b"IEND", b""),
        )
    )
