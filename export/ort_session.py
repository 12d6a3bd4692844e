"""ONNX Runtime CPU sessions for the export checks (the runtime's backends are for deployment)."""

from __future__ import annotations

import os

from runtime.deps import require


def cpu_session(model: bytes | str | os.PathLike, threads: int | None = None, basic: bool = False):
    """An InferenceSession on the CPU EP with full graph optimisation and quiet logging.

    basic: basic optimisations only, so Q/DQ nodes are not fused into ONNX Runtime's own int8
    kernels and run as written (quantize, dequantize, float op): what TensorRT's explicit Q/DQ
    mean, and what the INT8 analyses measure."""
    ort = require("onnxruntime", "to check exported graphs on the CPU")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only; ORT warns about every unused initializer
    level = ort.GraphOptimizationLevel
    opts.graph_optimization_level = level.ORT_ENABLE_BASIC if basic else level.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
