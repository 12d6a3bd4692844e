"""A PyTorch-based video runner doing scaseg-run's job, as the footprint baseline of table 4.

    python -m benchmarks.torch_runner clip.mp4 --out overlay.mp4 [--checkpoint ckpt.safetensors]

Decode, the runtime's preprocessing, a PyTorch eager forward, the runtime's postprocessing,
overlay blend, mp4v encode: the same work as `scaseg-run clip.mp4 --model m.onnx --out o.mp4`,
only with torch and the model code instead of ONNX Runtime and an artifact.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def run(video: Path, out: Path, checkpoint: Path | None, variant: str, size: int) -> int:
    import torch

    from runtime.classes import palette_bgr
    from runtime.io.overlay import blend
    from runtime.io.sources import open_source
    from runtime.io.video import VideoOutput
    from runtime.preprocess import Preprocess, labels_to_frame, logits_to_labels, preprocess
    from scenes.classes import DEMO_CLASSES, DEMO_PALETTE_RGB

    if checkpoint is not None:
        from scaseg.checkpoint import load_model

        model, _ = load_model(checkpoint)
    else:
        from scaseg.model import build_model

        model = build_model(variant, len(DEMO_CLASSES))
    model.eval()
    pp, table = Preprocess(size, size), palette_bgr(DEMO_PALETTE_RGB)
    src = open_source(str(video))
    writer, n = None, 0
    with torch.inference_mode():
        for frame in src.frames():
            logits = model(torch.from_numpy(preprocess(frame.frame_bgr, pp)))[0].numpy()
            labels = labels_to_frame(logits_to_labels(logits, pp), frame.frame_bgr.shape[:2])
            image = blend(frame.frame_bgr, labels, table, 0.5)
            if writer is None:
                size_wh = (image.shape[1], image.shape[0])
                writer = VideoOutput(out, src.info.fps or 25.0, size_wh, "mp4v", True)
            writer.write(image)
            n += 1
    src.close()
    if writer is not None:
        writer.close()
    return n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--variant", default="t")
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    n = run(args.video, args.out, args.checkpoint, args.variant, args.size)
    print(f"torch_runner: {n} frames in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
