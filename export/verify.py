"""The accuracy gate: every exported variant on ONNX Runtime (CPU) against PyTorch FP32.

Held-out generated frames (the "val" split from an offset that training never validates on)
go through runtime.preprocess; each variant's labels are compared with PyTorch's (argmax
agreement) and with the ground truth (mIoU), and plain-logit FP32 graphs elementwise too.
Label maps, not logits, are the right test for FP16/INT8 (users.md #3).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.ort_session import cpu_session
from runtime.meta import ModelMeta
from runtime.metrics import ConfusionMatrix
from runtime.preprocess import Preprocess, logits_to_labels, preprocess, preprocess_uint8

GATE_SPLIT, GATE_START = "val", 50_000  # far past the 30-200 val frames training looks at
WARMUP_RUNS = 2


@dataclass(frozen=True)
class Budgets:
    fp32_max_abs: float = 1e-4
    fp32_agreement: float = 0.999
    fp16_agreement: float = 0.995
    int8_miou_drop_points: float = 1.0  # mIoU points (percent) below PyTorch FP32

    def __post_init__(self) -> None:
        for name in ("fp32_agreement", "fp16_agreement"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a fraction in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class GateFrames:
    frames_bgr: tuple[np.ndarray, ...]  # at model input size
    truth: tuple[np.ndarray, ...]  # (H,W) class ids
    ref_logits: tuple[np.ndarray, ...]  # PyTorch FP32 (K,h,w)
    ref_labels: tuple[np.ndarray, ...]
    ref_miou: float
    ref_iou: np.ndarray


@dataclass
class VariantCheck:
    precision: str
    path: Path
    size_bytes: int
    agreement: float
    miou: float
    iou: np.ndarray
    latency_ms: float  # median ORT CPU latency, batch 1, preprocessed input
    max_abs_diff: float | None = None  # plain-logit graphs only
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> dict:
        return {
            "agreement": round(self.agreement, 6),
            "miou": round(self.miou, 6),
            "latency_ms_ort_cpu": round(self.latency_ms, 2),
            "max_abs_diff": self.max_abs_diff,
            "passed": self.passed,
        }


def gate_frames(model, pp: Preprocess, count: int, num_classes: int) -> GateFrames:
    """Render held-out scenes at the model size and run PyTorch FP32 on them."""
    import torch

    from runtime.scenes import render_scene, split_seeds

    frames, truth, logits, labels = [], [], [], []
    cm = ConfusionMatrix(num_classes)
    model = model.eval()
    for seed in split_seeds(GATE_SPLIT, count, GATE_START):
        frame, gt = render_scene(seed, pp.height, pp.width)
        with torch.inference_mode():
            out = model(torch.from_numpy(preprocess(frame, pp)))[0].numpy()
        lab = logits_to_labels(out, pp)
        cm.update(lab, gt)
        frames.append(frame)
        truth.append(gt)
        logits.append(out)
        labels.append(lab)
    return GateFrames(
        tuple(frames), tuple(truth), tuple(logits), tuple(labels), cm.miou(), cm.iou()
    )


def check_variant(
    path: Path, meta: ModelMeta, ref: GateFrames, budgets: Budgets, class_names: Sequence[str]
) -> VariantCheck:
    """Run one ONNX artifact over the gate frames; failures say by how much and per class."""
    session = cpu_session(path)
    pp = meta.preprocess
    feed = preprocess_uint8 if meta.fused_preprocess else preprocess
    cm = ConfusionMatrix(len(class_names))
    agree = np.zeros(len(class_names), np.int64)  # reference pixels of class c kept as c
    total = np.zeros(len(class_names), np.int64)
    times, max_diff = [], 0.0
    for frame, gt, ref_logits, ref_labels in zip(
        ref.frames_bgr, ref.truth, ref.ref_logits, ref.ref_labels
    ):
        x = feed(frame, pp)
        start = time.perf_counter()
        out = session.run(None, {meta.input.name: x})[0][0]
        times.append((time.perf_counter() - start) * 1e3)
        if meta.output_kind == "labels":
            labels = out
        else:
            labels = logits_to_labels(out, pp)
            max_diff = max(max_diff, float(np.abs(out.astype(np.float64) - ref_logits).max()))
        cm.update(labels, gt)
        same = labels.astype(np.int64) == ref_labels
        total += np.bincount(ref_labels.ravel(), minlength=len(total))[: len(total)]
        agree += np.bincount(ref_labels[same].ravel(), minlength=len(agree))[: len(agree)]
    agreement = float(agree.sum() / max(total.sum(), 1))
    check = VariantCheck(
        precision=meta.precision,
        path=path,
        size_bytes=path.stat().st_size,
        agreement=agreement,
        miou=cm.miou(),
        iou=cm.iou(),
        latency_ms=float(np.median(times[WARMUP_RUNS:] or times)),
        max_abs_diff=max_diff if meta.output_kind == "logits" else None,
    )
    per_class = _per_class_agreement(class_names, agree, total)
    check.failures = _failures(check, ref, budgets, class_names, per_class, meta.precision)
    return check


def _per_class_agreement(names: Sequence[str], agree: np.ndarray, total: np.ndarray) -> str:
    parts = [f"{n} {100.0 * a / t:.2f}%" for n, a, t in zip(names, agree, total) if t > 0 and a < t]
    return ", ".join(parts) if parts else "no class lost pixels"


def _iou_deltas(names: Sequence[str], iou: np.ndarray, ref_iou: np.ndarray) -> str:
    deltas = sorted(
        ((float(b - a) * 100.0, n) for n, a, b in zip(names, ref_iou, iou) if np.isfinite(a)),
        key=lambda d: d[0],
    )
    return ", ".join(f"{n} {d:+.2f}" for d, n in deltas)


def _failures(
    c: VariantCheck, ref: GateFrames, b: Budgets, names, per_class: str, precision: str
) -> list[str]:
    out = []
    if precision == "fp32" and c.max_abs_diff is not None and c.max_abs_diff > b.fp32_max_abs:
        out.append(
            f"fp32 logits differ from PyTorch by up to {c.max_abs_diff:.3g} "
            f"(budget {b.fp32_max_abs:g}, over by {c.max_abs_diff - b.fp32_max_abs:.3g})"
        )
    need = {"fp32": b.fp32_agreement, "fp16": b.fp16_agreement}.get(precision)
    if need is not None and c.agreement < need:
        out.append(
            f"{precision} argmax agreement {100 * c.agreement:.3f}% is below {100 * need:.2f}% "
            f"(short by {100 * (need - c.agreement):.3f} points); per-class agreement: {per_class}"
        )
    if precision == "int8":
        drop = 100.0 * (ref.ref_miou - c.miou)
        if not np.isfinite(drop) or drop > b.int8_miou_drop_points:
            out.append(
                f"int8 mIoU {100 * c.miou:.2f} is {drop:.2f} points below FP32 "
                f"{100 * ref.ref_miou:.2f} (budget {b.int8_miou_drop_points:.2f}, over by "
                f"{drop - b.int8_miou_drop_points:.2f}); per-class IoU change (points): "
                f"{_iou_deltas(names, c.iou, ref.ref_iou)}"
            )
    return out
