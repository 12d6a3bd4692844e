"""GPU table (only where a CUDA GPU, TensorRT and trtexec are present): TensorRT FP16/INT8 engines
through our runtime vs ONNX Runtime CUDA vs trtexec on the same engine.

Engines are built by the export library (export.trt_build, what `scaseg-export build-engine`
runs) from the suite's FP16 and INT8 (TensorRT Q/DQ) ONNX files; trtexec then loads the very same
engine file for its timing (--loadEngine), so only the runners differ. "Our overhead"
= our synchronous infer (H2D + compute + D2H, host staging copies included) p50 over trtexec's
per-query Latency median on the same engine file.

trtexec must be the same TensorRT build as the Python `tensorrt` that built the engine (a plan
loads only in its own library version): its banner ("[TensorRT v100300]", "TensorRT version:
10.3.0") is compared first. Dynamic engines are timed at the input shape our runtime gets
(`--shapes=<input>:NxCxHxW`, the input name from the engine's sidecar): without it trtexec sets
every dynamic dimension to 1, outside the profile. A precision that cannot be timed becomes a
row saying why; the rest of the table stays.

Status: written against trtexec's "Performance summary" lines (TensorRT 8.6-10.x) and the
runtime's TensorRT backend; it has never run: the machine that produced BENCHMARKS.md has no GPU.
Tested with a fake trtexec script (tests/benchmarks/).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from benchmarks.common import Context, Table, md_table
from runtime.deps import available

TRTEXEC_CANDIDATES = ("trtexec", "/usr/src/tensorrt/bin/trtexec", "/opt/tensorrt/bin/trtexec")
STAT = r"min = ([\d.]+) ms, max = ([\d.]+) ms, mean = ([\d.]+) ms, median = ([\d.]+) ms"
SUMMARY = re.compile(rf"\]\s+(Latency|GPU Compute Time|H2D Latency|D2H Latency): {STAT}")
VERSION_LINE = re.compile(r"TensorRT version:\s*v?(\d+(?:\.\d+)+)")
VERSION_TAG = re.compile(r"\[TensorRT v(\d{4,6})\]")


class TrtexecError(RuntimeError):
    """trtexec could not time an engine (or is another TensorRT build than the engine's)."""


def find_trtexec() -> str | None:
    for candidate in TRTEXEC_CANDIDATES:
        path = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if path:
            return path
    return None


def skip_reason() -> str | None:
    """Why the GPU table cannot run here, or None when it can."""
    missing = [m for m in ("tensorrt",) if not available(m)]
    if not (
        available("pycuda.driver") or available("cuda.bindings.runtime") or available("cuda.cudart")
    ):
        missing.append("pycuda or cuda-python")
    if find_trtexec() is None:
        missing.append("trtexec")
    if shutil.which("nvidia-smi") is None and not Path("/etc/nv_tegra_release").exists():
        missing.append("an NVIDIA GPU (no nvidia-smi, not a Jetson)")
    return f"skipped: {', '.join(missing)} not found on this machine" if missing else None


def parse_trtexec(text: str) -> dict[str, dict[str, float]]:
    """{"Latency" | "GPU Compute Time" | "H2D Latency" | "D2H Latency": {min, max, mean, median}}"""
    out = {}
    for match in SUMMARY.finditer(text):
        name, *values = match.groups()
        out[name] = dict(zip(("min", "max", "mean", "median"), (float(v) for v in values)))
    return out


def parse_trtexec_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from trtexec's output: "TensorRT version: 10.3.0", else its banner
    tag "[TensorRT v100300]" (8.x encodes major*1000 + minor*100 + patch, 8601 = 8.6.1; 10 and
    later major*10000 + minor*100 + patch, 100300 = 10.3.0); None if neither is there."""
    line = VERSION_LINE.search(text)
    if line:
        parts = [int(p) for p in line.group(1).split(".")][:3]
        return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]
    tag = VERSION_TAG.search(text)
    if tag is None:
        return None
    n = int(tag.group(1))
    if n >= 100000:
        return n // 10000, n // 100 % 100, n % 100
    return n // 1000, n // 100 % 10, n % 100


def trtexec_version(trtexec: str) -> tuple[int, int, int] | None:
    """The TensorRT version trtexec runs on, from the banner `trtexec --help` prints."""
    try:
        done = subprocess.run(
            [trtexec, "--help"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_trtexec_version(done.stdout + done.stderr)


def check_trtexec_version(found: tuple[int, int, int] | None, python_version: str) -> None:
    """Refuse a trtexec of another TensorRT than the Python module that builds the engines."""
    from runtime.trt_compat import parse_version

    wanted = parse_version(python_version)[:3]
    if found is None:
        raise TrtexecError(
            "cannot tell which TensorRT trtexec runs on (no version in its banner); put the "
            f"trtexec of TensorRT {python_version} first on PATH"
        )
    if tuple(found) != tuple(wanted):
        raise TrtexecError(
            f"trtexec is TensorRT {'.'.join(map(str, found))} but the engines are built with "
            f"Python tensorrt {python_version}, and a plan loads only in its own version; put "
            f"the trtexec of TensorRT {python_version} first on PATH"
        )


def shapes_arg(engine: Path, shape: tuple[int, ...]) -> list[str]:
    """`--shapes=<input>:NxCxHxW` for a dynamic engine (the input name from its sidecar);
    nothing for a static one, whose shape trtexec takes from the engine."""
    from runtime.meta import read_meta

    spec = read_meta(engine).input
    if not spec.dynamic and spec.profile is None:
        return []
    return [f"--shapes={spec.name}:{'x'.join(str(int(d)) for d in shape)}"]


def build_engine(onnx: Path) -> Path:
    """The engine scaseg-export builds (export.trt_build), next to the ONNX, with its sidecar."""
    from export.trt_build import EngineOptions
    from export.trt_build import build_engine as export_build_engine

    return export_build_engine(onnx, EngineOptions(force=True)).path


def trtexec_latency(
    trtexec: str, engine: Path, iters: int, shape: tuple[int, ...] | None = None
) -> dict[str, dict[str, float]]:
    """trtexec's summary for `engine`; `shape`: the input shape to time a dynamic engine at."""
    cmd = [
        trtexec,
        f"--loadEngine={engine}",
        f"--iterations={iters}",
        "--warmUp=500",
        "--duration=0",
        *(shapes_arg(engine, shape) if shape is not None else []),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    stats = parse_trtexec(done.stdout)
    if done.returncode != 0 or "Latency" not in stats:
        tail = " ".join((done.stdout + done.stderr)[-300:].split())
        raise TrtexecError(f"trtexec could not time {engine.name}: {tail}")
    return stats


def our_latency(engine: Path, batch, warmup: int, iters: int) -> dict[str, float]:
    """p50 of our TensorRT backend: whole infer, and its stream-synchronised H2D/compute/D2H."""
    from runtime.profiling.profiler import (
        StageRecorder,
        TimedStages,
        latency_stats,
        open_profiled_backend,
    )
    from runtime.segmenter import Segmenter

    backend, cuda = open_profiled_backend(engine)
    with Segmenter(backend) as seg:
        stages = TimedStages(seg, StageRecorder(), cuda)
        for _ in range(warmup):
            stages.infer(batch)
        totals = []
        for _ in range(iters):
            t0 = time.perf_counter()
            stages.infer(batch)
            totals.append((time.perf_counter() - t0) * 1e3)
    out = {s: latency_stats(v[warmup:]).p50_ms for s, v in stages.recorder.samples.items() if v}
    out["total"] = latency_stats(totals).p50_ms
    return out


def ort_cuda_latency(onnx: Path, batch, warmup: int, iters: int) -> float | str:
    from benchmarks.common import time_call
    from runtime.backends import BackendOptions
    from runtime.segmenter import Segmenter

    try:
        with Segmenter(onnx, options=BackendOptions(provider="cuda")) as seg:
            return time_call(lambda: seg.infer(batch), warmup, iters).p50_ms
    except (RuntimeError, ImportError) as err:
        return f"not run: {str(err).splitlines()[0][:120]}"


def run(ctx: Context) -> Table:
    t0 = time.perf_counter()
    reason = skip_reason()
    if reason is not None:
        lines = (f"TensorRT FP16/INT8 vs ONNX Runtime CUDA vs trtexec: {reason}. Run "
                 "`make bench` on a GPU machine or a Jetson to fill this table.",)  # fmt: skip
        return Table(
            "gpu",
            "GPU: TensorRT vs ONNX Runtime CUDA vs trtexec",
            lines,
            (),
            time.perf_counter() - t0,
        )
    return _run_gpu(ctx, t0)


def _python_tensorrt_version() -> str:
    import tensorrt

    return tensorrt.__version__


def _run_gpu(ctx: Context, t0: float, trt_version: str | None = None) -> Table:
    from benchmarks.precision import eval_samples
    from runtime.preprocess import Preprocess, preprocess

    trtexec = find_trtexec()
    pp = Preprocess(ctx.spec.height, ctx.spec.width)
    batch = preprocess(eval_samples(pp, 1)[0][0], pp)
    trt_version = trt_version or _python_tensorrt_version()
    try:
        check_trtexec_version(trtexec_version(trtexec), trt_version)
        version_error = None
    except TrtexecError as err:
        version_error = str(err)
    rows = []
    for precision, key in (("fp16", "fp16"), ("int8", "int8_trt")):
        onnx = ctx.onnx(key)
        if not isinstance(onnx, Path):
            rows.append([precision, "-", "-", "-", "-", "-", f"no ONNX: {onnx}"])
            continue
        try:
            rows.append(_time_precision(ctx, precision, onnx, batch, trtexec, version_error))
        except Exception as err:  # one precision failing must not lose the others' rows
            reason = " ".join(str(err).split())[:300] or type(err).__name__
            rows.append([precision, "-", "-", "-", "-", "-", f"failed: {reason}"])
    header = ["engine", "our runtime p50 ms", "trtexec median ms", "our overhead (ours / trtexec)",
              "ONNX Runtime CUDA p50 ms", "ORT CUDA / ours", "note"]  # fmt: skip
    return Table(
        "gpu",
        "GPU: TensorRT vs ONNX Runtime CUDA vs trtexec",
        tuple(md_table(header, rows)),
        (),
        time.perf_counter() - t0,
    )


def _time_precision(ctx, precision, onnx, batch, trtexec, version_error) -> list[str]:
    s = ctx.settings
    ctx.step(f"building the {precision} engine (export.trt_build)")
    engine = build_engine(onnx)
    ctx.step(f"timing the {precision} engine")
    ours = our_latency(engine, batch, s.warmup, max(s.iters, 50))
    ort = ort_cuda_latency(onnx, batch, s.warmup, max(s.iters, 50))
    ours_text = (f"{ours['total']:.2f} (h2d {ours.get('h2d', 0):.2f}, compute "
                 f"{ours.get('infer', 0):.2f}, d2h {ours.get('d2h', 0):.2f})")  # fmt: skip
    ort_text = ort if isinstance(ort, str) else f"{ort:.2f}"
    ort_ratio = "-" if isinstance(ort, str) else f"{ort / ours['total']:.2f}x"
    try:
        if version_error is not None:
            raise TrtexecError(version_error)
        ref = trtexec_latency(trtexec, engine, max(s.iters, 200), tuple(batch.shape))
    except TrtexecError as err:  # our and ORT's numbers still stand
        return [precision, ours_text, "-", "-", ort_text, ort_ratio, f"trtexec: {err}"]
    ref_lat = ref["Latency"]["median"]
    return [
        precision, ours_text, f"{ref_lat:.2f} (compute {ref['GPU Compute Time']['median']:.2f})",
        f"{ours['total'] / ref_lat:.2f}x", ort_text, ort_ratio, "",
    ]  # fmt: skip
