"""What every sink receives (one Result per frame) and the Sink protocol; shared by the sinks
(runtime/io/sinks.py, runtime/io/video_sinks.py) and the pipeline that feeds them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from runtime.segmenter import StageTimes


@dataclass(frozen=True)
class Result:
    index: int
    name: str
    frame_bgr: np.ndarray  # (H,W,3) uint8
    labels: np.ndarray  # (H,W) class ids at the frame's size
    times: StageTimes
    time_s: float = 0.0  # wall clock when the frame was read (runtime.io.sources.Frame.time_s)
    pts_ms: float | None = None  # position in a video file, if known


class Sink(Protocol):
    def write(self, result: Result) -> None: ...
    def close(self) -> str | None: ...  # what was written, for the summary; None if nothing
    def abort(self) -> None: ...
