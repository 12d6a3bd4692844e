"""Per-layer timings: ONNX Runtime's profiler or OpenVINO's performance counters on .onnx models,
TensorRT's IProfiler on engines.

All run as a separate pass after the timed loop, because profiling itself slows inference down
(ONNX Runtime writes a trace event per node; OpenVINO times every node; TensorRT makes every
enqueue synchronous per layer).
The first profiled inference is dropped as warm-up. Times are per inference, averaged.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.backends import BackendOptions
from runtime.deps import require
from runtime.errors import RunError, UserInputError


@dataclass(frozen=True)
class LayerTime:
    name: str  # node / layer name, or the op type in LayerProfile.op_types
    op_type: str
    mean_ms: float  # per inference
    share: float  # fraction of the summed layer time
    count: int  # nodes of this op type (op_types), 1 for a single layer

    def to_dict(self) -> dict:
        data = asdict(self)
        data["mean_ms"] = round(self.mean_ms, 5)
        data["share"] = round(self.share, 5)
        return data


@dataclass(frozen=True)
class LayerProfile:
    source: str  # what produced the numbers, e.g. "onnxruntime 1.19 CPUExecutionProvider"
    runs: int  # profiled inferences averaged (warm-up excluded)
    total_ms: float  # summed layer time per inference
    layers: tuple[LayerTime, ...]  # slowest first
    op_types: tuple[LayerTime, ...]  # slowest first

    def top(self, k: int) -> tuple[LayerTime, ...]:
        return self.layers[:k]

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "runs": self.runs,
            "total_ms": round(self.total_ms, 4),
            "layers": [t.to_dict() for t in self.layers],
            "op_types": [t.to_dict() for t in self.op_types],
        }


def aggregate(total_ms: dict[str, float], op_type: dict[str, str], runs: int, source: str):
    """LayerProfile from each layer's time summed over `runs` inferences."""
    if runs < 1 or not total_ms:
        raise RunError(f"{source}: no per-layer timings were reported (runs={runs})")
    per_run = {name: ms / runs for name, ms in total_ms.items()}
    grand = sum(per_run.values()) or 1.0
    layers = tuple(
        LayerTime(name, op_type.get(name, "?"), ms, ms / grand, 1)
        for name, ms in sorted(per_run.items(), key=lambda kv: -kv[1])
    )
    by_op: dict[str, list[float]] = defaultdict(list)
    for layer in layers:
        by_op[layer.op_type].append(layer.mean_ms)
    op_types = tuple(
        LayerTime(op, op, sum(v), sum(v) / grand, len(v))
        for op, v in sorted(by_op.items(), key=lambda kv: -sum(kv[1]))
    )
    return LayerProfile(source, runs, sum(per_run.values()), layers, op_types)


# ---------------------------------------------------------------------------------------------
# ONNX Runtime


def parse_ort_trace(events: list[dict], skip_runs: int = 1) -> tuple[dict, dict, int]:
    """ONNX Runtime's profile JSON (a Chrome trace) -> ({node: summed ms}, {node: op}, runs).

    Kernel events are "cat": "Node" named "<node>_kernel_time" with "dur" in microseconds and
    args.op_name; each inference is one "model_run" Session event. Nodes inside the first
    `skip_runs` model_run windows are dropped (allocation and first-touch cost).
    """
    runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
        key=lambda e: e["ts"],
    )
    skipped = [(e["ts"], e["ts"] + e["dur"]) for e in runs[:skip_runs]]
    total_ms: dict[str, float] = defaultdict(float)
    op_type: dict[str, str] = {}
    for e in events:
        name = str(e.get("name", ""))
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue  # fence events (older ORT) and session events
        if any(lo <= e["ts"] <= hi for lo, hi in skipped):
            continue
        node = name.removesuffix("_kernel_time")
        total_ms[node] += float(e["dur"]) / 1e3
        op_type[node] = str(e.get("args", {}).get("op_name", "?"))
    return dict(total_ms), op_type, max(len(runs) - skip_runs, 0)


def profile_onnxruntime(
    backend: object, options: BackendOptions, batch: np.ndarray, runs: int
) -> LayerProfile:
    """Per-node times of an OrtBackend's model, from a second session with profiling on.

    The second session uses the providers the backend's session really loaded, with the same
    provider options, so the per-node times describe the same kernels.
    """
    ort = require("onnxruntime", "for ONNX Runtime per-layer profiling")
    from runtime.backends.ort_backend import provider_options

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if options.intra_op_threads:
        so.intra_op_num_threads = options.intra_op_threads
    providers = [(p, provider_options(p, backend.meta, options)) for p in backend.providers]
    feed = {backend.meta.input.name: batch}
    with tempfile.TemporaryDirectory(prefix="scaseg-ortprof-") as tmp:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(backend.path), so, providers=providers)
        for _ in range(runs + 1):  # +1: the warm-up run parse_ort_trace drops
            session.run(None, feed)
        trace = Path(session.end_profiling())
        events = json.loads(trace.read_text(encoding="utf-8"))
    total_ms, op_type, n = parse_ort_trace(events, skip_runs=1)
    source = (
        f"onnxruntime {ort.__version__} {backend.providers[0]} (SessionOptions.enable_profiling)"
    )
    return aggregate(total_ms, op_type, n, source)


