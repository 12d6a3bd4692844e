"""source -> segmenter -> sinks, with decoding, inference and encoding overlapped.

    reader thread: decode (+ preprocess for files) --in_q--> calling thread: infer
        --out_q--> writer thread: postprocess, sinks (overlay, encode, PNG, JSON)

Only the model runs on the inference thread, so end-to-end throughput approaches model-only
throughput. File sources use a bounded queue that blocks the reader: no frame is ever dropped.
Live sources (cameras, RTSP) use a one-slot queue that throws away the oldest frame when inference
falls behind, so the output follows real time instead of lagging further and further; their
frames are preprocessed only once picked, so dropped frames cost no preprocessing.

Stopping (`stop` event, set by the CLI's Ctrl-C/SIGTERM handler or a window's q key) ends
inference after the current frame; every frame already inferred is still written and the sinks
are finalised. An exception instead aborts the sinks, so a crash leaves no half-written output;
except SourceLostError (a live source that did not come back) and OutputSpaceError (the output
disk is full, or below the SpaceGuard's margin): those end the stream like its end, the outputs
are finalised with every frame written so far, and then the error is raised.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from runtime.disk_space import OutputSpaceError, SpaceGuard, disk_full_error, is_disk_full
from runtime.errors import UserInputError
from runtime.io.capture import SourceLostError
from runtime.io.sink_types import Result, Sink
from runtime.io.source_types import Frame
from runtime.segmenter import StageTimes

_END = object()  # end-of-stream marker in both queues
_POLL_S = 0.05


class Stages(Protocol):
    """The three steps of a segmenter (runtime.segmenter.Segmenter has them)."""

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray: ...
    def infer(self, batch: np.ndarray) -> np.ndarray: ...
    def postprocess(self, output: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray: ...


@dataclass(frozen=True)
class PipelineConfig:
    max_frames: int | None = None  # stop after this many frames (None: the whole source)
    queue_size: int = 4  # file sources: frames decoded ahead / waiting to be encoded
    live_queue_size: int = 1  # live sources: newest frames kept; older ones are dropped

    def __post_init__(self) -> None:
        if self.max_frames is not None and self.max_frames < 1:
            raise UserInputError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.queue_size < 1 or self.live_queue_size < 1:
            raise UserInputError(
                f"queue sizes must be >= 1, got {self.queue_size}, {self.live_queue_size}"
            )


class LatencySample:
    """Per-frame stage times for the run's percentiles, in bounded memory.

    Every frame is kept up to `capacity`; past that, a uniform random sample of the whole run
    (reservoir sampling): percentiles still describe the entire run, and a camera left running
    for days does not grow (one entry per frame grew RSS by ~3 MiB per 20,000 frames).
    """

    def __init__(self, capacity: int = 10_000, seed: int = 0):
        if capacity < 1:
            raise UserInputError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.seen = 0  # frames offered, kept or not
        self._items: list[StageTimes] = []
        self._rng = random.Random(seed)

    def append(self, times: StageTimes) -> None:
        self.seen += 1
        if len(self._items) < self.capacity:
            self._items.append(times)
            return
        slot = self._rng.randrange(self.seen)  # keep with probability capacity / seen
        if slot < self.capacity:
            self._items[slot] = times

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[StageTimes]:
        return iter(self._items)


@dataclass
class PipelineStats:
    """Live counters; written by the pipeline's threads, read by progress callbacks."""

    frames_read: int = 0
    frames_done: int = 0  # inferred
    frames_written: int = 0
    frames_dropped: int = 0  # live sources only
    started: float = field(default_factory=time.perf_counter)
    times: LatencySample = field(default_factory=LatencySample)

    @property
    def fps(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.frames_done / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class RunSummary:
    frames: int  # written to every sink
    dropped: int
    wall_s: float
    fps: float
    interrupted: bool
    outputs: tuple[str, ...]
    latency_ms: dict  # stage -> {"p50", "p90", "p99"}


@dataclass
class _Item:
    """One frame on its way through the queues."""

    frame: Frame
    batch: np.ndarray | None = None  # model input, once prepared
    output: np.ndarray | None = None  # model output, once inferred
    preprocess_ms: float = 0.0
    infer_ms: float = 0.0


def percentiles(times: Iterable[StageTimes]) -> dict:
    times = list(times)
    if not times:
        return {}
    table = np.array([(t.preprocess_ms, t.infer_ms, t.postprocess_ms, t.total_ms) for t in times])
    stages = ("preprocess", "infer", "postprocess", "total")
    return {
        stage: {f"p{q}": round(float(np.percentile(table[:, i], q)), 3) for q in (50, 90, 99)}
        for i, stage in enumerate(stages)
    }


def _put(q: queue.Queue, item: object, give_up: Callable[[], bool]) -> bool:
    """Blocking put that returns False instead of hanging when give_up() turns true."""
    while True:
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            if give_up():
                return False


def _put_latest(q: queue.Queue, item: object, stats: PipelineStats) -> None:
    """Non-blocking put that drops the oldest queued frame when the queue is full."""
    while True:
        try:
            q.put_nowait(item)
            return
        except queue.Full:
            try:
                q.get_nowait()
                stats.frames_dropped += 1
            except queue.Empty:
                pass


def _prepare(stages: Stages, item: _Item) -> _Item:
    t0 = time.perf_counter()
    item.batch = stages.prepare(item.frame.frame_bgr)
    item.preprocess_ms = (time.perf_counter() - t0) * 1e3
    return item


class _Worker(threading.Thread):
    """A daemon thread that keeps its exception for the calling thread to re-raise."""

    def __init__(self, name: str, target: Callable[[], None]):
        super().__init__(name=name, daemon=True)
        self._work = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as err:  # re-raised by run_pipeline on the calling thread
            self.error = err


def run_pipeline(
    frames: Iterator[Frame],
    live: bool,
    stages: Stages,
    sinks: list[Sink],
    config: PipelineConfig | None = None,
    stop: threading.Event | None = None,
    on_frame: Callable[[PipelineStats], None] | None = None,
    guard: SpaceGuard | None = None,
) -> RunSummary:
    """Run every frame through `stages` (e.g. a Segmenter) into the sinks; `guard` ends the run
    before the output disk is full."""
    config = config or PipelineConfig()
    stop = stop or threading.Event()
    halt = threading.Event()  # internal: set when inference ends for any reason
    stats = PipelineStats()
    in_q: queue.Queue = queue.Queue(config.live_queue_size if live else config.queue_size)
    out_q: queue.Queue = queue.Queue(config.queue_size)

    def read() -> None:
        try:
            for frame in frames:
                if halt.is_set() or stop.is_set():
                    return
                if config.max_frames is not None and stats.frames_read >= config.max_frames:
                    break
                stats.frames_read += 1
                if live:
                    _put_latest(in_q, _Item(frame), stats)
                elif not _put(in_q, _prepare(stages, _Item(frame)), halt.is_set):
                    return
        finally:
            _put(in_q, _END, halt.is_set)

    def write() -> None:
        while (item := out_q.get()) is not _END:
            t0 = time.perf_counter()
            labels = stages.postprocess(item.output, item.frame.frame_bgr.shape[:2])
            times = StageTimes(item.preprocess_ms, item.infer_ms, (time.perf_counter() - t0) * 1e3)
            frame = item.frame
            result = Result(
                frame.index, frame.name, frame.frame_bgr, labels, times, frame.time_s, frame.pts_ms
            )
            if guard is not None:
                guard.check(stats.frames_written)
            try:
                for sink in sinks:
                    sink.write(result)
            except OSError as err:
                if is_disk_full(err):
                    raise disk_full_error(err, stats.frames_written) from err
                raise
            stats.times.append(times)
            stats.frames_written += 1

    reader, writer = _Worker("scaseg-read", read), _Worker("scaseg-write", write)
    reader.start()
    writer.start()
    interrupted, failed = False, False
    try:
        interrupted = _infer_loop(in_q, out_q, stages, stats, stop, writer, on_frame)
    except KeyboardInterrupt:  # a second Ctrl-C: still an interrupt, still finalise
        interrupted = True
    except BaseException:
        failed = True
        raise
    finally:
        halt.set()
        _put(out_q, _END, lambda: not writer.is_alive())
        writer.join()
        reader.join(timeout=2.0)  # a live read may block; the thread is a daemon
        lost = isinstance(reader.error, SourceLostError)  # keep what was made, then raise
        full = isinstance(writer.error, OutputSpaceError)  # likewise
        failed = (
            failed
            or (writer.error is not None and not full)
            or (reader.error is not None and not lost)
        )
        outputs, unfinished = _finish(sinks, failed, best_effort=full)
    if full:
        if unfinished:
            writer.error.args = (f"{writer.error}; not finalised: {'; '.join(unfinished)}",)
        writer.error.summary = _summary(stats, interrupted, outputs)
    elif lost and writer.error is None:
        reader.error.summary = _summary(stats, interrupted, outputs)
    for worker in (writer, reader):
        if worker.error is not None:
            raise worker.error
    return _summary(stats, interrupted, outputs)


def _infer_loop(in_q, out_q, stages, stats, stop, writer, on_frame) -> bool:
    """Returns True when stopped by `stop`, False at the end of the source."""
    while not stop.is_set():
        try:
            item = in_q.get(timeout=_POLL_S)
        except queue.Empty:
            if not writer.is_alive():
                return False  # the writer failed; run_pipeline re-raises its error
            continue
        if item is _END:
            return False
        if item.batch is None:  # live frames are prepared only once picked
            _prepare(stages, item)
        t0 = time.perf_counter()
        item.output = stages.infer(item.batch)
        item.infer_ms = (time.perf_counter() - t0) * 1e3
        item.batch = None  # free the input while the item waits for the writer
        if not _put(out_q, item, lambda: not writer.is_alive()):
            return False
        stats.frames_done += 1
        if on_frame is not None:
            on_frame(stats)
    return True


def _summary(stats: PipelineStats, interrupted: bool, outputs: list[str]) -> RunSummary:
    wall = time.perf_counter() - stats.started
    return RunSummary(
        frames=stats.frames_written,
        dropped=stats.frames_dropped,
        wall_s=wall,
        fps=stats.frames_written / wall if wall > 0 else 0.0,
        interrupted=interrupted,
        outputs=tuple(outputs),
        latency_ms=percentiles(stats.times),
    )


def _finish(
    sinks: list[Sink], failed: bool, best_effort: bool = False
) -> tuple[list[str], list[str]]:
    """Finalise every sink (or abort them all after a failure); a failing close does not skip
    the others. Returns (outputs, [what could not be finalised, and why]); the list is filled
    only with `best_effort` (the disk is full), where such a sink is aborted instead of the
    first close error being raised."""
    outputs, unfinished, first_error = [], [], None
    for sink in sinks:
        try:
            if failed:
                sink.abort()
            elif (written := sink.close()) is not None:
                outputs.append(written)
        except Exception as err:
            first_error = first_error or err
            if best_effort:
                unfinished.append(f"{_sink_name(sink)} ({' '.join(str(err).split())})")
                with contextlib.suppress(Exception):
                    sink.abort()
    if first_error is not None and not failed and not best_effort:
        raise first_error
    return outputs, unfinished


def _sink_name(sink: Sink) -> str:
    path = getattr(sink, "path", None) or getattr(sink, "folder", None)
    return str(path) if path is not None else type(sink).__name__
