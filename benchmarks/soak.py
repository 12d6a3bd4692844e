"""Soak: a long run through the real video runtime, watching the process's memory.

    python -m benchmarks.soak                                   # 20,000 frames, a sample every 1,000
    python -m benchmarks.soak --frames 20000 --every 1000 --size 256 \\
        --write BENCHMARKS.md --plot docs/soak_rss.png

What runs is what `scaseg-run clip.mp4 --out overlay.mp4 --jsonl frames.jsonl --loop` runs:
- model: the tiny SCASeg variant (random weights, seed 0) exported to FP32 ONNX + sidecar by the
  export library (export.pipeline.export_artifacts, accuracy gate on), at --size x --size. The
  export runs in a child process, so this process never imports torch; the artifact is cached
  under --cache. `--model` takes any other artifact instead.
- source: a generated street video (scenes, --video-frames long, --frame-size), looped with
  the source's own loop option (each pass reopens the capture), so decoding never stops.
- runtime.segmenter.Segmenter on ONNX Runtime CPU, through runtime.pipeline.run_pipeline (reader,
  inference and writer threads) into the real sinks from runtime.io.sinks.build_sinks: an overlay
  mp4 video and a JSON-lines file, in a temporary folder (or --workdir).

Every --every frames, from the pipeline's on_frame hook (inference thread), it records the
process's RSS, the Python allocator's block count (sys.getallocatedblocks), the objects the
garbage collector tracks, open file descriptors, threads, CPU time, the load average and what the
pipeline's per-frame latency record (PipelineStats.times) holds. Warm-up is the first --warmup
frames (default: two samples). Growth = (last RSS - RSS at the end of warm-up) / RSS at the end of
warm-up; the target ("Reliability / Long runs") is growth under 5%. `--no-sinks` runs without
sinks, to tell their memory from the rest's.

`--write` replaces the section between the soak markers in a Markdown file (appends it where there
is none), keeping the rest of the file and a hand-written notes block inside the section; `--plot`
writes RSS against frames as a PNG (warm-up and the 5% band marked).

This file is the command line; the run is in soak_harness.py, its result in soak_result.py, the
section in soak_report.py and the plot in soak_plot.py.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from benchmarks.soak_harness import (
    console,
    run_soak,
)
from benchmarks.soak_plot import plot
from benchmarks.soak_report import (
    render,
    write_section,
)
from benchmarks.soak_result import DEFAULT_CACHE, TARGET_PCT, SoakConfig


def _frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 640x360, got {text!r}") from err
    if w < 32 or h < 32 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"frame size {text} must be even and at least 32x32")
    return h, w


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--every", type=int, default=1_000, help="frames between samples")
    parser.add_argument("--warmup", type=int, help="warm-up frames (default: 2 x --every)")
    parser.add_argument("--size", type=int, default=256, help="model input size (square)")
    parser.add_argument("--frame-size", type=_frame_size, default=(360, 640), metavar="WxH",
                        help="generated source frames (default 640x360)")  # fmt: skip
    parser.add_argument("--video-frames", type=int, default=250, help="length of the looped clip")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: all cores)")
    parser.add_argument("--model", type=Path, help="an ONNX artifact (default: the tiny variant)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where the exported model and the clip are kept")  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="keep the sinks' outputs here")
    parser.add_argument("--write", type=Path, metavar="MD", help="replace the soak section here")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="RSS vs frames plot")
    parser.add_argument("--no-sinks", action="store_true",
                        help="run without sinks (to tell their memory from the rest's)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.soak " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        config = SoakConfig(
            frames=args.frames, every=args.every, warmup=args.warmup, size=args.size,
            frame_hw=args.frame_size, video_frames=args.video_frames, threads=args.threads,
            model=args.model, cache=args.cache, workdir=args.workdir,
            sinks=not args.no_sinks, progress=not args.no_progress,
        )  # fmt: skip
    except ValueError as err:
        raise SystemExit(f"soak: {err}") from err
    result = run_soak(config)
    link = None
    if args.plot:
        plot(result, args.plot)
        console.print(f"soak: wrote {args.plot}")
        base = args.write.resolve().parent if args.write else Path.cwd()
        link = os.path.relpath(args.plot.resolve(), base)
    block = render(result, command, link)
    print(block)
    if args.write:
        write_section(args.write, block)
        console.print(f"soak: wrote the soak section of {args.write}")
    verdict = "met" if result.passed else "NOT met"
    console.print(
        f"soak: {result.frames} frames, {result.fps:.1f} FPS, RSS {result.warm.rss_mib:.1f} -> "
        f"{result.last.rss_mib:.1f} MiB after warm-up: {result.growth_pct:+.2f}% "
        f"(target < {TARGET_PCT:g}%: {verdict})"
    )
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
