"""Table 2: decoder attention kinds (strip / vanilla cross / self) at 512x512 and 1024x1024.

Each (kind, size) runs in its own subprocess: the decoder's peak memory is then that process's
alone, and a configuration that does not fit is stopped by an address-space limit (reported as
out of memory) or a time-out instead of taking the machine down. Self-attention on stage 1 at
1024x1024 has (256*256)^2 = 4.3e9 attention entries per head (17 GB in float32), so it is
expected not to fit; that is measured, not assumed.

GFLOPs: scaseg.summary's convention (1 MAC = 1 FLOP; conv/linear/matmul only), on the meta device.
Latency and memory: the decoder alone (decode_head) on features the encoder computed once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Context, Table, Target, fmt_ratio, md_table, ratio

KINDS = ("strip", "cross", "self")
TIMEOUT_S = 240
MEMORY_FRACTION = 0.6  # of MemAvailable, as the worker's address-space limit


@dataclass(frozen=True)
class Result:
    kind: str
    size: int
    decoder_gflops: float | None = None
    model_gflops: float | None = None
    p50_ms: float | None = None
    peak_mb: float | None = None  # decoder's resident memory above the pre-decoder level
    status: str = "ok"  # ok | out of memory (...) | time-out (...) | error (...)


def attention_entries(size: int, kind: str, variant: str = "t") -> int:
    """Largest attention map of the decoder (entries summed over heads), from the config."""
    from scaseg.config import variant_config

    cfg = variant_config(variant, 8, attention=kind)
    biggest = 0
    for stage, heads in enumerate(cfg.decoder.heads):
        n = (size // (4 * 2**stage)) ** 2  # queries: stage i at stride 4 * 2^i
        m = n if kind == "self" else (size // 32) ** 2  # keys: itself, or the stride-32 grid
        biggest = max(biggest, n * m * heads)
    return biggest


def _mem_available_bytes() -> int | None:
    text = Path("/proc/meminfo").read_text() if os.path.exists("/proc/meminfo") else ""
    found = re.search(r"MemAvailable:\s+(\d+) kB", text)
    return int(found.group(1)) * 1024 if found else None


def run_worker(kind: str, size: int, iters: int, variant: str, threads: int | None) -> dict:
    """In the subprocess: GFLOPs, decoder latency and decoder peak memory of one configuration."""
    import torch

    from benchmarks.common import time_call
    from scaseg.model import build_model
    from scaseg.summary import count_gmacs

    if threads:
        torch.set_num_threads(threads)
    out = {
        "decoder_gflops": count_gmacs(
            build_model(variant, 8, attention=kind), size, size, "decoder"
        ),
        "model_gflops": count_gmacs(build_model(variant, 8, attention=kind), size, size),
    }
    model = build_model(variant, 8, attention=kind).eval()
    with torch.inference_mode():
        feats = model.backbone(torch.randn(1, 3, size, size))
        base = _reset_peak()
        try:
            stats = time_call(lambda: model.decode_head(feats), 1, iters)
        except (RuntimeError, MemoryError) as err:  # torch's allocator failure is a RuntimeError
            if "alloc" not in str(err).lower() and not isinstance(err, MemoryError):
                raise
            wanted = re.search(r"allocate (\d+) bytes", str(err))
            detail = (
                f"tried to allocate {int(wanted.group(1)) / 1024**3:.1f} GiB"
                if wanted
                else "allocation failed"
            )
            out["status"] = f"out of memory ({detail})"
            return out
    out.update(p50_ms=stats.p50_ms, peak_mb=_peak_mb() - base, status="ok")
    return out


def _reset_peak() -> float:
    """Reset the kernel's peak-RSS counter (VmHWM) and return the current RSS in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux >= 4.0: reset the peak RSS to the current RSS
    except OSError:
        pass  # then the peak may include the encoder's; the table says "above pre-decoder RSS"
    return _status_mb("VmRSS")


def _peak_mb() -> float:
    return _status_mb("VmHWM")


def _status_mb(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1)) / 1024


