"""The Python API: frame in, label map out, for any artifact the sidecar describes.

    from runtime import Segmenter
    seg = Segmenter("scaseg_t_demo.int8.onnx")
    labels = seg(frame_bgr)                      # (H,W) class ids at the frame's size
    for frame, labels in seg.iter_source("clip.mp4"):
        ...

Plain and fused artifacts (uint8 NHWC input, label-map output) are told apart from the sidecar
alone; preprocessing and the logits -> labels step are runtime.preprocess's, the same functions
export-time evaluation uses, so both see identical label maps.

Sidecars with inference mode 'slide' (runtime/slide.py) run mmseg's sliding-window inference:
`prepare` returns all crop-sized windows of the resized frame as one (N,...) batch, `infer`
runs them in one call and `postprocess` averages their logits and returns frame-size labels.
Keep-ratio frames in whole mode are padded to a multiple of 32 and cut back after inference.
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
from runtime.meta import MetaError, check_inference
from runtime.preprocess import (
    as_bgr8,
    labels_to_frame,
    logits_to_labels,
    preprocess,
    preprocess_uint8,
    resized_size,
)
from runtime.slide import (
    Window,
    check_logits,
    check_windows,
    frame_batch,
    labels_from_logits,
    labels_from_padded_logits,
    merge_logits,
    padded_size,
    window_count,
    windows,
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
        check_inference(self.meta, "model")  # also for a Backend whose meta was built in code
        self.palette_bgr = palette_for(self.meta.palette_rgb, self.meta.num_classes)
        self._plan: tuple[tuple[int, int], _Plan] | None = None

    @property
    def description(self) -> str:
        return self.backend.description

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """Frame -> the model input the sidecar asks for: (1,3,H,W) float32 or (1,H,W,3) uint8;
        for slide inference all windows, (N,3,ch,cw) or (N,ch,cw,3)."""
        meta, pp = self.meta, self.meta.preprocess
        if not meta.inference.slide and pp.resize == "stretch":
            if meta.fused_preprocess:
                return preprocess_uint8(frame, pp)
            return preprocess(frame, pp)
        frame = as_bgr8(frame)
        plan = self.plan(frame.shape[:2])
        return frame_batch(
            frame, pp, meta.inference, meta.fused_preprocess, plan.windows, plan.padded_hw
        )

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Model input -> model output, complete (the backend synchronises)."""
        return self.backend.infer(batch)

    def postprocess(self, output: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
        """Model output for one frame -> (H,W) labels at the frame's size (bilinear logits, or
        nearest neighbour for label maps)."""
        meta, pp = self.meta, self.meta.preprocess
        if meta.inference.slide or pp.resize == "keep_ratio":
            return self._postprocess_resized(output, frame_hw)
        out = output[0]
        if meta.output_kind == "labels":
            labels = self._label_ids(out)
        else:
            self._check_logits(output, 1)
            labels = logits_to_labels(out, pp)  # (K,h,w) -> (H,W) at model input size
        return labels_to_frame(labels, frame_hw)

    def _postprocess_resized(self, output: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
        """Slide, or keep-ratio whole: the output's geometry is recomputed from the frame's."""
        meta, plan = self.meta, self.plan(frame_hw)
        if meta.inference.slide:
            self._check_logits(output, len(plan.windows))
            logits = merge_logits(output, plan.windows, plan.image_hw, meta.inference.crop)
            return labels_from_logits(logits, frame_hw)
        if meta.output_kind == "labels":  # fused argmax at the padded size: cut, then nearest
            (h, w), out = plan.image_hw, output[0]
            return labels_to_frame(np.ascontiguousarray(self._label_ids(out[:h, :w])), frame_hw)
        self._check_logits(output, 1)
        return labels_from_padded_logits(output[0], plan.padded_hw, plan.image_hw, frame_hw)

    def _label_ids(self, labels: np.ndarray) -> np.ndarray:
        """A graph's label map as uint8 (int32 kept past 256 classes)."""
        if labels.dtype == np.uint8 or self.meta.num_classes > 256:
            return labels
        return labels.astype(np.uint8)

    def _check_logits(self, output: np.ndarray, count: int) -> None:
        """`count` windows (or one frame) of K class logits, as the sidecar says."""
        k = self.meta.num_classes
        held = output.ndim == 4 and output.shape[1] == k
        if held and (count == 1 or output.shape[0] == count):
            return
        what = f"{k} class logits" if count == 1 else f"{count} windows of {k} class logits"
        raise MetaError(
            f"model output {output.shape} does not hold {what} as its sidecar says; the "
            "sidecar belongs to another model: re-export both together"
        )

    def plan(self, frame_hw: tuple[int, int]) -> _Plan:
        """Where a frame of `frame_hw` goes: its resized size, the windows (slide) or the padded
        input size (whole); budgets checked. The last frame size's plan is kept (video)."""
        frame_hw = (int(frame_hw[0]), int(frame_hw[1]))
        cached = self._plan  # one read: prepare and postprocess may run in different threads
        if cached is not None and cached[0] == frame_hw:
            return cached[1]
        meta = self.meta
        image_hw = resized_size(frame_hw, meta.preprocess)
        wins: list[Window] = []
        padded_hw = image_hw
        if meta.inference.slide:
            crop, stride = meta.inference.crop, meta.inference.stride
            count = window_count(*image_hw, crop, stride)
            check_windows(count, image_hw, frame_hw, meta.inference)
            self._check_profile_batch(count, image_hw)
            check_logits(meta.num_classes, image_hw, frame_hw)
            wins = windows(*image_hw, crop, stride)
        else:
            padded_hw = padded_size(*image_hw)
        plan = _Plan(image_hw, padded_hw, wins)
        self._plan = (frame_hw, plan)
        return plan

    def _check_profile_batch(self, count: int, image_hw: tuple[int, int]) -> None:
        profile = self.meta.input.profile
        if profile and count > int(profile[2][0]):
            raise UserInputError(
                f"a {image_hw[0]}x{image_hw[1]} resized frame needs {count} windows "
                f"({self.meta.inference.describe()}), but the model's input profile takes at most "
                f"{profile[2][0]} per call; re-export with a max batch >= {count}, or use a "
                "larger stride or a smaller resize scale"
            )

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


@dataclass(frozen=True)
class _Plan:
    image_hw: tuple[int, int]  # the frame once resized
    padded_hw: tuple[int, int]  # whole mode: the input size (image padded to a multiple of 32)
    windows: list[Window]  # slide mode: (y1, y2, x1, x2) in the resized image


def _limited(frames: Iterator[Frame], max_frames: int | None) -> Iterator[Frame]:
    for frame in frames:
        if max_frames is not None and frame.index >= max_frames:
            return
        yield frame
