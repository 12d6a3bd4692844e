"""Latency statistics, stage timers and the profiling loop (ONNX Runtime for real; the TensorRT
path against FAKES from tests/support/fake_tensorrt.py, which prove only our own bookkeeping)."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.backends import BackendOptions
from runtime.backends.trt_backend import TrtBackend
from runtime.io.source_types import Frame
from runtime.profiling.profiler import (
    STAGE_MEANINGS,
    STAGES,
    LoopConfig,
    StageRecorder,
    StageTimingCuda,
    TimedStages,
    latency_stats,
    open_profiled_backend,
    run_loop,
    timed_frames,
    timed_sinks,
)
from runtime.segmenter import Segmenter
from tests.support.fake_cuda import FakeCuda
from tests.support.fake_engine import make_engine
from tests.support.fake_tensorrt import FakeTrt


def test_stats_of_known_samples():
    s = latency_stats([float(v) for v in range(1, 101)])  # 1..100 ms
    assert (s.count, s.min_ms, s.max_ms, s.mean_ms) == (100, 1.0, 100.0, 50.5)
    assert s.p50_ms == pytest.approx(50.5) and s.p90_ms == pytest.approx(90.1)
    assert s.p99_ms == pytest.approx(99.01)
    assert s.jitter_ms == pytest.approx(s.p99_ms - s.p50_ms)
    assert s.throughput_fps == pytest.approx(1000 / 50.5)
    assert latency_stats([10.0, 10.0], wall_s=0.5).throughput_fps == pytest.approx(4.0)


def test_no_samples_is_an_error_that_says_what_to_do():
    with pytest.raises(ValueError, match="--frames >= 1"):
        latency_stats([])


def test_every_stage_says_what_it_timed():
    assert set(STAGES) | {"end_to_end"} == set(STAGE_MEANINGS)


def test_warmup_frames_are_left_out_of_every_stage_and_end_to_end():
    rec = StageRecorder()
    for i in range(5):
        rec.add("infer", 100.0 if i < 2 else 10.0)  # two slow warm-up frames
        rec.frame_start[i] = float(i)
        rec.frame_end[i] = i + (1.0 if i < 2 else 0.01)
    stages, e2e = rec.stats(skip=2)
    assert stages["infer"].count == 3 and stages["infer"].max_ms == 10.0
    assert e2e.count == 3 and e2e.max_ms == pytest.approx(10.0)
    assert "decode" not in stages  # stages that never ran are not reported


class _Stages:
    """Stand-in for a Segmenter: known outputs, no model."""

    def prepare(self, frame):
        return frame[None].astype(np.float32)

    def infer(self, batch):
        return batch * 2

    def postprocess(self, output, frame_hw):
        return np.zeros(frame_hw, np.uint8)


def _frames(n: int):
    for i in range(n):
        yield Frame(i, np.full((8, 8, 3), i, np.uint8), f"{i:06d}")


def test_loop_times_every_stage_of_every_frame():
    encoded = []
    stages = TimedStages(_Stages(), StageRecorder(), None)
    run_loop(_frames(10), stages, lambda f, labels: encoded.append(f.index), LoopConfig(6, 2))
    rec = stages.recorder
    for name in ("decode", "preprocess", "infer", "postprocess", "encode"):
        assert len(rec.samples[name]) == 8, name
    assert rec.samples["h2d"] == [] and rec.samples["d2h"] == []  # no GPU copies on ONNX Runtime
    assert encoded == list(range(8))
    stages_stats, e2e = rec.stats(skip=2)
    assert e2e.count == 6 and stages_stats["encode"].count == 6


def test_loop_says_when_the_source_runs_out():
    stages = TimedStages(_Stages(), StageRecorder(), None)
    with pytest.raises(ValueError, match="source ended after 3 of 5 frames"):
        run_loop(_frames(3), stages, None, LoopConfig(4, 1))


def test_timed_frames_and_sinks_give_end_to_end_per_frame():
    rec = StageRecorder()

    class Sink:
        def __init__(self):
            self.written = []

        def write(self, result):
            self.written.append(result.index)

        def close(self):
            return "x"

        def abort(self):
            pass

    class Result:
        def __init__(self, index):
            self.index = index

    sinks = timed_sinks([Sink()], rec)
    for frame in timed_frames(_frames(3), rec):
        for sink in sinks:
            sink.write(Result(frame.index))
    assert len(rec.samples["decode"]) == 3 and len(rec.samples["encode"]) == 3
    assert len(rec.end_to_end_ms()) == 3
    assert [s.close() for s in sinks] == ["x", None]  # the end marker writes nothing


def test_onnx_model_opens_as_usual_and_segments_the_same(plain_model):
    backend, cuda = open_profiled_backend(plain_model, options=BackendOptions(provider="cpu"))
    assert cuda is None
    frame = np.random.default_rng(0).integers(0, 255, (60, 80, 3), np.uint8)
    with Segmenter(backend) as seg, Segmenter(plain_model, provider="cpu") as plain:
        stages = TimedStages(seg, StageRecorder(), None)
        labels = stages.postprocess(stages.infer(stages.prepare(frame)), frame.shape[:2])
        np.testing.assert_array_equal(labels, plain(frame))


def test_missing_model_error_is_the_runtimes(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        open_profiled_backend(tmp_path / "nope.engine")


# --- TensorRT path, against FAKES ---------------------------------------------------------------


def test_fake_trt_infer_is_split_into_synchronised_h2d_compute_d2h(tmp_path):
    path, meta = make_engine(tmp_path)
    fake = FakeCuda()
    cuda = StageTimingCuda(fake)
    backend = TrtBackend(path, meta, BackendOptions(), tensorrt=FakeTrt(cuda=fake), cuda=cuda)
    rec = StageRecorder()
    stages = TimedStages(Segmenter(backend), rec, cuda)
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    out = stages.infer(x)
    assert out.shape == (1, 4, 16, 16)
    assert [len(rec.samples[s]) for s in ("h2d", "infer", "d2h")] == [1, 1, 1]
    # A sync after the input copy, one before and one after the output copy, then the backend's.
    assert fake.device.log == [("sync",), ("execute",), ("sync",), ("sync",), ("sync",)]
    assert cuda.name == "fake-cuda"  # everything else passes through to the wrapped API
    backend.close()
