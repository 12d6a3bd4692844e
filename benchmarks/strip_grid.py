"""Exact vs grid Strip Cross-Attention (scaseg/strip_grid.py) as exported ONNX graphs on the CPU.

    python -m benchmarks.strip_grid [--sizes 512x512,512x1024,1024x2048] [--grid 256]
        [--extra-grids 128,512] [--iters 5] [--warmup 2] [--every 25] [--out FILE.md]

1. The demo model (scaseg/weights/scaseg_t_demo.safetensors) is exported per size, exact and grid
   form, FP32, static shape, by export.onnx_export.export_onnx (the legacy exporter).
   --extra-grids: grid forms with other G, at the largest size only.
2. Engines: ONNX Runtime (CPU EP) and OpenVINO (CPU, f32 inference precision: this CPU's default
   would be bf16), threads = all usable cores. Frames: every --every-th frame of the real street
   video (tests/support/real_video.py, bikes.mp4; the tests use generated scenes), stretched to the
   size by runtime.preprocess. Preprocessing is never timed.
3. One subprocess per (form, size, engine): median latency of --iters runs after --warmup runs,
   VmRSS before the first inference (model loaded) and the peak RSS (VmHWM; not ru_maxrss, which
   Linux carries over from the parent across fork+exec).
4. One subprocess per (size, engine) with every form loaded: the forms run interleaved on each
   frame (order rotated), so load from other processes hits them alike; speedup = median of the
   per-frame exact/grid latency ratios, label agreement = argmax of the logits (stride 4) of grid
   vs exact on the same frames. On a shared machine this is the number to trust; the separate-
   process latency is reported beside it with the CPU share other processes took meanwhile.
5. The attention modules alone, per decoder stage (N queries, M keys), exact vs grid, interleaved:
   where the grid form pays as a function of N, which is what an `auto` choice needs.

Writes a Markdown report (--out, default WORK/strip_grid.md) and a PNG of latency vs pixels.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import md_table

ENGINES = ("onnxruntime", "openvino")
DEFAULT_SIZES = "512x512,512x1024,1024x2048"
TIMEOUT_S = 900
WEIGHTS = Path(__file__).resolve().parents[1] / "scaseg" / "weights" / "scaseg_t_demo.safetensors"


@dataclass(frozen=True)
class Config:
    form: str  # exact | grid
    grid: int  # G (0 for exact)
    height: int
    width: int
    engine: str

    @property
    def name(self) -> str:
        return f"{self.form}{self.grid or ''}_{self.height}x{self.width}_{self.engine}"

    @property
    def label(self) -> str:
        return "exact" if self.form == "exact" else f"grid G={self.grid}"


@dataclass
class Result:
    config: Config
    p50_ms: float | None = None  # own subprocess
    load_rss_mb: float | None = None  # VmRSS with the model loaded, before the first inference
    peak_rss_mb: float | None = None  # VmHWM of the subprocess
    foreign: float | None = None  # CPU share other processes took during the timed runs
    status: str = "ok"
    speedup: float | None = None  # paired: median of per-frame exact/this latency ratios
    agreement: float | None = None  # paired: label agreement with exact
    estimate_mb: float | None = None  # peak activations from the graph (the sidecar's estimate)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        h, _, w = part.strip().lower().partition("x")
        if not (h.isdigit() and w.isdigit()):
            raise SystemExit(f"--sizes: {part!r} is not HEIGHTxWIDTH (e.g. 512x1024)")
        sizes.append((int(h), int(w)))
    return sizes


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cpu_model() -> str:
    from benchmarks.common import cpu_name

    return cpu_name()


def cpu_snapshot() -> tuple[float, float, float]:
    """(wall s, busy CPU s of the whole machine, CPU s of this process and its threads)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return time.perf_counter(), busy, own.user + own.system


def foreign_share(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Share of the machine's CPUs other processes kept busy between two snapshots."""
    wall = after[0] - before[0]
    other = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, other / (wall * (os.cpu_count() or 1))) if wall > 0 else 0.0


# ---------------------------------------------------------------------------------------------
# Inputs made once in the parent: graphs and frames


