"""Command line: `python -m scenes OUT [--seed --size --frames --fps --labels --force]`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from scenes.video import write_scene_video


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"size must look like 640x360, got {text!r}") from err
    return width, height


def main(argv: Sequence[str] | None = None) -> int:
    # prog is spelled out: argparse would otherwise name the file that runs, now __main__.py.
    parser = argparse.ArgumentParser(
        prog="python -m scenes", description="Write a generated street-scene video."
    )
    parser.add_argument("out", type=Path, help="video path (.mp4 or .avi)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=_parse_size, default=(640, 360), help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--labels", type=Path, default=None, help="folder for label PNGs")
    parser.add_argument("--force", action="store_true", help="replace an existing video")
    args = parser.parse_args(argv)
    width, height = args.size
    try:
        info = write_scene_video(
            args.out,
            args.seed,
            height,
            width,
            args.frames,
            args.fps,
            args.labels,
            overwrite=args.force,
        )
    except (ValueError, OSError, RuntimeError) as err:
        parser.exit(1, f"error: {err}\n")
    print(f"wrote {info.num_frames} frames {info.width}x{info.height} to {info.path}")
    return 0
