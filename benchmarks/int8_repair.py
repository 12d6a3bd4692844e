"""INT8 repairs (`scaseg-export --int8-fallback auto|off`): what they cost and what they buy.

    python -m benchmarks.int8_repair [--size 512x512] [--frames 16] [--with-fallback]

Exports the INT8 variant of three checkpoints with the repairs off and on, through the same
pipeline `scaseg-export` runs (export.pipeline.export_artifacts), gated on `--frames` generated
street scenes with their masks (written as an image folder + masks, so every checkpoint gets
mIoU, not only the bundled demo):

- the bundled demo weights: the repairs must find nothing to do, so the INT8 graph is byte for
  byte the one `off` writes (same sha256), with the same latency;
- the demo weights with MLP activation outliers (3 channels of every MSCAN MLP's fc1 x2000, the
  matching depthwise dwconv channels /2000: the same function, tests/support/outliers.py):
  `off` misses the gate, `auto` equalizes the fc1 -> dwconv pairs;
- with --with-fallback, the demo weights with outliers in every MSCA depthwise strip pair
  (conv0_1 -> conv0_2), which equalization handles too (a depthwise producer), and with outliers
  in the decoder's LayerNorm before each FFN (norm_ffn x2000, the FFN's fc1 input /2000; a
  token -> map reshape stands between them), which it does not: there `auto` ranks every
  quantized node (slow: one graph run per node and sensitivity frame) and leaves the worst in
  float.

Latency is the gate's: median ONNX Runtime CPU (and OpenVINO, where installed) batch-1 latency
over the gate frames after 2 warm-up runs, the same numbers the sidecar records.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROWS = (
    ("demo", "bundled demo weights"),
    ("mlp", "demo + MLP outliers (fc1 x2000 / dwconv /2000, 3 channels per MLP)"),
    ("strip", "demo + strip-attention outliers (conv0_1 x2000 / conv0_2 /2000, every block)"),
    ("ffn_norm", "demo + decoder LayerNorm outliers (norm_ffn x2000 / FFN fc1 /2000, every block)"),
)


def write_gate_set(folder: Path, count: int, height: int, width: int) -> tuple[Path, Path]:
    """Generated street scenes of the gate split with their exact masks, as images + masks."""
    from export.gate_data import GATE_SPLIT, GATE_START
    from scenes import render_scene, split_seeds

    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for seed in split_seeds(GATE_SPLIT, count, GATE_START):
        frame, labels = render_scene(seed, height, width)
        cv2.imwrite(str(images / f"scene_{seed}.png"), frame)
        cv2.imwrite(str(masks / f"scene_{seed}.png"), labels)
    return images, masks


def checkpoints(folder: Path, with_fallback: bool) -> dict[str, Path]:
    from safetensors import safe_open

    from export.request import DEMO_CHECKPOINT
    from scaseg.checkpoint import load_model, save_checkpoint
    from tests.support.outliers import add_ffn_norm_outliers, add_mlp_outliers, add_strip_outliers

    with safe_open(str(DEMO_CHECKPOINT), "pt") as f:
        info = json.loads(f.metadata()["scaseg"])
    out = {"demo": DEMO_CHECKPOINT}
    changes = {"mlp": add_mlp_outliers}
    if with_fallback:
        changes["strip"] = add_strip_outliers
        changes["ffn_norm"] = add_ffn_norm_outliers
    for key, change in changes.items():
        model, _ = load_model(DEMO_CHECKPOINT)
        change(model)
        out[key] = save_checkpoint(model.eval(), folder / f"{key}.safetensors", info)
    return out


def export_once(ckpt: Path, mode: str, work: Path, gate: tuple[Path, Path], args) -> dict:
    from export.pipeline import export_artifacts
    from export.request import ExportRequest, GateFailedError

    out = work / f"out_{ckpt.stem}_{mode}"
    request = ExportRequest(
        checkpoint=ckpt,
        out=out,
        name="m",
        precisions=("int8",),
        height=args.height,
        width=args.width,
        calib_data="generated",
        calib_cache=work / f"cache_{ckpt.stem}_{mode}",  # each export calibrates: comparable times
        val_data=gate[0],
        val_masks=gate[1],
        verify_frames=args.frames,
        int8_fallback=mode,
        force=True,
    )
    start = time.perf_counter()
    try:
        report = export_artifacts(request)
    except GateFailedError as err:
        report = err.report
    seconds = time.perf_counter() - start
    (result,) = [a for a in report.artifacts if a.precision == "int8"]
    c = result.check
    path = out / "m.int8.onnx"
    cal = report.calibration
    rec = cal.repairs.to_dict() if cal is not None and cal.repairs is not None else {}
    return {
        "passed": c.passed,
        "agreement": c.agreement,
        "miou": c.miou,
        "ref_miou": report.reference_miou,
        "ort_ms": c.latency_ms,
        "ov_ms": c.openvino.latency_ms if c.openvino is not None else None,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.exists() else None,
        "equalized": len(rec.get("equalized", [])),
        "floated": len(rec.get("left_in_float", [])),
        "seconds": seconds,
    }


def markdown(results: dict, args, took: float) -> list[str]:
    import onnxruntime

    ov = any(r["ov_ms"] is not None for r in results.values())
    lines = [
        "`" + " ".join(["python -m benchmarks.int8_repair", *sys.argv[1:]]) + "`",
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {took / 60:.1f} min, "
        f"{args.height}x{args.width}, gate: {args.frames} generated scenes with masks; "
        f"onnxruntime {onnxruntime.__version__})",
        "",
        "| checkpoint | --int8-fallback | gate | agree % | mIoU % (FP32) | equalized pairs "
        "| nodes in float | ORT ms" + (" | OpenVINO ms" if ov else "") + " | INT8 sha256 "
        "| export s |",
        "|---|---|---|---|---|---|---|---|" + ("---|" if ov else "") + "---|---|",
    ]
    for (key, mode), r in results.items():
        name = dict(ROWS)[key]
        miou = "-" if r["miou"] is None else f"{100 * r['miou']:.2f} ({100 * r['ref_miou']:.2f})"
        row = [name, mode, "pass" if r["passed"] else "FAIL", f"{100 * r['agreement']:.2f}",
               miou, str(r["equalized"]), str(r["floated"]), f"{r['ort_ms']:.1f}"]  # fmt: skip
        if ov:
            row.append("-" if r["ov_ms"] is None else f"{r['ov_ms']:.1f}")
        row += [r["sha256"] or "(not written)", f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="512x512", help="HxW of the export")
    p.add_argument("--frames", type=int, default=16, help="gate frames")
    p.add_argument("--with-fallback", action="store_true", help="also the float-fallback case")
    args = p.parse_args(argv)
    args.height, args.width = (int(v) for v in args.size.lower().split("x"))
    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="scaseg-bench-int8-") as tmp:
        work = Path(tmp)
        gate = write_gate_set(work / "gate", args.frames, args.height, args.width)
        for key, ckpt in checkpoints(work, args.with_fallback).items():
            for mode in ("off", "auto"):
                results[(key, mode)] = export_once(ckpt, mode, work, gate, args)
                print(f"{key} {mode}: {results[(key, mode)]}", file=sys.stderr, flush=True)
    print("\n".join(markdown(results, args, time.perf_counter() - start)))


if __name__ == "__main__":
    main()