# ---------------------------------------------------------------------------------------------
# OpenVINO


def add_ov_counters(infos: list, total_ms: dict[str, float], op_type: dict[str, str]) -> None:
    """Sum one inference's OpenVINO ProfilingInfo entries into total_ms / op_type.

    Nodes OpenVINO fused away or did not run (status OPTIMIZED_OUT / NOT_RUN: inputs, constants,
    outputs) are left out. A node's type is its layer type ("Convolution", "Reorder", "Subgraph"),
    so op types group across kernels; which kernel ran (int8, bf16 or f32) is counted by the
    backend's int8_layers and inference_precision instead.
    """
    for info in infos:
        if getattr(info.status, "name", str(info.status)) != "EXECUTED":
            continue
        total_ms[info.node_name] += info.real_time.total_seconds() * 1e3
        op_type[info.node_name] = info.node_type


def profile_openvino(backend: object, batch: np.ndarray, runs: int) -> LayerProfile:
    """Per-node times of an OvBackend's model from a second compiled model with PERF_COUNT on."""
    compiled = backend.compile_for_profiling()
    request = compiled.create_infer_request()
    feed = {compiled.input(backend.meta.input.name): batch}
    request.infer(feed)  # warm-up run, not counted
    total_ms: dict[str, float] = defaultdict(float)
    op_type: dict[str, str] = {}
    for _ in range(runs):
        request.infer(feed)
        add_ov_counters(request.get_profiling_info(), total_ms, op_type)
    source = f"{backend.description} (PERF_COUNT performance counters)"
    return aggregate(dict(total_ms), op_type, runs, source)


# ---------------------------------------------------------------------------------------------
# TensorRT

_SUFFIX = re.compile(r"_\d+$")


def trt_op_type(layer_name: str) -> str:
    """An op type from a TensorRT layer name (IProfiler reports names only).

    The ONNX parser names layers after their ONNX nodes ("/decode_head/attn/MatMul"); fused
    layers join names with " + "; reformats, Myelin "ForeignNode"s and fused pointwise ("PWN(")
    layers get a group of their own.
    """
    name = layer_name.strip()
    if name.startswith("Reformatting") or "Reformat" in name.split(" ")[0]:
        return "Reformat"
    if "ForeignNode" in name:
        return "ForeignNode (Myelin)"
    if name.startswith("PWN("):
        return "Pointwise (fused)"
    parts = [_SUFFIX.sub("", p.strip().rsplit("/", 1)[-1]) for p in name.split(" + ")]
    return "+".join(p for p in parts if p) or "?"


def profile_tensorrt(backend: object, batch: np.ndarray, runs: int) -> LayerProfile:
    """Per-layer times of a TrtBackend through TensorRT's IProfiler (report_layer_time).

    The execution context's enqueue_emits_profile is true by default, so each enqueue reports
    its layers synchronously; per-layer profiling cannot run inside a CUDA graph (the backend
    refuses with a message).
    """
    total_ms: dict[str, float] = defaultdict(float)
    counting = {"on": False}

    def on_layer(name: str, ms: float) -> None:
        if counting["on"]:
            total_ms[name] += ms

    backend.set_layer_profiler(on_layer)
    try:
        backend.infer(batch)  # warm-up run, not counted
        counting["on"] = True
        for _ in range(runs):
            backend.infer(batch)
    finally:
        backend.set_layer_profiler(None)
    op_type = {name: trt_op_type(name) for name in total_ms}
    version = getattr(getattr(backend, "_trt", None), "__version__", "?")
    return aggregate(dict(total_ms), op_type, runs, f"tensorrt {version} IProfiler")


def profile_layers(
    backend: object, options: BackendOptions, batch: np.ndarray, runs: int
) -> LayerProfile:
    """Per-layer profile of either backend; `batch` is a prepared model input."""
    if runs < 1:
        raise UserInputError(f"layer profiling needs at least 1 run, got {runs}")
    if hasattr(backend, "set_layer_profiler"):
        return profile_tensorrt(backend, batch, runs)
    if hasattr(backend, "compile_for_profiling"):
        return profile_openvino(backend, batch, runs)
    if hasattr(backend, "providers"):
        return profile_onnxruntime(backend, options, batch, runs)
    raise TypeError(
        f"{type(backend).__name__} has no per-layer profiler; use an OrtBackend, OvBackend or "
        "TrtBackend"
    )