def export_graphs(configs: list[Config], work: Path) -> dict[tuple[str, int, int, int], Path]:
    """(form, G, H, W) -> the exported FP32 .onnx, reusing files from an earlier run."""
    import torch

    from export.onnx_export import ExportOptions, export_onnx
    from runtime.preprocess import Preprocess
    from scaseg.checkpoint import load_model
    from scaseg.strip_grid import use_grid_attention

    exact, _ = load_model(WEIGHTS)
    exact = exact.float().eval()
    paths = {}
    for key in sorted({(c.form, c.grid, c.height, c.width) for c in configs}):
        form, grid, h, w = key
        path = work / f"scaseg_t_demo.{form}{grid or ''}.{h}x{w}.onnx"
        if not path.is_file():
            print(f"exporting {path.name}", file=sys.stderr, flush=True)
            model = exact if form == "exact" else use_grid_attention(exact, grid)
            with torch.no_grad():
                data, _ = export_onnx(model, Preprocess(h, w), ExportOptions(h, w))
            path.write_bytes(data)
        paths[key] = path
    return paths


def video_inputs(every: int, work: Path) -> Path:
    """Every `every`-th frame of the real street video, as one (F,h,w,3) uint8 .npy."""
    from benchmarks.common import video_frames
    from tests.support.real_video import real_video

    frames = video_frames(real_video())[::every]
    if not frames:
        raise SystemExit("the real video gave no frames")
    path = work / f"bikes_every{every}.npy"
    np.save(path, np.stack(frames))
    return path


# ---------------------------------------------------------------------------------------------
# Subprocesses


def open_engine(engine: str, path: Path, threads: int):
    """A function (1,3,H,W) float32 -> logits for the .onnx at `path` on `engine`, CPU only."""
    if engine == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda *xs: session.run(None, dict(zip(names, xs)))[0]
    import openvino as ov

    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
              "INFERENCE_NUM_THREADS": threads}  # fmt: skip
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()

    def infer(*xs: np.ndarray) -> np.ndarray:
        request.infer(dict(enumerate(xs)))
        return request.get_output_tensor(0).data.copy()

    return infer


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def single_worker(spec: dict) -> dict:
    """One graph on one engine: median latency, RSS before the first inference, peak RSS."""
    from runtime.preprocess import Preprocess, preprocess

    frames = np.load(spec["frames"])
    pp = Preprocess(spec["height"], spec["width"])
    infer = open_engine(spec["engine"], Path(spec["models"][0]), spec["threads"])
    load_rss = _rss_mb()
    first = preprocess(frames[0], pp)
    for _ in range(spec["warmup"]):
        infer(first)
    del first
    samples = []
    before = cpu_snapshot()
    for i in range(spec["iters"]):
        x = preprocess(frames[i % len(frames)], pp)
        t0 = time.perf_counter()
        infer(x)
        samples.append((time.perf_counter() - t0) * 1e3)
    share = foreign_share(before, cpu_snapshot())
    return {"p50_ms": float(np.median(samples)), "load_rss_mb": load_rss,
            "peak_rss_mb": _rss_mb("VmHWM"), "foreign": share}  # fmt: skip


def paired_worker(spec: dict) -> dict:
    """Every form of one (size, engine) interleaved on each frame; the first model is exact."""
    from runtime.preprocess import Preprocess, preprocess

    frames = np.load(spec["frames"])
    pp = Preprocess(spec["height"], spec["width"])
    infers = [open_engine(spec["engine"], Path(m), spec["threads"]) for m in spec["models"]]
    first = preprocess(frames[0], pp)
    for infer in infers:
        for _ in range(spec["warmup"]):
            infer(first)
    k = len(infers)
    times = [[] for _ in range(k)]
    labels = [[] for _ in range(k)]
    for i in range(max(spec["iters"], len(frames))):  # every frame once at least
        x = preprocess(frames[i % len(frames)], pp)
        for j in [(i + s) % k for s in range(k)]:  # rotate the order: no form always runs first
            t0 = time.perf_counter()
            logits = infers[j](x)
            times[j].append((time.perf_counter() - t0) * 1e3)
            if i < len(frames):
                labels[j].append(logits[0].argmax(0))
    ref_t, ref_l = np.asarray(times[0]), np.stack(labels[0])
    return {
        "speedup": [float(np.median(ref_t / np.asarray(t))) for t in times],
        "agreement": [float(np.mean(ref_l == np.stack(lab))) for lab in labels],
    }


