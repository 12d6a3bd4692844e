"""OpenVINO vs ONNX Runtime through the shipped CLIs, side by side in one run.

    python -m benchmarks.openvino_bar [--artifacts DIR] [--video bikes.mp4] [--frames 60]

0. The real street video (tests/support/real_video.py: bikes.mp4) is split in two: frames of the first
   half calibrate, the second half is where label maps are compared. Without --artifacts, the
   demo model is exported by `scaseg-export --precision all --calib-data <first half>`, as a user
   calibrates on their own camera's frames.
1. scaseg-profile: the INT8 artifact on `--backend openvino` and the FP32 artifact on
   `--backend openvino` (f32), each against the FP32 artifact on `--backend onnxruntime
   --provider cpu`; infer-stage p50/mean ratios (target: INT8 on OpenVINO >= 2.0x).
2. scaseg-run on a real street video (tests/support/real_video.py: bikes.mp4), label maps written as PNGs:
   agreement of OpenVINO FP32 (f32) and OpenVINO INT8 with ONNX Runtime FP32, pixel by pixel
   (targets: >= 99.9% and >= 95%).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

DEMO = "scaseg_t_demo"


def cli(module: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed: {done.stderr[-600:]}")
    return done.stderr.splitlines()[0] if done.stderr else ""


def profile(model: Path, out: Path, frames: int, *backend: str) -> tuple[dict, str]:
    line = cli("runtime.profiling.cli", str(model), *backend, "--frames", str(frames),
               "--warmup", "5", "--no-png", "--force", "--out", str(out))  # fmt: skip
    report = json.loads((out / "profile.json").read_text())
    return report["stages"]["infer"], line


def labels(model: Path, video: str, out: Path, frames: int, *backend: str) -> tuple[list, str]:
    line = cli("runtime.cli", video, "--model", str(model), *backend, "--labels-out",
               str(out), "--max-frames", str(frames), "--force")  # fmt: skip
    # Palettised PNGs: PIL reads the class ids (cv2 would return the palette colours).
    return [np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))], line


def split_video(video: Path, work: Path) -> tuple[Path, Path]:
    """Frames of the first half -> work/calib/, of the second half -> work/eval/ (PNG, lossless)."""
    import cv2

    from benchmarks.common import video_frames

    frames = video_frames(video)
    if len(frames) < 4:
        raise RuntimeError(f"{video} has {len(frames)} decodable frames; need at least 4")
    half = len(frames) // 2
    for name, part, start in (("calib", frames[:half], 0), ("eval", frames[half:], half)):
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(part, start):
            cv2.imwrite(str(folder / f"{i:05d}.png"), frame)
    return work / "calib", work / "eval"


def export_demo(calib: Path, out: Path) -> None:
    cli("export.cli", "--precision", "all", "--calib-data", str(calib), "--out", str(out),
        "--force", "--engines", "no")  # fmt: skip


def agreement(a: list, b: list) -> float:
    if len(a) != len(b) or not a:
        raise RuntimeError(f"label maps differ in count: {len(a)} vs {len(b)}")
    return float(np.mean([np.mean(x == y) for x, y in zip(a, b, strict=True)]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--artifacts",
        type=Path,
        help="scaseg-export --out folder (default: export the demo "
        "model calibrated on the video's first half)",
    )
    parser.add_argument(
        "--video", type=Path, help="default: bikes.mp4 (tests/support/real_video.py)"
    )
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--work", type=Path, default=Path("/tmp/scaseg-ov-bar"))
    args = parser.parse_args(argv)
    video = args.video
    if video is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.support.real_video import real_video

        video = real_video()
    calib, frames = split_video(video, args.work)
    artifacts = args.artifacts
    if artifacts is None:
        artifacts = args.work / "artifacts"
        export_demo(calib, artifacts)
        print(f"exported the demo model, INT8 calibrated on {calib} (first half of {video.name})")
    fp32, int8 = (artifacts / f"{DEMO}.{p}.onnx" for p in ("fp32", "int8"))
    ort = ("--backend", "onnxruntime", "--provider", "cpu")
    ov = ("--backend", "openvino")
    w = args.work
    ort_s, ort_line = profile(fp32, w / "prof_ort_fp32", args.frames, *ort)
    ov_int8_s, ov_int8_line = profile(int8, w / "prof_ov_int8", args.frames, *ov)
    ov_fp32_s, ov_fp32_line = profile(fp32, w / "prof_ov_fp32", args.frames, *ov)
    print("scaseg-profile, infer stage (model call), same generated 960x540 source:")
    for name, s, line in (("ORT FP32 (cpu)", ort_s, ort_line), ("OpenVINO INT8", ov_int8_s, ov_int8_line),
                          ("OpenVINO FP32", ov_fp32_s, ov_fp32_line)):  # fmt: skip
        print(f"  {name:16s} p50 {s['p50_ms']:7.1f} ms  mean {s['mean_ms']:7.1f} ms  "
              f"x{ort_s['p50_ms'] / s['p50_ms']:.2f} p50, x{ort_s['mean_ms'] / s['mean_ms']:.2f} "
              f"mean vs ORT FP32   [{line}]")  # fmt: skip
    source = str(frames / "*.png")
    ref, _ = labels(fp32, source, w / "labels_ort_fp32", args.frames, *ort)
    got = {
        "OpenVINO FP32 (f32)": (
            labels(fp32, source, w / "labels_ov_fp32", args.frames, *ov),
            "99.9%",
        ),
        "OpenVINO INT8": (labels(int8, source, w / "labels_ov_int8", args.frames, *ov), "95%"),
        # The same INT8 artifact on ONNX Runtime: what the quantization itself costs.
        "ONNX Runtime INT8": (labels(int8, source, w / "labels_ort_int8", args.frames, *ort), "-"),
    }
    print(f"scaseg-run label maps on {len(ref)} frames of the second half of {video.name}, vs "
          "ONNX Runtime FP32:")  # fmt: skip
    for name, ((maps, _), target) in got.items():
        goal = f"target >= {target}" if target != "-" else "the quantization itself, for reference"
        print(f"  {name:20s} {agreement(maps, ref):.4%}  ({goal})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
