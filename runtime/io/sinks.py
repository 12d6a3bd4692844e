"""Where results go: overlay video, label video or palettised PNGs, a window, JSON lines.

Each sink writes through a temp path and finalises in `close()` (also after Ctrl-C), or throws
the temp away in `abort()` (after a crash). Sinks run on the pipeline's writer thread.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.atomic import atomic_path, check_writable_folder, current_umask, remove_durably
from runtime.deps import MissingDependencyError
from runtime.disk_space import DEFAULT_MIN_FREE_MB, MIB, SpaceGuard, output_folders
from runtime.errors import UserInputError
from runtime.io.output_folder import check_refillable, own_files, write_marker
from runtime.io.overlay import blend, class_areas
from runtime.io.sink_types import Result, Sink
from runtime.io.video import VIDEO_SUFFIXES, discard_atomic, encode_label_png
from runtime.io.video_sinks import LabelVideoSink, OverlayVideoSink
from runtime.text import shown


class LabelPngSink:
    """One palettised PNG per frame (pixel value = class id) in a folder, renamed into place.

    A new folder is filled under a temp name and renamed into place with a `.scaseg-output`
    marker. An existing folder must be empty, or marked (a folder this sink wrote) with
    `overwrite`: then the new PNGs replace its old ones and nothing else in it is touched."""

    def __init__(self, folder: Path, table_bgr: np.ndarray, overwrite: bool = False):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise UserInputError(
                f"{shown(self.folder)} is a file; --labels-out takes a folder or a video path"
            )
        check_refillable(self.folder, overwrite)
        check_writable_folder(self.folder, "--labels-out")
        self.table_rgb = table_bgr[:, ::-1]
        self._tmp = Path(
            tempfile.mkdtemp(dir=self.folder.parent, prefix=f".{self.folder.name}.", suffix=".tmp")
        )
        os.chmod(
            self._tmp, 0o777 & ~current_umask()
        )  # mkdtemp makes 0700; outputs get the usual mode
        self._names: set[str] = set()
        self.frames = 0

    def write(self, result: Result) -> None:
        name = (
            result.name if result.name not in self._names else f"{result.name}_{result.index:06d}"
        )
        self._names.add(name)
        labels = result.labels
        if labels.dtype == np.uint8:
            data = encode_label_png(labels, self.table_rgb)
        else:  # more than 256 classes: 16-bit gray, no palette
            ok, buf = cv2.imencode(".png", labels.astype(np.uint16))
            data = buf.tobytes() if ok else b""
        target = self._tmp / f"{name}.png"
        try:
            target.write_bytes(data)
        except OSError:  # disk full: no half-written PNG among the finished ones
            with contextlib.suppress(OSError):
                target.unlink()
            raise
        self.frames += 1

    def close(self) -> str | None:
        if self._tmp is None:
            return None
        tmp, self._tmp = self._tmp, None
        if self.frames == 0:
            shutil.rmtree(tmp, ignore_errors=True)  # the temp folder made in __init__
            return None
        write_marker(tmp, "scaseg-run --labels-out (label PNGs)")
        if not self.folder.exists():
            os.replace(tmp, self.folder)
        else:  # empty, or marked and allowed by overwrite (checked in __init__)
            _refill(self.folder, tmp)
        return f"{shown(self.folder)}/ ({self.frames} PNGs)"

    def abort(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)  # the temp folder made in __init__
            self._tmp = None


def _refill(folder: Path, tmp: Path) -> None:
    """Move the new PNGs (and marker) from `tmp` into `folder`, then remove the PNGs an earlier
    run left there: only `*.png` files of a marked folder, never other files or subfolders."""
    stale = {p.name: p for p in own_files(folder, ".png")}
    for entry in sorted(tmp.iterdir()):
        os.replace(entry, folder / entry.name)
        stale.pop(entry.name, None)
    for path in stale.values():
        remove_durably(path)
    tmp.rmdir()


class JsonLinesSink:
    """One JSON object per frame: index, name, the unix time it was read, its position in a
    video file (pts_ms, files only), class areas (fraction of the frame), latency.

    Lines go straight to the file (unbuffered), so a reader tailing it sees each frame as it is
    done; a line that could not be written whole (disk full) is cut off again, so the file only
    ever holds complete lines."""

    def __init__(self, path: Path, class_names: tuple[str, ...], overwrite: bool = False):
        self.path = Path(path)
        self.class_names = class_names
        self._atomic = atomic_path(self.path, overwrite)
        self._file = open(self._atomic.__enter__(), "wb", buffering=0)  # noqa: SIM115
        self._complete_bytes = 0  # file length after the last whole line
        self.frames = 0

    def write(self, result: Result) -> None:
        t = result.times
        record = {
            "frame": result.index,
            "name": result.name,
            "time": round(result.time_s, 3),
            **({"pts_ms": round(result.pts_ms, 1)} if result.pts_ms is not None else {}),
            "class_areas": class_areas(result.labels, self.class_names),
            "latency_ms": {
                "preprocess": round(t.preprocess_ms, 3),
                "infer": round(t.infer_ms, 3),
                "postprocess": round(t.postprocess_ms, 3),
                "total": round(t.total_ms, 3),
            },
        }
        self._write_whole((json.dumps(record) + "\n").encode("utf-8"))
        self.frames += 1

    def _write_whole(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:  # an unbuffered write may take part of the line (ENOSPC comes next)
                written = self._file.write(view)
                if not written:
                    raise OSError(errno.ENOSPC, "no bytes written", str(self.path))
                view = view[written:]
        except OSError:
            with contextlib.suppress(OSError):
                self._file.truncate(self._complete_bytes)
                self._file.seek(self._complete_bytes)  # a later line follows the last whole one
            raise
        self._complete_bytes += len(data)

    def close(self) -> str | None:
        if self._file is None:
            return None
        self._file.close()
        self._file = None
        self._atomic.__exit__(None, None, None)
        return f"{shown(self.path)} ({self.frames} lines)"

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            discard_atomic(self._atomic)


def display_available() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class WindowSink:
    """An on-screen window with the overlay; q or Esc asks the pipeline to stop."""

    def __init__(
        self, table_bgr: np.ndarray, alpha: float, stop: threading.Event, title: str = "scaseg"
    ):
        if not display_available():
            raise UserInputError(
                "--show needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set"
            )
        self.table_bgr, self.alpha, self.stop, self.title = table_bgr, alpha, stop, title
        self._opened = False

    def write(self, result: Result) -> None:
        if not self._opened:
            try:
                cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            except cv2.error as err:
                raise MissingDependencyError(
                    "--show needs OpenCV with a GUI: pip install opencv-python (not "
                    "opencv-python-headless)"
                ) from err
            self._opened = True
        cv2.imshow(self.title, blend(result.frame_bgr, result.labels, self.table_bgr, self.alpha))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop.set()

    def close(self) -> str | None:
        if self._opened:
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(self.title)
        return None

    def abort(self) -> None:
        self.close()


@dataclass(frozen=True)
class OutputSpec:
    """Which sinks a run writes. None / False means "not this one"."""

    overlay: Path | None = None  # overlay video
    labels: Path | None = None  # folder of label PNGs, or a video path (colour label maps)
    jsonl: Path | None = None
    show: bool = False
    alpha: float = 0.5
    codec: str = "mp4v"
    overwrite: bool = False
    segment_minutes: float | None = None  # videos: start a new numbered file this often
    min_free_mb: float = DEFAULT_MIN_FREE_MB  # end the run while this much is free (0: off)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_free_mb) and self.min_free_mb >= 0):
            raise UserInputError(
                f"--min-free-mb must be a number of MiB >= 0, e.g. 64 (0 turns the check off), "
                f"got {self.min_free_mb!r}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise UserInputError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.segment_minutes is not None and not self.segment_minutes > 0:
            raise UserInputError(
                f"--segment-minutes must be > 0, got {self.segment_minutes}: give the length of "
                "each video file in minutes, e.g. 10"
            )
        if len(self.codec) != 4:
            raise UserInputError(
                f"codec must be a 4-character FourCC, got {self.codec!r}; pass one such as mp4v or avc1"
            )

    def paths(self) -> list[Path]:
        return [p for p in (self.overlay, self.labels, self.jsonl) if p is not None]

    def space_guard(self) -> SpaceGuard | None:
        """The free-space check for the folders the outputs land in; None without file outputs."""
        paths = self.paths()
        if not paths or not self.min_free_mb:
            return None
        return SpaceGuard(output_folders(paths), int(self.min_free_mb * MIB))


def build_sinks(
    spec: OutputSpec,
    table_bgr: np.ndarray,
    class_names: tuple[str, ...],
    fps: float,
    stop: threading.Event,
) -> list[Sink]:
    """The sinks `spec` asks for; if one cannot be created, those already made are aborted."""
    fps = fps if fps > 0 else 25.0
    segment = (
        None if spec.segment_minutes is None else max(1, round(spec.segment_minutes * 60 * fps))
    )
    sinks: list[Sink] = []
    try:
        if spec.overlay is not None:
            sinks.append(
                OverlayVideoSink(
                    spec.overlay, fps, table_bgr, spec.alpha, spec.codec, spec.overwrite, segment
                )
            )
        if spec.labels is not None and spec.labels.suffix.lower() in VIDEO_SUFFIXES:
            sinks.append(
                LabelVideoSink(spec.labels, fps, table_bgr, spec.codec, spec.overwrite, segment)
            )
        elif spec.labels is not None:
            sinks.append(LabelPngSink(spec.labels, table_bgr, spec.overwrite))
        if spec.jsonl is not None:
            sinks.append(JsonLinesSink(spec.jsonl, class_names, spec.overwrite))
        if spec.show:
            sinks.append(WindowSink(table_bgr, spec.alpha, stop))
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks
