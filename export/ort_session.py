"""ONNX Runtime CPU sessions for the export checks (the runtime's backends are for deployment)."""

from __future__ import annotations

import os

from runtime.deps import require


def cpu_session(model: bytes | str | os.PathLike, threads: int | None = None):
    """An InferenceSession on the CPU EP with full graph optimisation and quiet logging."""
    ort = require("onnxruntime", "to check exported graphs on the CPU")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only; ORT warns about every unused initializer
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
