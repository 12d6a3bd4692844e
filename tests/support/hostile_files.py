"""Files a careless or hostile user can hand scaseg: image headers that claim huge sizes, videos
whose header claims millions of frames, FIFOs, names that are not UTF-8, symlink cycles."""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NON_UTF8 = b"fr\xe9me"  # Latin-1 "frame" with an accent: not valid UTF-8


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A small PNG whose IHDR claims width x height (colour type 2 RGB, 6 RGBA, 0 gray); the
    pixel data is a few zero rows, so decoding it would allocate the claimed size and fail."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\0" * 256)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def non_utf8_path(folder: Path, suffix: str) -> Path:
    """folder/fr\\xe9me<suffix> as Python sees it (a str with a surrogate escape); the caller
    writes the file."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + NON_UTF8 + suffix.encode()))


def write_png(path: Path, frame: np.ndarray) -> Path:
    """cv2.imwrite for any name: encoded in memory, written by Python (OpenCV crashes on names
    that are not UTF-8)."""
    ok, data = cv2.imencode(".png", frame)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def lying_mkv(path: Path, frames: int, claimed: int, fps: float = 25.0) -> Path:
    """A real .mkv of `frames` frames (frame i filled with 10*i) whose header claims `claimed`:
    its Segment Duration is patched, and OpenCV's FFmpeg backend counts duration x fps."""
    tmp = path.with_name("unpatched.mkv")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((48, 64, 3), (10 * i) % 256, np.uint8))
    writer.release()
    data = bytearray(tmp.read_bytes())
    tmp.unlink()
    at = data.find(b"\x44\x89\x88")  # Duration element: id 0x4489, an 8-byte float (ms)
    assert at > 0, "no 8-byte Duration element in the .mkv OpenCV wrote"
    data[at + 3 : at + 11] = struct.pack(">d", claimed / fps * 1000.0)
    path.write_bytes(bytes(data))
    return path


def make_fifo(path: Path, unblock_after_s: float = 20.0) -> Path:
    """A FIFO at `path`. Should anything open it for reading (which blocks until a writer
    comes), a background writer opens and closes it after `unblock_after_s`, so a reader that
    was not supposed to open it fails instead of hanging the test run."""
    os.mkfifo(path)

    def unblock() -> None:
        time.sleep(unblock_after_s)
        with contextlib.suppress(OSError):  # ENXIO: no reader is waiting, as it should be
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=unblock, daemon=True).start()
    return path