def run_worker(mode: str, spec: dict) -> dict | str:
    """Run a worker subprocess; its JSON result, or a string saying why there is none."""
    cmd = [sys.executable, "-m", "benchmarks.strip_grid", "--worker", mode, json.dumps(spec)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"time-out (over {TIMEOUT_S} s)"
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1][:160]
        return f"error (exit {done.returncode}): {tail}"
    return json.loads(lines[-1])


def measure(configs: list[Config], graphs: dict, frames: Path, args) -> list[Result]:
    """Per-configuration subprocesses, then one paired subprocess per (size, engine)."""
    base = {"frames": str(frames), "threads": usable_cores(), "warmup": args.warmup,
            "iters": args.iters}  # fmt: skip
    results = {}
    for c in configs:
        print(f"alone: {c.name}", file=sys.stderr, flush=True)
        spec = {**base, "engine": c.engine, "height": c.height, "width": c.width,
                "models": [str(graphs[(c.form, c.grid, c.height, c.width)])]}  # fmt: skip
        got = run_worker("single", spec)
        results[c] = Result(c, **got) if isinstance(got, dict) else Result(c, status=got)
        results[c].estimate_mb = _estimate_mb(graphs[(c.form, c.grid, c.height, c.width)])
    groups: dict[tuple, list[Config]] = {}
    for c in configs:
        groups.setdefault((c.height, c.width, c.engine), []).append(c)
    for (h, w, engine), group in groups.items():
        group = sorted(group, key=lambda c: (c.form != "exact", c.grid))  # exact first
        print(f"paired: {h}x{w} {engine}", file=sys.stderr, flush=True)
        spec = {**base, "engine": engine, "height": h, "width": w,
                "models": [str(graphs[(c.form, c.grid, h, w)]) for c in group]}  # fmt: skip
        got = run_worker("paired", spec)
        for j, c in enumerate(group):
            if isinstance(got, dict) and c.form == "grid":
                results[c].speedup, results[c].agreement = got["speedup"][j], got["agreement"][j]
            elif not isinstance(got, dict):
                results[c].status += f"; paired run: {got}"
    return [results[c] for c in configs]


# ---------------------------------------------------------------------------------------------
# The attention modules alone, per decoder stage


def stage_rows(sizes: list[tuple[int, int]], engines: list[str], grid: int, work: Path) -> list:
    """[stage, size, N, M, heads, engine, exact ms, grid ms, exact/grid] for every stage."""
    import torch

    from scaseg.checkpoint import load_model
    from scaseg.strip_grid import GridStripCrossAttention

    model, _ = load_model(WEIGHTS)
    blocks = model.float().eval().decode_head.blocks
    rows = []
    for (h, w), stage in itertools.product(sizes, range(4)):
        exact = blocks[stage].attn
        n, m = h * w // (16 * 4**stage), h * w // 1024  # stride 4*2^stage; the stride-32 grid
        x = torch.randn(1, n, exact.q.in_features)
        y = torch.randn(1, m, exact.k.in_features)
        paths = []
        for form, module in (("exact", exact), ("grid", GridStripCrossAttention.from_exact(exact, grid))):  # fmt: skip
            paths.append(work / f"attn{stage}.{form}{grid}.{h}x{w}.onnx")
            with torch.no_grad():
                torch.onnx.export(module, (x, y), str(paths[-1]), dynamo=False, opset_version=17)
        for engine in engines:
            ms = interleaved_ms([open_engine(engine, p, usable_cores()) for p in paths], x, y)
            rows.append([stage + 1, f"{h}x{w}", n, m, exact.heads, engine,
                         f"{ms[0]:.2f}", f"{ms[1]:.2f}", f"{ms[0] / ms[1]:.2f}x"])  # fmt: skip
    return rows


def interleaved_ms(infers: list, x, y, budget_s: float = 1.5) -> list[float]:
    """Median ms of each function on (x, y), alternating calls, >= 5 rounds or `budget_s`."""
    xs, ys = x.numpy(), y.numpy()
    for infer in infers:
        infer(xs, ys)
    times = [[] for _ in infers]
    start = time.perf_counter()
    while len(times[0]) < 5 or (time.perf_counter() - start < budget_s and len(times[0]) < 50):
        for j, infer in enumerate(infers):
            t0 = time.perf_counter()
            infer(xs, ys)
            times[j].append((time.perf_counter() - t0) * 1e3)
    return [float(np.median(t)) for t in times]


# ---------------------------------------------------------------------------------------------
# Report: table, crossover, plot


