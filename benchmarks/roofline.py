"""Table 5: achieved model throughput (GFLOP/s) against this machine's measured matmul peak.

Peak: the best of a large float32 matrix multiply in numpy (its BLAS) and in torch, 2*n^3 FLOPs
per product. Model: 2 x its MACs (scaseg.summary counts conv/linear/matmul MACs) per inference,
divided by the model-call latency (table 1's when it ran in this suite, else measured here).
INT8 rows count the same FP32-equivalent work, so their GFLOP/s is "effective", not int8 ops.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import Context, Table, md_table, time_call, torch_threads

GEMM_N = 2048


def numpy_peak_gflops(n: int = GEMM_N, repeats: int = 5) -> float:
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    a @ b  # warm-up: thread pool start, page faults
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def torch_peak_gflops(n: int = GEMM_N, repeats: int = 5, threads: int | None = None) -> float:
    import torch

    with torch_threads(threads):
        a, b = torch.rand(n, n), torch.rand(n, n)
        torch.mm(a, b)
        best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def model_latencies(ctx: Context) -> dict[str, float]:
    """p50 ms per runner: from table 1 when it ran in this suite, else measured now."""
    known = ctx.cache.get("latency_p50_ms")
    if known:
        return dict(known)
    import torch

    from benchmarks.precision import eval_samples
    from runtime.backends import BackendOptions
    from runtime.preprocess import Preprocess, preprocess
    from runtime.segmenter import Segmenter

    s, pp = ctx.settings, Preprocess(ctx.spec.height, ctx.spec.width)
    batch = preprocess(eval_samples(pp, 1)[0][0], pp)
    model, x = ctx.torch_model().model, torch.from_numpy(batch)
    with torch_threads(s.threads), torch.inference_mode():
        out = {"PyTorch eager FP32": time_call(lambda: model(x), s.warmup, s.iters).p50_ms}
    with Segmenter(
        ctx.onnx("fp32"), options=BackendOptions("cpu", intra_op_threads=s.threads)
    ) as seg:
        out["ONNX Runtime FP32"] = time_call(lambda: seg.infer(batch), s.warmup, s.iters).p50_ms
    return out


def run(ctx: Context) -> Table:
    from scaseg.model import build_model
    from scaseg.summary import count_gmacs

    t0 = time.perf_counter()
    ctx.step("matmul peak")
    peaks = {"numpy": numpy_peak_gflops(), "torch": torch_peak_gflops(threads=ctx.settings.threads)}
    peak = max(peaks.values())
    gmacs = count_gmacs(build_model(ctx.spec.variant, 8), ctx.spec.height, ctx.spec.width)
    ctx.step("model latency")
    rows = [
        [f"matmul peak ({GEMM_N}x{GEMM_N} fp32, {k})", "-", f"{v:.1f}", f"{v / peak:.0%}"]
        for k, v in peaks.items()
    ]
    for name, p50 in model_latencies(ctx).items():
        achieved = 2 * gmacs / (p50 / 1e3)
        rows.append([name, f"{p50:.1f}", f"{achieved:.1f}", f"{achieved / peak:.0%}"])
    lines = [
        f"SCASeg-{ctx.spec.variant.upper()} at {ctx.spec.height}x{ctx.spec.width}: {gmacs:.2f} GMACs = "
        f"{2 * gmacs:.2f} GFLOP per inference. Peak = best of numpy and torch float32 matmul "
        f"({peak:.1f} GFLOP/s).",
        "",
        *md_table(["what", "p50 ms", "GFLOP/s", "of measured peak"], rows),
    ]
    return Table(
        "roofline",
        "5. Achieved throughput vs measured matmul peak",
        tuple(lines),
        (),
        time.perf_counter() - t0,
    )
