"""The Python API: frame in, label map out, for any artifact the sidecar describes.

    from runtime import Segmenter
    seg = Segmenter("scaseg_t_demo.int8.onnx")
    labels = seg(frame_bgr)                      # (H,W) class ids at the frame's size
    for frame, labels in seg.iter_source("clip.mp4"):
        ...

Plain and fused artifacts (uint8 NHWC input, label-map output) are told apart from the sidecar
alone; preprocessing and the logits -> labels step are runtime.preprocess's, the same functions
export-time evaluation uses, so both see identical label maps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from runtime.backends import Backend, BackendOptions, open_backend
from runtime.errors import UserInputError
from runtime.io.overlay import colorize, palette_for
from runtime.io.source_types import Frame
from runtime.io.sources import open_source
from runtime.meta import MetaError
from runtime.preprocess import (
    labels_to_frame,
    logits_to_labels,
    preprocess,
    preprocess_uint8,
)


@dataclass(frozen=True)
class StageTimes:
    preprocess_ms: float
    infer_ms: float  # includes host<->device copies; the backend returns synchronised results
    postprocess_ms: float

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.infer_ms + self.postprocess_ms


class Segmenter:
    """Runs one artifact on frames of any size, gray, BGR or BGRA."""

    def __init__(
        self,
        model: str | os.PathLike | Backend,
        *,
        provider: str = "auto",
        backend: str = "auto",
        options: BackendOptions | None = None,
    ):
        if options is not None and provider not in ("auto", options.provider):
            raise UserInputError(
                f"provider {provider!r} contradicts options.provider {options.provider!r}"
            )
        if isinstance(model, (str, os.PathLike)):
            model = open_backend(model, backend, options or BackendOptions(provider=provider))
        self.backend = model
        self.meta = model.meta
        self.palette_bgr = palette_for(self.meta.palette_rgb, self.meta.num_classes)

    @property
    def description(self) -> str:
        return self.backend.description

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """Frame -> the model input the sidecar asks for: (1,3,H,W) float32 or (1,H,W,3) uint8."""
        if self.meta.fused_preprocess:
            return preprocess_uint8(frame, self.meta.preprocess)
        return preprocess(frame, self.meta.preprocess)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Model input -> model output, complete (the backend synchronises)."""
        return self.backend.infer(batch)

    def postprocess(self, output: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
        """Model output for one frame -> (H,W) labels at the frame's size (nearest neighbour)."""
        meta, pp = self.meta, self.meta.preprocess
        out = output[0]
        if meta.output_kind == "labels":
            labels = (
                out if out.dtype == np.uint8 or meta.num_classes > 256 else out.astype(np.uint8)
            )
        else:
            if out.ndim != 3 or out.shape[0] != meta.num_classes:
                raise MetaError(
                    f"model output {output.shape} does not hold {meta.num_classes} class logits as "
                    "its sidecar says; the sidecar belongs to another model: re-export both together"
                )
            labels = logits_to_labels(out, pp)  # (K,h,w) -> (H,W) at model input size
        return labels_to_frame(labels, frame_hw)

    def segment_timed(self, frame: np.ndarray) -> tuple[np.ndarray, StageTimes]:
        t0 = time.perf_counter()
        batch = self.prepare(frame)
        t1 = time.perf_counter()
        output = self.infer(batch)
        t2 = time.perf_counter()
        labels = self.postprocess(output, frame.shape[:2])
        t3 = time.perf_counter()
        return labels, StageTimes((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """(H,W[,C]) image -> (H,W) class ids (uint8, or int32 past 256 classes)."""
        return self.segment_timed(frame)[0]

    def iter_source(
        self, source: str, *, loop: bool = False, max_frames: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(frame_bgr, labels) for each frame of a source spec (see runtime.io.sources.open_source).

        Sequential and simple; `runtime.pipeline.run_pipeline` overlaps decode, inference and
        encoding for throughput.
        """
        src = open_source(source, loop=loop)
        try:
            for frame in _limited(src.frames(), max_frames):
                yield frame.frame_bgr, self(frame.frame_bgr)
        finally:
            src.close()

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """(H,W) labels -> (H,W,3) uint8 BGR in the model's palette."""
        return colorize(labels, self.palette_bgr)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _limited(frames: Iterator[Frame], max_frames: int | None) -> Iterator[Frame]:
    for frame in frames:
        if max_frames is not None and frame.index >= max_frames:
            return
        yield frame
