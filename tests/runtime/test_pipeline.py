"""The threaded pipeline: file sources lose nothing, live sources drop stale frames, stopping
finalises outputs, failures abort them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from runtime.classes import palette_bgr
from runtime.io.sink_types import Result
from runtime.io.source_types import Frame
from runtime.io.sources import open_source
from runtime.io.video_sinks import OverlayVideoSink
from runtime.pipeline import PipelineConfig, run_pipeline
from scenes.classes import DEMO_PALETTE_RGB
from tests.support.fake_segmenter import FakeSegmenter

TABLE = palette_bgr(DEMO_PALETTE_RGB, num_classes=8)


def slow_segment(delay_s: float) -> FakeSegmenter:
    return FakeSegmenter(delay_s)


class RecordingSink:
    def __init__(self, delay_s: float = 0.0, fail_at: int | None = None):
        self.indices: list[int] = []
        self.delay_s, self.fail_at = delay_s, fail_at
        self.closed = self.aborted = False

    def write(self, result: Result) -> None:
        if result.index == self.fail_at:
            raise OSError("disk full (fake)")
        time.sleep(self.delay_s)
        self.indices.append(result.index)

    def close(self) -> str:
        self.closed = True
        return f"recorded {len(self.indices)}"

    def abort(self) -> None:
        self.aborted = True


class FakeLiveSource:
    """A FAKE camera: a new frame every `period_s`, whether or not anyone is reading."""

    def __init__(self, num_frames: int, period_s: float):
        self.num_frames, self.period_s = num_frames, period_s

    def frames(self):
        start = time.perf_counter()
        for i in range(self.num_frames):
            delay = start + i * self.period_s - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield Frame(i, np.full((8, 8, 3), i % 256, np.uint8), f"{i:06d}")


def test_file_source_never_drops_frames_even_when_inference_is_slow(small_video):
    src = open_source(str(small_video))
    sink = RecordingSink(delay_s=0.002)
    summary = run_pipeline(src.frames(), src.info.live, slow_segment(0.01), [sink])
    assert sink.indices == list(range(10))
    assert (summary.frames, summary.dropped, summary.interrupted) == (10, 0, False)
    assert sink.closed and summary.outputs == ("recorded 10",)
    assert set(summary.latency_ms) == {"preprocess", "infer", "postprocess", "total"}
    assert summary.latency_ms["infer"]["p50"] >= 10.0


def test_pipeline_output_video_has_the_input_frame_count(small_video, tmp_path, decoded_frames):
    src = open_source(str(small_video))
    sink = OverlayVideoSink(tmp_path / "o.mp4", src.info.fps, TABLE, 0.5)
    summary = run_pipeline(src.frames(), False, slow_segment(0.0), [sink])
    assert summary.frames == 10
    assert decoded_frames(tmp_path / "o.mp4") == (10, src.info.size_wh)


def test_live_source_drops_stale_frames_and_stays_current():
    source = FakeLiveSource(num_frames=60, period_s=0.002)  # 500 FPS camera
    sink = RecordingSink()
    model = FakeSegmenter(0.02)  # 50 FPS model
    summary = run_pipeline(source.frames(), True, model, [sink])
    assert summary.dropped > 20
    assert summary.frames + summary.dropped == 60
    assert model.prepared == summary.frames  # dropped frames were never preprocessed
    assert sink.indices == sorted(sink.indices) and sink.indices[-1] >= 55  # ends near "now"


def test_max_frames_limits_the_run(small_video):
    sink = RecordingSink()
    src = open_source(str(small_video), loop=True)
    summary = run_pipeline(
        src.frames(), False, slow_segment(0.0), [sink], PipelineConfig(max_frames=23)
    )
    assert summary.frames == 23 and sink.indices == list(range(23))


def test_stop_finalises_everything_inferred_so_far(small_video):
    stop = threading.Event()
    sink = RecordingSink()

    def on_frame(stats):
        if stats.frames_done == 4:
            stop.set()

    src = open_source(str(small_video), loop=True)
    summary = run_pipeline(
        src.frames(), False, slow_segment(0.0), [sink], stop=stop, on_frame=on_frame
    )
    assert summary.interrupted and summary.frames == 4 and sink.indices == [0, 1, 2, 3]
    assert sink.closed and not sink.aborted


def test_a_failing_sink_aborts_all_sinks_and_raises(small_video):
    src = open_source(str(small_video))
    good, bad = RecordingSink(), RecordingSink(fail_at=3)
    with pytest.raises(OSError, match="disk full"):
        run_pipeline(src.frames(), False, slow_segment(0.0), [good, bad])
    assert good.aborted and bad.aborted and not good.closed


def test_a_failing_model_aborts_and_raises(small_video):
    sink = RecordingSink()
    src = open_source(str(small_video))
    with pytest.raises(RuntimeError, match="model exploded"):
        run_pipeline(src.frames(), False, FakeSegmenter(fail=True), [sink])
    assert sink.aborted


def test_latency_sample_is_bounded_and_represents_the_whole_run():
    """A days-long run keeps a fixed-size uniform sample of its per-frame times."""
    from runtime.pipeline import LatencySample, percentiles
    from runtime.segmenter import StageTimes

    sample = LatencySample(capacity=500)
    for i in range(20_000):
        sample.append(StageTimes(0.0, float(i), 0.0))
    assert len(sample) == 500 and sample.seen == 20_000
    infer = sorted(t.infer_ms for t in sample)
    # uniform over all 20,000 frames, not the first or last 500
    assert infer[0] < 1_000 and infer[-1] > 19_000
    assert 8_000 < percentiles(sample)["infer"]["p50"] < 12_000
    small = LatencySample(capacity=500)
    for i in range(10):
        small.append(StageTimes(0.0, float(i), 0.0))
    assert [t.infer_ms for t in small] == [float(i) for i in range(10)]  # short runs: every frame
