"""Table 4: runtime footprint: import time and peak RSS of scaseg-run (ONNX Runtime, OpenVINO) vs
a PyTorch runner.

Both run as child processes doing the same job (the pipeline table's generated video -> overlay
video). Peak RSS is the child's own VmHWM, which it writes at exit: getrusage(RUSAGE_CHILDREN)
and os.wait4's ru_maxrss are NOT usable here, because Linux carries the parent's RSS at fork into
the child's maxrss across exec (signal->maxrss), so a child of this torch-laden process would
report at least the parent's ~450 MB (measured: both runners read 454 MB that way). Import time
is measured inside a fresh interpreter, best of 3 (warm file cache), for the modules each needs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Context, Table, Target, md_table
from runtime.deps import available

REPO = Path(__file__).resolve().parents[1]
RUNTIME_IMPORTS = "import runtime.cli, runtime.segmenter, runtime.pipeline, runtime.backends.ort_backend, onnxruntime"
OV_IMPORTS = "import runtime.cli, runtime.segmenter, runtime.pipeline, runtime.backends.openvino_backend, openvino"
TORCH_IMPORTS = (
    "import torch, scaseg.model, scaseg.checkpoint, runtime.io.sources, runtime.io.video"
)


@dataclass(frozen=True)
class ChildRun:
    wall_s: float
    peak_rss_mb: float
    returncode: int
    stderr_tail: str


# Runs a module as __main__ and, at exit (SystemExit included), saves /proc/self/status.
PEAK_WRAPPER = (
    "import atexit, os, runpy, sys; "
    "atexit.register(lambda: open(os.environ['SCASEG_STATUS_FILE'], 'w').write(open('/proc/self/status').read())); "
    "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


def run_child(module_args: list[str], status_file: Path, threads: int | None = None) -> ChildRun:
    """`python -m module args` in a child; its peak RSS from its own VmHWM at exit."""
    env = {**os.environ, "SCASEG_STATUS_FILE": str(status_file)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, *module_args], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - t0
    found = re.search(r"VmHWM:\s+(\d+) kB", status_file.read_text() if status_file.exists() else "")
    peak = int(found.group(1)) / 1024 if found else float("nan")
    return ChildRun(wall, peak, done.returncode, done.stderr[-400:])


def import_seconds(statement: str) -> float:
    code = f"import time; t0 = time.perf_counter(); {statement}; print(time.perf_counter() - t0)"
    best = float("inf")
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
        )
        best = min(best, float(out.stdout.strip().splitlines()[-1]))
    return best


def run(ctx: Context) -> Table:
    from benchmarks.pipeline_fps import bench_video

    t0 = time.perf_counter()
    video, model, s = bench_video(ctx), ctx.onnx("fp32"), ctx.settings
    ctx.step("import times")
    imports = {"runtime": import_seconds(RUNTIME_IMPORTS), "torch": import_seconds(TORCH_IMPORTS)}
    ctx.step("scaseg-run on the video")
    ours = run_child(["runtime.cli", str(video), "--model", str(model), "--out",
                      str(ctx.workdir / "footprint_runtime.mp4"), "--force"],
                     ctx.workdir / "status_runtime.txt", s.threads)  # fmt: skip
    ov = ov_imports = None
    if available("openvino"):
        ov_imports = import_seconds(OV_IMPORTS)
        ctx.step("scaseg-run --backend openvino on the video")
        ov = run_child(["runtime.cli", str(video), "--model", str(model), "--backend", "openvino",
                        "--out", str(ctx.workdir / "footprint_openvino.mp4"), "--force"],
                       ctx.workdir / "status_openvino.txt", s.threads)  # fmt: skip
    ctx.step("PyTorch runner on the video")
    torch_args = ["benchmarks.torch_runner", str(video), "--out", str(ctx.workdir / "footprint_torch.mp4"),
                  "--checkpoint", str(ctx.checkpoint()), "--size", str(ctx.spec.height)]  # fmt: skip
    theirs = run_child(torch_args, ctx.workdir / "status_torch.txt", s.threads)
    for name, r in (
        ("scaseg-run", ours),
        ("PyTorch runner", theirs),
        ("scaseg-run (OpenVINO)", ov),
    ):
        if r is not None and r.returncode != 0:
            raise RuntimeError(f"{name} failed with exit code {r.returncode}: {r.stderr_tail}")
    share = ours.peak_rss_mb / theirs.peak_rss_mb
    rows = [
        ["scaseg-run (ONNX Runtime, FP32 ONNX)", f"{imports['runtime']:.2f}", f"{ours.peak_rss_mb:.0f}", f"{ours.wall_s:.1f}"],
        *([["scaseg-run --backend openvino (FP32 ONNX, f32)", f"{ov_imports:.2f}", f"{ov.peak_rss_mb:.0f}", f"{ov.wall_s:.1f}"]] if ov else
          [["scaseg-run --backend openvino", "-", "-", "-"]]),
        ["PyTorch runner (torch eager, checkpoint)", f"{imports['torch']:.2f}", f"{theirs.peak_rss_mb:.0f}", f"{theirs.wall_s:.1f}"],
        ["ratio runtime / PyTorch", f"{imports['runtime'] / imports['torch']:.2f}", f"{share:.2f}", f"{ours.wall_s / theirs.wall_s:.2f}"],
    ]  # fmt: skip
    lines = [
        f"Same job: {s.video_frames} frames of a generated 960x540 video -> overlay mp4v video, "
        f"SCASeg-{ctx.spec.variant.upper()} at {ctx.spec.height}x{ctx.spec.width}. Import time: "
        "the modules each runner needs, in a fresh interpreter, best of 3. Peak RSS: the child's "
        "own VmHWM at exit.",
        "",
        *md_table(["runner", "import s", "peak RSS MB", "job wall s"], rows),
    ]
    targets = [Target(
        "runtime peak RSS <= 1/3 of the PyTorch runner's", f"{share:.2f}", share <= 1 / 3
    )]  # fmt: skip
    if ov is not None:
        ov_share = ov.peak_rss_mb / theirs.peak_rss_mb
        targets.append(Target("(info) OpenVINO runtime peak RSS vs the PyTorch runner's",
                              f"{ov_share:.2f} ({ov.peak_rss_mb:.0f} MB)", None))  # fmt: skip
    return Table(
        "footprint", "4. Runtime footprint", tuple(lines), tuple(targets), time.perf_counter() - t0
    )
