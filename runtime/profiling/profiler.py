"""Latency profiling: per-stage timers, statistics, and the timed loop behind scaseg-profile.

What each stage measures (the same words go into every report, see STAGE_MEANINGS):

    decode -> preprocess -> [h2d -> infer -> d2h] -> postprocess -> encode

Timers are host wall clocks (time.perf_counter) read only after the work is complete: every
backend's `infer` returns a finished result (TensorRT synchronises its stream, ONNX Runtime's
`run` copies outputs to the host), and on TensorRT `StageTimingCuda` synchronises the stream after
the input copy and before the output copy, so H2D, GPU compute and D2H are timed separately.
Those two extra synchronisations cost microseconds on one stream where the work is serial anyway.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from runtime.backends import Backend, BackendOptions, backend_kind, open_backend
from runtime.errors import UserInputError

STAGES = ("decode", "preprocess", "h2d", "infer", "d2h", "postprocess", "encode")
STAGE_MEANINGS = {
    "decode": "reading the next frame from the source (video decode, image read or render)",
    "preprocess": "frame -> model input tensor (resize, colour order, normalise, layout)",
    "h2d": "host -> device copy of the input (TensorRT; stream-synchronised)",
    "infer": "the backend's infer call: ONNX Runtime session.run including any device copies, or "
    "TensorRT GPU compute plus host staging copies (its h2d and d2h are timed apart)",
    "d2h": "device -> host copy of the output (TensorRT; stream-synchronised)",
    "postprocess": "model output -> label map at the frame's size (upsample, argmax, resize)",
    "encode": "writing results: overlay blend and video encode (or the sinks of scaseg-run)",
    "end_to_end": "one frame from the start of its decode to the end of its encode",
}


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one stage's per-frame latencies (milliseconds).

    jitter_ms is p99 - p50 (how far the slow tail sits above the typical frame); std_ms is the
    standard deviation. throughput_fps is frames per second of wall time where the run's wall time
    is known (pipelined runs), else 1000 / mean (what this stage alone could sustain).
    """

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    jitter_ms: float
    throughput_fps: float

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def latency_stats(
    samples_ms: list[float] | np.ndarray, wall_s: float | None = None
) -> LatencyStats:
    """Statistics of per-frame latencies; ValueError on an empty list."""
    x = np.asarray(samples_ms, np.float64)
    if x.size == 0:
        raise UserInputError("no latency samples: run at least one timed frame (--frames >= 1)")
    p50, p90, p99 = (float(v) for v in np.percentile(x, (50, 90, 99)))
    mean = float(x.mean())
    if wall_s is not None and wall_s > 0:
        fps = x.size / wall_s
    else:
        fps = 1000.0 / mean if mean > 0 else float("inf")
    return LatencyStats(
        count=int(x.size),
        mean_ms=mean,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        min_ms=float(x.min()),
        max_ms=float(x.max()),
        std_ms=float(x.std()),
        jitter_ms=p99 - p50,
        throughput_fps=float(fps),
    )


@dataclass
class StageRecorder:
    """Per-stage samples (ms) and per-frame start/end times, filled from several threads.

    Each stage is recorded by one thread in frame order, so `skip` (warm-up) drops the first
    samples of every stage. list.append and dict assignment are atomic under the GIL.
    """

    samples: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    frame_start: dict[int, float] = field(default_factory=dict)
    frame_end: dict[int, float] = field(default_factory=dict)
    _pending: dict[int, float] = field(default_factory=dict)  # encode ms summed over sinks

    def add(self, stage: str, ms: float) -> None:
        self.samples[stage].append(float(ms))

    @contextlib.contextmanager
    def time(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, (time.perf_counter() - t0) * 1e3)

    def add_encode(self, index: int, ms: float) -> None:
        self._pending[index] = self._pending.get(index, 0.0) + ms

    def end_frame(self, index: int) -> None:
        """All of frame `index`'s outputs are written: close its encode and end-to-end samples."""
        self.frame_end[index] = time.perf_counter()
        if index in self._pending:
            self.add("encode", self._pending.pop(index))

    def end_to_end_ms(self, skip: int = 0) -> list[float]:
        done = sorted(i for i in self.frame_end if i in self.frame_start and i >= skip)
        return [(self.frame_end[i] - self.frame_start[i]) * 1e3 for i in done]

    def wall_s(self, skip: int = 0) -> float | None:
        """Seconds from the first timed frame's start to the last frame's end."""
        done = [i for i in self.frame_end if i in self.frame_start and i >= skip]
        if not done:
            return None
        return max(self.frame_end[i] for i in done) - min(self.frame_start[i] for i in done)

    def stats(self, skip: int = 0, pipelined: bool = False) -> tuple[dict, LatencyStats | None]:
        """({stage: LatencyStats} for the stages that ran, end-to-end stats or None)."""
        stages = {s: latency_stats(v[skip:]) for s, v in self.samples.items() if len(v[skip:]) > 0}
        e2e = self.end_to_end_ms(skip)
        wall = self.wall_s(skip) if pipelined else None
        return stages, (latency_stats(e2e, wall) if e2e else None)


