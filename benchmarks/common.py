"""Shared pieces of the benchmark tables: settings, timing, artifacts built once, Markdown output.

Every table returns a `Table`: Markdown lines plus the targets it checks, so run.py can print
and write them with the machine and versions of the run.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.artifacts import ModelSpec, TorchModel
from runtime.profiling.profiler import LatencyStats, latency_stats


@dataclass(frozen=True)
class Settings:
    iters: int = 15  # timed iterations per latency
    warmup: int = 3
    eval_frames: int = 16  # generated frames for mIoU
    calib_frames: int = 16  # calibration frames for INT8
    video_frames: int = 40  # frames through the video pipeline
    threads: int | None = None  # CPU threads for torch and ONNX Runtime (None: all cores)
    sizes: tuple[int, ...] = (512, 1024)  # attention table
    quick: bool = False  # tiny model and sizes: a smoke test of the suite, not a measurement

    def __post_init__(self) -> None:
        for name in ("iters", "eval_frames", "calib_frames", "video_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Target:
    name: str  # the goal being checked, e.g. "ONNX Runtime FP32 >= 1.3x PyTorch eager"
    measured: str  # e.g. "1.52x"
    met: bool | None  # None: could not be measured
    note: str = ""  # why, when not met or not measured


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    lines: tuple[str, ...]  # Markdown body
    targets: tuple[Target, ...] = ()
    seconds: float = 0.0


@dataclass
class Context:
    """What every table shares in one run: settings, a work folder, the model and its exports."""

    settings: Settings
    workdir: Path
    spec: ModelSpec
    step: Callable[[str], None] = lambda msg: None  # progress messages (run.py shows them)
    cache: dict = field(default_factory=dict)

    def once(self, key: str, make: Callable[[], object]) -> object:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def checkpoint(self) -> Path:
        """The checkpoint every table uses (the demo weights, or random ones saved once)."""
        from benchmarks.artifacts import random_checkpoint

        if self.spec.checkpoint is not None:
            return self.spec.checkpoint
        return self.once("checkpoint", lambda: random_checkpoint(self.spec.variant, self.workdir))

    def torch_model(self) -> TorchModel:
        from benchmarks.artifacts import load_torch

        random = self.spec.checkpoint is None
        return self.once("torch", lambda: load_torch(self.checkpoint(), random))

    def onnx(self, precision: str) -> Path | str:
        """Path of an artifact ("fp32", "fp16", "int8_trt", "int8_cpu_qdq", "int8_cpu_qoperator",
        "int8_cpu_pointwise"), or a string saying why it could not be made."""
        if precision in ("fp32", "fp16", "int8_trt"):
            library = self.once("library", self._export_library)
            return library[precision.removesuffix("_trt")]
        return self.once(f"onnx:{precision}", functools.partial(self._quantize_cpu, precision))

    def _export_library(self) -> dict:
        from benchmarks.artifacts import export_with_library

        self.step("exporting FP32/FP16/INT8 with export.pipeline.export_artifacts")
        n = self.settings.calib_frames
        try:
            return export_with_library(self.checkpoint(), self.spec, self.workdir, n)
        except ImportError as err:
            return dict.fromkeys(("fp32", "fp16", "int8"), f"export library not importable ({err})")

    def _quantize_cpu(self, precision: str) -> Path | str:
        from benchmarks.artifacts import quantize_cpu_int8

        fp32 = self.onnx("fp32")
        if not isinstance(fp32, Path):
            return fp32
        self.step(f"building the {precision} ONNX")
        fmt = precision.removeprefix("int8_cpu_")  # qdq | qoperator | pointwise
        path = self.workdir / f"scaseg_{self.spec.variant}_{self.spec.height}.{precision}.onnx"
        return quantize_cpu_int8(fp32, path, self.settings.calib_frames, fmt)


def time_call(fn: Callable[[], object], warmup: int, iters: int) -> LatencyStats:
    """Latency statistics of fn() (it must return only once its work is complete)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return latency_stats(samples)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def md_table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None where either is missing."""
    return None if a is None or b is None or b == 0 else a / b


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def video_frames(path) -> list:
    """Every decodable frame of a video, in order (BGR, OpenCV)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    return frames


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
