"""`make demo`: the main job end to end on the bundled demo model, through the real CLIs.

1. render a generated street video with exact label maps (scenes),
2. export the bundled checkpoint with `scaseg-export` (ONNX + sidecar, accuracy-checked),
3. segment the video with `scaseg-run` on ONNX Runtime (CPU): overlay video + label PNGs,
4. compare with the ground truth: mIoU, a side-by-side video and one PNG frame.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from runtime.classes import palette_bgr
from runtime.metrics import ConfusionMatrix, format_iou_table
from scenes import SPLITS, write_scene_video
from scenes.classes import DEMO_CLASSES, DEMO_PALETTE_RGB

BIN = Path(sys.executable).parent


def command(name: str, module: str) -> list[str]:
    """The installed console script, or `python -m module` where it is not installed."""
    exe = BIN / name
    return [str(exe)] if exe.exists() else [sys.executable, "-m", module]


def run(cmd: list[str]) -> None:
    print("$", " ".join(str(c) for c in cmd), flush=True)
    rc = subprocess.run(cmd, check=False).returncode
    if rc != 0:
        raise SystemExit(
            f"demo: {Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''} failed (exit {rc})"
        )


def read_labels(folder: Path) -> list[np.ndarray]:
    """Class-id maps from PNGs: single-channel ones as they are; palettised ones (which OpenCV
    expands to colour) mapped back through the demo palette, whose colours are all distinct."""
    colours = palette_bgr(DEMO_PALETTE_RGB).astype(np.int32)
    keys = (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    order = np.argsort(keys)
    maps = []
    for path in sorted(folder.glob("*.png")):
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img.ndim == 3:
            img = img[..., :3].astype(np.int32)
            packed = (img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2]
            idx = np.clip(np.searchsorted(keys[order], packed), 0, len(keys) - 1)
            if not np.array_equal(keys[order][idx], packed):
                raise SystemExit(f"demo: {path} holds colours outside the demo palette")
            img = order[idx].astype(np.uint8)
        maps.append(img)
    return maps


def side_by_side(video: Path, pred: list, truth: list, out: Path, png: Path) -> None:
    """Frame | prediction | ground truth, one row per frame, as an mp4v video and one PNG."""
    colours = palette_bgr(DEMO_PALETTE_RGB)
    cap = cv2.VideoCapture(str(video))
    writer = None
    for i, (p, t) in enumerate(zip(pred, truth, strict=True)):
        ok, frame = cap.read()
        if not ok:
            raise RuntimeError(f"{video} ended after {i} frames; expected {len(pred)}")
        row = np.hstack([frame, colours[p], colours[t]])
        if writer is None:
            h, w = row.shape[:2]
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h))
        writer.write(row)
        if i == len(pred) // 2:
            cv2.imwrite(str(png), row)
    cap.release()
    if writer is not None:
        writer.release()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="demo_out")
    p.add_argument("--frames", type=int, default=75)
    p.add_argument("--size", default="640x360", help="video WxH")
    p.add_argument("--precision", default="int8", choices=("fp32", "fp16", "int8"))
    p.add_argument(
        "--seed", type=int, default=SPLITS["bench"].start, help="scene seed (bench split)"
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    width, height = (int(v) for v in args.size.lower().split("x"))

    video, truth_dir, pred_dir = out / "street.mp4", out / "truth", out / "pred"
    info = write_scene_video(video, args.seed, height, width, args.frames, labels_dir=truth_dir)
    print(f"rendered {video} ({info.num_frames} frames, {width}x{height})")

    export_cmd = [*command("scaseg-export", "export.cli"), "--precision", args.precision]
    run([*export_cmd, "--name", "scaseg_t_demo", "--out", str(out), "--verify-frames", "8"])
    model = out / f"scaseg_t_demo.{args.precision}.onnx"
    run(
        [
            *command("scaseg-run", "runtime.cli"),
            str(video),
            "--model",
            str(model),
            "--out",
            str(out / "overlay.mp4"),
            "--labels-out",
            str(pred_dir),
            "--provider",
            "cpu",
        ]
    )

    pred, truth = read_labels(pred_dir), read_labels(truth_dir)
    if len(pred) != len(truth):
        raise SystemExit(f"scaseg-run wrote {len(pred)} label maps for {len(truth)} frames")
    cm = ConfusionMatrix(len(DEMO_CLASSES))
    for a, b in zip(pred, truth, strict=True):
        cm.update(a, b)
    side_by_side(video, pred, truth, out / "side_by_side.mp4", out / "side_by_side.png")
    print(format_iou_table(DEMO_CLASSES, cm.iou()))
    print(f"mIoU on the demo video: {cm.miou():.4f} ({len(pred)} frames)")
    print(f"wrote {out}/overlay.mp4, {out}/side_by_side.mp4 and {out}/side_by_side.png")


if __name__ == "__main__":
    main()
