"""A small, valid profile report (runtime.profiling.report) built from made-up timings."""

from __future__ import annotations

from runtime.profiling.envinfo import MemoryUsage, capture_environment
from runtime.profiling.layer_profile import aggregate
from runtime.profiling.profiler import StageRecorder
from runtime.profiling.report import build_report

MODEL = {"path": "m.onnx", "name": "m.onnx", "variant": "t", "precision": "fp32", "input": {},
         "output": {}, "fused_preprocess": False, "fused_argmax": False}  # fmt: skip


def make_report(infer_ms: float = 10.0, frames: int = 8, layers: bool = True) -> dict:
    rec = StageRecorder()
    for i in range(frames):
        for stage, ms in (("decode", 1.0), ("preprocess", 2.0), ("infer", infer_ms + i % 2)):
            rec.add(stage, ms)
        rec.frame_start[i], rec.frame_end[i] = float(i), i + (infer_ms + 3.0) / 1e3
    profile = (
        aggregate({"conv": 6.0, "mm": 2.0}, {"conv": "Conv", "mm": "MatMul"}, 2, "test")
        if layers
        else None
    )
    memory = MemoryUsage(100.0, "test", 90.0, None, None, None, 1.0)
    return build_report(
        tool="test", command="scaseg-profile m.onnx", model=MODEL, recorder=rec, warmup=2,
        source="generated", pipelined=False, layers=profile, memory=memory,
        environment=capture_environment(),
    )  # fmt: skip
