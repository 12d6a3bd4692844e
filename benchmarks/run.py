"""`make bench`: every benchmark table in one run, side by side, with the machine and versions.

    python -m benchmarks.run                          # all tables, print Markdown
    python -m benchmarks.run --write BENCHMARKS.md    # ... and replace the results in BENCHMARKS.md
    python -m benchmarks.run --only precision,attention --iters 30
    python -m benchmarks.run --quick                  # tiny model, tiny sizes: a smoke test only

Tables: precision (1), attention (2), pipeline (3), footprint (4), roofline (5), gpu (TensorRT;
skipped with its reason on a machine without a CUDA GPU and TensorRT).
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from benchmarks.artifacts import ModelSpec, default_spec
from benchmarks.common import Context, Settings, Table, Target, md_table
from runtime.atomic import atomic_write_text

TABLES = {
    "precision": "benchmarks.precision",
    "attention": "benchmarks.attention",
    "pipeline": "benchmarks.pipeline_fps",
    "footprint": "benchmarks.footprint",
    "roofline": "benchmarks.roofline",
    "gpu": "benchmarks.gpu_trt",
}
START = "<!-- bench:start (written by `python -m benchmarks.run --write BENCHMARKS.md`) -->"
END = "<!-- bench:end -->"

console = Console(stderr=True, highlight=False)


def machine_lines() -> list[str]:
    from runtime.profiling.envinfo import capture_environment, package_version

    env = capture_environment()
    cpu, v, gpu = env["cpu"], env["versions"], env.get("gpu")
    lines = [
        f"- Machine: {cpu['model']} ({cpu['arch']}; {', '.join(cpu['isa']) or 'no listed ISA extensions'}), {cpu['usable_cores']} usable of "
        f"{cpu['logical_cores']} logical cores, {env['memory_total_mb']} MB RAM; {env['os']}",
        f"- GPU: {gpu.get('name')} (compute {gpu.get('compute_capability')})"
        if gpu
        else "- GPU: none",
        f"- Versions: Python {v['python']}, torch {package_version('torch')}, onnxruntime "
        f"{v['onnxruntime']}, onnx {package_version('onnx')}, numpy {v['numpy']}, OpenCV "
        f"{v['opencv']}, TensorRT {v['tensorrt'] or 'not installed'}",
    ]
    if env.get("jetson"):
        j = env["jetson"]
        lines.append(
            f"- Jetson: {j['model']}, L4T {j['l4t_release']}, power mode {j['power_mode']}"
        )
    return lines


def settings_for(args: argparse.Namespace) -> tuple[Settings, ModelSpec]:
    if args.quick:
        s = Settings(iters=3, warmup=1, eval_frames=2, calib_frames=2, video_frames=8,
                     threads=args.threads, sizes=(64, 128), quick=True)  # fmt: skip
        return s, ModelSpec("tiny", 128, 128)
    s = Settings(iters=args.iters, warmup=args.warmup, eval_frames=args.eval_frames,
                 threads=args.threads)  # fmt: skip
    spec = default_spec("t", 512)
    if args.checkpoint is not None:
        if not args.checkpoint.is_file():
            raise SystemExit(
                f"--checkpoint {args.checkpoint} does not exist; pass a .safetensors file"
            )
        spec = ModelSpec("t", 512, 512, args.checkpoint)
    return s, spec


def run_tables(ctx: Context, names: list[str]) -> list[Table]:
    """Every table in turn; one that fails is reported as failed (traceback on stderr) and the
    others still run, so a long suite is not lost to one error."""
    tables = []
    for name in names:
        module = importlib.import_module(TABLES[name])
        t0 = time.perf_counter()
        with console.status(f"[bold]{name}[/]") as status:
            ctx.step = lambda msg, n=name, st=status: st.update(f"[bold]{n}[/]: {msg}")
            try:
                table = module.run(ctx)
            except Exception as err:
                console.print_exception()
                line = f"**failed**: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                table = Table(name, f"{name} (failed)", (line,), (), time.perf_counter() - t0)
        console.print(f"bench: {name} done in {time.perf_counter() - t0:.0f} s")
        tables.append(table)
    return tables


def targets_section(tables: list[Table]) -> list[str]:
    rows = []
    for t in tables:
        for target in t.targets:
            rows.append([target.name, target.measured, _verdict(target), target.note])
    return md_table(["target", "measured", "met", "why / note"], rows) if rows else []


def _verdict(target: Target) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[target.met]


def render(tables: list[Table], command: str, seconds: float, settings: Settings) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        START,
        "",
        f"Run {when}, {seconds / 60:.1f} min: `{command}`",
        "",
        *machine_lines(),
        "",
    ]
    lines += ["### Targets", "", *targets_section(tables), ""]
    for t in tables:
        lines += [f"### {t.title}", "", *t.lines, "", f"_{t.seconds:.0f} s_", ""]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, block: str) -> None:
    """Replace the marked results block in `path` (create the file if needed); text outside the
    markers is kept, so hand-written explanations and other benchmarks' sections survive."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    atomic_write_text(path, text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default=",".join(TABLES), help=f"comma list of {', '.join(TABLES)}"
    )
    parser.add_argument(
        "--write", type=Path, metavar="MD", help="replace the results block in this file"
    )
    parser.add_argument("--iters", type=int, default=15, help="timed iterations per latency")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--eval-frames", type=int, default=16, help="scenes for mIoU")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: all cores)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny model and sizes (smoke test)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="SCASeg-T checkpoint (default: the demo weights, else random)",
    )
    parser.add_argument("--workdir", type=Path, help="keep artifacts here (default: a temp folder)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.only.split(",") if n not in TABLES]
    if unknown:
        parser.error(f"unknown table(s) {', '.join(unknown)}; choose from {', '.join(TABLES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    settings, spec = settings_for(args)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scaseg-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        ctx = Context(settings, workdir, spec)
        console.print(f"bench: work folder {workdir}")
        tables = run_tables(ctx, args.only.split(","))
    block = render(tables, command, time.perf_counter() - t0, settings)
    print(block)
    if args.write:
        write_markdown(args.write, block)
        console.print(f"bench: wrote {args.write}")
    failed = [t.key for t in tables if t.title.endswith("(failed)")]
    if failed:
        console.print(f"bench: failed tables: {', '.join(failed)} (tracebacks above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