def measure(kind: str, size: int, iters: int, variant: str, threads: int | None) -> Result:
    """Run one configuration in a subprocess with a memory limit and a time-out."""
    limit = int((_mem_available_bytes() or 8 * 1024**3) * MEMORY_FRACTION)
    cmd = [sys.executable, "-m", "benchmarks.attention", "--worker", kind, str(size), str(iters),
           variant, str(threads or 0), str(limit)]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return Result(kind, size, status=f"time-out (over {TIMEOUT_S} s)")
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        why = (
            _oom_reason(done, limit)
            or f"error: {(done.stderr.strip().splitlines() or ['?'])[-1][:160]}"
        )
        return Result(kind, size, status=why)
    data = json.loads(lines[-1])
    status = data.pop("status", "ok")
    if status != "ok":
        gib = attention_entries(size, kind, variant) * 4 / 1024**3
        status += f"; one attention map needs {gib:.1f} GiB, limit {limit / 1024**3:.1f} GiB"
    return Result(kind, size, status=status, **data)


def _oom_reason(done: subprocess.CompletedProcess, limit: int) -> str | None:
    if (
        done.returncode in (-9, 137)
        or "MemoryError" in done.stderr
        or "alloc" in done.stderr.lower()
    ):
        return (
            f"out of memory (killed or allocation failed under a {limit / 1024**3:.1f} GiB limit)"
        )
    return None


def run(ctx: Context) -> Table:
    t0 = time.perf_counter()
    s, variant = ctx.settings, ctx.spec.variant
    results = []
    for size in s.sizes:
        for kind in KINDS:
            ctx.step(f"{kind} attention at {size}x{size}")
            iters = max(1, s.iters // (2 if size >= 1024 else 1) // 2)
            results.append(measure(kind, size, iters, variant, s.threads))
    return Table("attention", "2. Decoder attention: strip vs vanilla cross vs self",
                 tuple(_markdown(results, ctx)), _targets(results, s.sizes[-1]), time.perf_counter() - t0)  # fmt: skip


def _markdown(results: list[Result], ctx: Context) -> list[str]:
    by = {(r.kind, r.size): r for r in results}
    rows = []
    for r in results:
        strip = by.get(("strip", r.size))
        speed = ratio(r.p50_ms, strip.p50_ms) if strip else None
        rows.append([
            r.kind, f"{r.size}x{r.size}", _f(r.decoder_gflops, 2), _f(r.model_gflops, 2),
            _f(r.p50_ms, 1), fmt_ratio(speed), _f(r.peak_mb, 0),
            f"{attention_entries(r.size, r.kind, ctx.spec.variant) / 1e6:.4g}", r.status,
        ])  # fmt: skip
    header = ["attention", "input", "decoder GFLOPs", "model GFLOPs", "decoder p50 ms",
              "latency vs strip", "decoder peak MB", "largest attention map (M entries)", "status"]  # fmt: skip
    intro = [
        f"SCASeg-{ctx.spec.variant.upper()} decoder (random weights: speed and memory do not depend "
        "on them), PyTorch eager FP32 on the CPU, batch 1. Peak MB = the decoder's resident memory "
        "above the level before it ran (VmHWM reset via /proc/self/clear_refs). Each configuration "
        f"runs in its own process with an address-space limit of {MEMORY_FRACTION:.0%} of free "
        f"memory and a {TIMEOUT_S} s time-out.",
        "",
    ]
    return intro + md_table(header, rows)


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _targets(results: list[Result], size: int) -> tuple[Target, ...]:
    by = {(r.kind, r.size): r for r in results}
    strip, cross = by.get(("strip", size)), by.get(("cross", size))
    speed = ratio(cross.p50_ms if cross else None, strip.p50_ms if strip else None)
    return (
        Target(f"strip attention decoder faster than vanilla cross at {size}x{size}",
               f"vanilla / strip latency = {fmt_ratio(speed)}", None if speed is None else speed > 1.0),
    )  # fmt: skip


def _worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--worker", nargs=6, metavar=("KIND", "SIZE", "ITERS", "VARIANT", "THREADS", "LIMIT")
    )
    args = parser.parse_args(argv)
    kind, size, iters, variant, threads, limit = args.worker
    import resource

    # The limit makes an over-large allocation fail inside torch (a RuntimeError we report)
    # instead of the kernel's OOM killer picking a process on a shared machine.
    resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    result = run_worker(kind, int(size), int(iters), variant, int(threads) or None)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