def _estimate_mb(path: Path) -> float:
    """What scaseg-export records as the sidecar's memory.peak_activation_mb for this graph."""
    from runtime.memory_estimate import estimate_for_file

    return estimate_for_file(path).peak_mb


def _find(results: list[Result], **match) -> Result | None:
    for r in results:
        if all(getattr(r.config, k) == v for k, v in match.items()) and r.status == "ok":
            return r
    return None


def _f(value: float | None, fmt: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, fmt) + suffix


def table_lines(results: list[Result]) -> list[str]:
    rows = []
    for r in results:
        c = r.config
        ref = _find(results, form="exact", height=c.height, width=c.width, engine=c.engine)
        grid_row = c.form == "grid" and ref is not None
        alone = ref.p50_ms / r.p50_ms if grid_row and r.p50_ms else None
        rss = r.peak_rss_mb / ref.peak_rss_mb if grid_row and r.peak_rss_mb else None
        agree = None if r.agreement is None else 100 * r.agreement
        est = r.estimate_mb / ref.estimate_mb if grid_row and r.estimate_mb else None
        rows.append([c.label, f"{c.height}x{c.width}", c.engine, _f(r.p50_ms, ".1f"),
                     _f(r.speedup, ".2f", "x"), _f(alone, ".2f", "x"), _f(r.load_rss_mb, ".0f"),
                     _f(r.peak_rss_mb, ".0f"), _f(rss, ".2f", "x"), _f(r.estimate_mb, ".0f"),
                     _f(est, ".2f", "x"),
                     _f(agree, ".3f") if c.form == "grid" else "(reference)",
                     _f(None if r.foreign is None else 100 * r.foreign, ".0f", "%"), r.status])  # fmt: skip
    header = ["form", "size (HxW)", "engine", "latency p50 ms (alone)",
              "speedup exact/grid (interleaved)", "speedup (alone)",
              "RSS before 1st inference MB", "peak RSS MB", "peak RSS grid/exact",
              "estimated activations MB (sidecar)", "estimate grid/exact",
              "label agreement %", "CPU taken by other processes", "status"]  # fmt: skip
    return md_table(header, rows)


def crossover(results: list[Result], engine: str, grid: int, pays: float) -> str:
    """Pixel count from which the interleaved speedup stays >= `pays` at every larger measured
    size, log-log interpolated between the two sizes around it."""
    points = sorted(
        (r.config.height * r.config.width, r.speedup)
        for r in results
        if r.config.engine == engine and r.config.grid == grid and r.speedup
    )
    if not points:
        return f"{engine}: not measured"
    below = [i for i, (_, s) in enumerate(points) if s < pays]
    if not below:
        return f"{engine}: >= {pays:.2f}x already at the smallest size ({_px(points[0][0])})"
    if below[-1] == len(points) - 1:
        return f"{engine}: not >= {pays:.2f}x at the largest size ({_px(points[-1][0])})"
    (p0, s0), (p1, s1) = points[below[-1]], points[below[-1] + 1]
    t = (math.log(pays) - math.log(s0)) / (math.log(s1) - math.log(s0))
    cross = math.exp(math.log(p0) + t * (math.log(p1) - math.log(p0)))
    return f"{engine}: >= {pays:.2f}x from ~{_px(cross)} (between {_px(p0)} and {_px(p1)})"


def _px(pixels: float) -> str:
    # stage-1 queries: the stride-4 map; keys: the stride-32 grid
    return f"{pixels / 1e6:.2f} MPx = {pixels / 16 / 1e3:.1f} k stage-1 queries, {pixels / 1024:.0f} keys"