# ---------------------------------------------------------------------------------------------
# Instrumented pieces: CUDA copies, backend, frames, sinks


class StageTimingCuda:
    """A runtime.cuda_mem.CudaApi that times H2D, compute and D2H of each TensorRT infer.

    TrtBackend.infer calls copy_htod_async, then enqueues the engine, then copy_dtoh_async, then
    synchronize. Synchronising after the input copy and before the output copy splits that into
    three stream-synchronised intervals; everything else is passed through unchanged.
    """

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.last_h2d_ms = 0.0
        self.last_d2h_ms = 0.0
        self._compute_t0: float | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def copy_htod_async(self, dst: object, src: np.ndarray) -> None:
        t0 = time.perf_counter()
        self._inner.copy_htod_async(dst, src)
        self._inner.synchronize()
        self._compute_t0 = time.perf_counter()
        self.last_h2d_ms = (self._compute_t0 - t0) * 1e3

    def copy_dtoh_async(self, dst: np.ndarray, src: object) -> None:
        self._inner.synchronize()  # the engine (or graph) has finished: compute ends here
        t0 = time.perf_counter()
        self._inner.copy_dtoh_async(dst, src)
        self._inner.synchronize()
        self.last_d2h_ms = (time.perf_counter() - t0) * 1e3


def open_profiled_backend(
    path: str | os.PathLike,
    kind: str = "auto",
    options: BackendOptions | None = None,
    *,
    tensorrt: object | None = None,
    cuda: object | None = None,
) -> tuple[Backend, StageTimingCuda | None]:
    """Open an artifact for profiling: TensorRT engines get a StageTimingCuda (returned too, for
    its device info and copy timings); ONNX models open exactly as open_backend opens them.
    `tensorrt`/`cuda`: as open_backend's (None: the real ones)."""
    options = options or BackendOptions()
    path = Path(path)
    if not path.is_file() or backend_kind(path) != "tensorrt" or kind == "onnxruntime":
        return open_backend(path, kind, options), None  # including all of its error messages
    from runtime import trt_compat
    from runtime.backends.trt_backend import TrtBackend
    from runtime.cuda_mem import open_cuda
    from runtime.meta import read_meta

    if options.provider not in ("auto", "tensorrt") or options.trt_cache_dir:
        return open_backend(path, kind, options), None  # raises its usual usage error
    meta = read_meta(path)  # sidecar and TensorRT first: both fail fast, before CUDA is touched
    trt = tensorrt or trt_compat.import_tensorrt()
    cuda = StageTimingCuda(cuda or open_cuda(options.cuda_device, need_graphs=options.cuda_graph))
    # From here TrtBackend closes the CUDA API itself if loading the engine fails.
    return TrtBackend(path, meta, options, tensorrt=trt, cuda=cuda), cuda