def plot(results: list[Result], grid: int, path: Path) -> None:
    """Left: latency (own process) vs pixels; right: interleaved speedup exact/grid vs pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for engine in ENGINES:
        for form, g, style in (("exact", 0, "-o"), ("grid", grid, "--s")):
            pts = sorted((r.config.height * r.config.width / 1e6, r.p50_ms) for r in results
                         if r.config.engine == engine and r.config.form == form
                         and r.config.grid == g and r.p50_ms)  # fmt: skip
            if pts:
                name = "exact" if form == "exact" else f"grid G={grid}"
                ax.plot(*zip(*pts), style, label=f"{engine} {name}")
        pts = sorted((r.config.height * r.config.width / 1e6, r.speedup) for r in results
                     if r.config.engine == engine and r.config.grid == grid and r.speedup)  # fmt: skip
        if pts:
            ax2.plot(*zip(*pts), "-o", label=engine)
    ax.set_yscale("log")
    ax.set_ylabel("latency p50 (ms), own process")
    ax.set_title("SCASeg-T demo, FP32 ONNX, CPU: latency")
    ax2.axhline(1.0, color="grey", lw=1)
    ax2.set_ylabel(f"speedup exact/grid (G={grid}), interleaved")
    ax2.set_title("grid form speedup, forms interleaved per frame")
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_xlabel("input pixels (millions)")
        a.grid(True, which="both", alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------


def configs_for(args: argparse.Namespace) -> list[Config]:
    sizes = parse_sizes(args.sizes)
    extra = [int(g) for g in args.extra_grids.split(",") if g.strip()] if args.extra_grids else []
    biggest = max(sizes, key=lambda s: s[0] * s[1])
    out = []
    for h, w in sizes:
        grids = [args.grid] + ([g for g in extra if g != args.grid] if (h, w) == biggest else [])
        for engine in args.engines.split(","):
            out.append(Config("exact", 0, h, w, engine))
            out += [Config("grid", g, h, w, engine) for g in grids]
    return out


def report(results: list[Result], stages: list, args: argparse.Namespace, minutes: float) -> list[str]:  # fmt: skip
    from benchmarks.run import machine_lines

    try:
        import openvino

        ov_version = openvino.__version__.split("-")[0]
    except ImportError:
        ov_version = "not installed"
    lines = [f"## Strip attention: exact vs grid (G={args.grid})", "",
             f"- CPU model: {cpu_model()}; threads per engine: {usable_cores()}",
             *machine_lines(), f"- OpenVINO {ov_version} (f32 inference precision)",
             f"- Command: python -m benchmarks.strip_grid {' '.join(sys.argv[1:])}",
             f"- Frames: every {args.every}th frame of bikes.mp4, stretched to each size; "
             f"{args.warmup} warm-up runs; alone: {args.iters} timed runs; interleaved: every "
             f"frame once at least; total {minutes:.1f} min", "",
             *table_lines(results), "",
             f"Where the whole model gets faster with the grid form: interleaved speedup >= "
             f"{args.pays:.2f}x (--pays, above the run-to-run noise of a shared machine):", ""]  # fmt: skip
    engines = args.engines.split(",")
    lines += [f"- {crossover(results, e, args.grid, args.pays)}" for e in engines]
    if stages:
        header = ["stage", "input", "N queries", "M keys", "heads", "engine", "exact ms",
                  f"grid G={args.grid} ms", "exact/grid"]  # fmt: skip
        lines += ["", "The attention module alone per decoder stage (interleaved, medians):", ""]
        lines += md_table(header, stages)
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "SPEC"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=DEFAULT_SIZES)
    parser.add_argument("--grid", type=int, default=256)
    parser.add_argument("--extra-grids", default="", help="e.g. 128,512 (largest size only)")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--every", type=int, default=25, help="use every N-th video frame")
    parser.add_argument("--pays", type=float, default=1.10, help="speedup that counts as faster")
    parser.add_argument("--no-stages", action="store_true", help="skip the per-stage table")
    parser.add_argument("--work", type=Path, default=Path("/tmp/scaseg-strip-grid"))
    parser.add_argument("--out", type=Path, help="Markdown report (default: WORK/strip_grid.md)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        mode, spec = args.worker
        work = single_worker if mode == "single" else paired_worker
        print(json.dumps(work(json.loads(spec))), flush=True)
        return 0
    t0 = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    configs = configs_for(args)
    graphs = export_graphs(configs, args.work)
    results = measure(configs, graphs, video_inputs(args.every, args.work), args)
    stages = []
    if not args.no_stages:
        print("attention alone per stage", file=sys.stderr, flush=True)
        sizes, engines = parse_sizes(args.sizes), args.engines.split(",")
        stages = stage_rows(sizes, engines, args.grid, args.work)
    dump = [{**asdict(r), "config": asdict(r.config)} for r in results]
    (args.work / "results.json").write_text(json.dumps({"results": dump, "stages": stages}))
    lines = report(results, stages, args, (time.perf_counter() - t0) / 60)
    out = args.out or args.work / "strip_grid.md"
    png = out.with_suffix(".png")
    plot(results, args.grid, png)
    lines += ["", f"Plot: {png}"]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