class TimedStages:
    """A Segmenter's prepare/infer/postprocess, each recorded into a StageRecorder.

    Usable by runtime.pipeline.run_pipeline (each method is called on its own thread) and by the
    sequential profiling loop alike.
    """

    def __init__(self, segmenter: object, recorder: StageRecorder, cuda: StageTimingCuda | None):
        self.segmenter = segmenter
        self.recorder = recorder
        self.cuda = cuda

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        with self.recorder.time("preprocess"):
            return self.segmenter.prepare(frame_bgr)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.segmenter.infer(batch)
        total_ms = (time.perf_counter() - t0) * 1e3
        if self.cuda is None:
            self.recorder.add("infer", total_ms)
            return out
        h2d, d2h = self.cuda.last_h2d_ms, self.cuda.last_d2h_ms
        self.recorder.add("h2d", h2d)
        self.recorder.add("infer", max(total_ms - h2d - d2h, 0.0))
        self.recorder.add("d2h", d2h)
        return out

    def postprocess(self, output: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
        with self.recorder.time("postprocess"):
            return self.segmenter.postprocess(output, frame_hw)


def timed_frames(frames: Iterator, recorder: StageRecorder) -> Iterator:
    """Yield a source's frames, recording each one's decode time and end-to-end start."""
    while True:
        t0 = time.perf_counter()
        try:
            frame = next(frames)
        except StopIteration:
            return
        recorder.add("decode", (time.perf_counter() - t0) * 1e3)
        recorder.frame_start[frame.index] = t0
        yield frame


class TimedSink:
    """Wraps a runtime.io.sinks.Sink: its write time counts as the frame's encode."""

    def __init__(self, inner: object, recorder: StageRecorder) -> None:
        self.inner = inner
        self.recorder = recorder

    def write(self, result: object) -> None:
        t0 = time.perf_counter()
        self.inner.write(result)
        self.recorder.add_encode(result.index, (time.perf_counter() - t0) * 1e3)

    def close(self) -> str | None:
        return self.inner.close()

    def abort(self) -> None:
        self.inner.abort()


class FrameEndSink:
    """Goes after every other sink: marks the frame's end-to-end finish. Writes nothing."""

    def __init__(self, recorder: StageRecorder) -> None:
        self.recorder = recorder

    def write(self, result: object) -> None:
        self.recorder.end_frame(result.index)

    def close(self) -> str | None:
        return None

    def abort(self) -> None:
        pass


def timed_sinks(sinks: list, recorder: StageRecorder) -> list:
    return [*(TimedSink(s, recorder) for s in sinks), FrameEndSink(recorder)]


# ---------------------------------------------------------------------------------------------
# The sequential loop of scaseg-profile


@dataclass(frozen=True)
class LoopConfig:
    frames: int = 100  # timed iterations
    warmup: int = 10  # untimed iterations first (allocations, autotuning, caches)

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise UserInputError(f"frames must be >= 1, got {self.frames}")
        if self.warmup < 0:
            raise UserInputError(f"warmup must be >= 0, got {self.warmup}")


def run_loop(
    frames: Iterator,
    stages: TimedStages,
    encode: Callable[[object, np.ndarray], None] | None,
    config: LoopConfig,
    on_frame: Callable[[int], None] | None = None,
) -> StageRecorder:
    """decode -> preprocess -> infer -> postprocess -> encode, one frame at a time.

    `frames` yields runtime.io.sources.Frame and must not run out (open file sources with loop=True).
    encode(frame, labels) writes a result (None: no encode stage). The first config.warmup frames
    are recorded too; stats(skip=config.warmup) leaves them out.
    """
    recorder = stages.recorder
    source = timed_frames(frames, recorder)
    total = config.warmup + config.frames
    for n in range(total):
        frame = next(source, None)
        if frame is None:
            raise UserInputError(
                f"the source ended after {n} of {total} frames; loop it or use fewer"
            )
        labels = stages.postprocess(
            stages.infer(stages.prepare(frame.frame_bgr)), frame.frame_bgr.shape[:2]
        )
        if encode is not None:
            t0 = time.perf_counter()
            encode(frame, labels)
            recorder.add_encode(frame.index, (time.perf_counter() - t0) * 1e3)
        recorder.end_frame(frame.index)
        if on_frame is not None:
            on_frame(n + 1)
    return recorder
