"""The accuracy gate: every exported variant, run through the runtime, against PyTorch FP32.

Each variant is opened the way a deployment opens it (`runtime.open_backend` reading the variant's
sidecar: artifact hash, ONNX external-data guard, the backend's input/output checks) and segments
each gate frame through `runtime.Segmenter` (preprocessing, inference, logits -> labels at the
frame's size). PyTorch FP32 runs the same frames through the same `runtime.preprocess` functions.
Label maps, not logits, are compared: argmax agreement with PyTorch for every precision, mIoU and
per-class IoU against the masks where the gate data has masks, and plain-logit FP32 graphs
elementwise too. Where OpenVINO is installed, every variant also runs on it (agreement, same
budgets) so `--backend auto` may pick it later.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.gate_data import GateData, check_class_mismatch
from runtime.errors import UserInputError
from runtime.metrics import ConfusionMatrix
from runtime.preprocess import Preprocess, labels_to_frame, logits_to_labels, preprocess
from runtime.slide import Inference

WARMUP_RUNS = 2


@dataclass(frozen=True)
class Budgets:
    fp32_max_abs: float = 1e-4
    fp32_agreement: float = 0.999
    fp16_agreement: float = 0.995
    int8_miou_drop_points: float = 1.0  # mIoU points (percent) below PyTorch FP32, with masks
    int8_agreement: float = 0.97

    def __post_init__(self) -> None:
        for name in ("fp32_agreement", "fp16_agreement", "int8_agreement"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserInputError(
                    f"{name} must be a fraction in [0, 1], got {getattr(self, name)}"
                )

    def agreement(self, precision: str) -> float:
        return {
            "fp32": self.fp32_agreement,
            "fp16": self.fp16_agreement,
            "int8": self.int8_agreement,
        }[precision]


@dataclass
class RunnerCheck:
    """One variant on one backend over the gate frames."""

    backend: str  # onnxruntime | openvino
    description: str  # what really ran, e.g. "openvino 2026.4 CPU (inference precision f32)"
    agreement: float
    latency_ms: float  # median inference latency, batch 1, preprocessed input
    miou: float | None  # None without masks
    iou: np.ndarray | None
    max_abs_diff: float | None = None  # plain-logit graphs on ONNX Runtime only
    inference_precision: str | None = None  # OpenVINO's, as read back from the compiled model
    nonfinite: int = 0  # NaN/Inf logits over all gate frames
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> dict:
        out = {
            "backend": self.backend,
            "runs": self.description,
            "agreement": round(self.agreement, 6),
            "miou": None if self.miou is None else round(self.miou, 6),
            "latency_ms": round(self.latency_ms, 2),
            "passed": self.passed,
        }
        if self.inference_precision is not None:
            out["inference_precision"] = self.inference_precision
        return out


@dataclass
class VariantCheck:
    precision: str
    path: Path
    size_bytes: int
    agreement: float
    miou: float | None  # against the masks; None without masks
    iou: np.ndarray | None
    latency_ms: float  # median ONNX Runtime CPU latency, batch 1, preprocessed input
    max_abs_diff: float | None = None  # plain-logit graphs only
    nonfinite: int = 0  # NaN/Inf logits over all gate frames (plain-logit graphs only)
    failures: list[str] = field(default_factory=list)
    openvino: RunnerCheck | None = None  # None where OpenVINO is not installed or not asked
    openvino_error: str | None = None  # why OpenVINO could not run this variant

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> dict:
        out = {
            "agreement": round(self.agreement, 6),
            "miou": None if self.miou is None else round(self.miou, 6),
            "latency_ms_ort_cpu": round(self.latency_ms, 2),
            "max_abs_diff": self.max_abs_diff,
            "passed": self.passed,
        }
        if self.openvino is not None:
            out["openvino"] = self.openvino.summary()
        elif self.openvino_error is not None:
            out["openvino"] = {"passed": False, "error": self.openvino_error}
        return out


@dataclass
class GateResult:
    checks: dict[str, VariantCheck]  # by precision
    ref_miou: float | None  # PyTorch FP32 against the masks
    ref_iou: np.ndarray | None
    frames: int
    data: GateData
    warnings: list[str]
    reference: GateReference | None = None


class _Tally:
    """Agreement with the reference, confusion against the truth, and timings for one runner."""

    def __init__(self, num_classes: int, ignore_index: int) -> None:
        self.cm = ConfusionMatrix(num_classes, ignore_index)
        self.agree = np.zeros(num_classes, np.int64)  # reference pixels of class c kept as c
        self.total = np.zeros(num_classes, np.int64)
        self.times_ms: list[float] = []
        self.max_diff = 0.0
        self.nonfinite = 0  # NaN/Inf logits: argmax of NaN is 0, which can "agree" by luck

    def add(self, labels: np.ndarray, ref_labels: np.ndarray, truth: np.ndarray | None) -> None:
        k = len(self.total)
        same = labels.astype(np.int64) == ref_labels
        self.total += np.bincount(ref_labels.ravel(), minlength=k)[:k]
        self.agree += np.bincount(ref_labels[same].ravel(), minlength=k)[:k]
        if truth is not None:
            self.cm.update(labels, truth)

    @property
    def agreement(self) -> float:
        return float(self.agree.sum() / max(self.total.sum(), 1))

    @property
    def latency_ms(self) -> float:
        return float(np.median(self.times_ms[WARMUP_RUNS:] or self.times_ms))


@dataclass
class GateReference:
    """PyTorch FP32 on the gate frames, kept so a variant can be re-checked without PyTorch."""

    labels: list[np.ndarray]  # per frame, at the frame's size, the smallest integer dtype
    miou: float | None  # against the masks; None without masks
    iou: np.ndarray | None
    frames: int
    has_masks: bool


def run_gate(
    model,
    staged: dict[str, Path],
    pp: Preprocess,
    data: GateData,
    budgets: Budgets,
    class_names: Sequence[str],
    openvino: bool,
    progress=None,
    inference: Inference | None = None,
    traced=None,
) -> GateResult:
    """Run every staged variant (each with its sidecar beside it) over the gate frames.

    The reference is PyTorch FP32 run as mmseg scores the model: whole frames, or with slide
    inference / keep-ratio resizing (`inference`, `pp.resize`) export/slide_reference.py's own
    implementation, independent of the runtime's. Its logits are compared with each graph's on
    the same input batch (all windows of a frame for slide). The result's `reference` re-checks
    a variant later (`recheck`) without running PyTorch. `traced`: the module the graphs were
    traced from where it is not `model` (grid strip attention); logits are compared with it."""
    k = len(class_names)
    if traced is not None:
        traced = traced.eval()
    inference = inference or Inference()
    runners, ov_errors = _open_runners(staged, openvino)
    tallies = {key: _Tally(k, data.ignore_index) for key in runners}
    ref = ConfusionMatrix(k, data.ignore_index)
    kept: list[np.ndarray] = []
    model = model.eval()
    frames = 0
    try:
        for sample in data:
            ref_logits, ref_labels = _reference(model, sample, pp, inference, runners, traced)
            kept.append(ref_labels.astype(_label_dtype(k)))
            if sample.truth is not None:
                ref.update(ref_labels, sample.truth)
                if data.tally is not None:
                    check_class_mismatch(data.tally, int(ref.matrix.sum()), k, sample.name)
            for key, seg in runners.items():
                _run_one(seg, sample, ref_logits, ref_labels, tallies[key])
            frames += 1
            if progress is not None:
                progress()
    finally:
        for seg in runners.values():
            seg.close()
    has_masks = data.has_masks and frames > 0
    reference = GateReference(
        kept,
        ref.miou() if has_masks else None,
        ref.iou() if has_masks else None,
        frames,
        has_masks,
    )
    checks = {
        precision: _check(
            precision, path, runners, tallies, reference, budgets, class_names, ov_errors
        )
        for precision, path in staged.items()
    }
    warnings = [*data.warnings, *data.late_warnings()]
    return GateResult(checks, reference.miou, reference.iou, frames, data, warnings, reference)


def recheck(
    precision: str,
    path: Path,
    reference: GateReference,
    data: GateData,
    budgets: Budgets,
    class_names: Sequence[str],
    openvino: bool,
    progress=None,
) -> VariantCheck:
    """One variant (sidecar beside it) over the same gate frames against a kept reference:
    agreement, mIoU and latency as run_gate measures them; no logit comparison."""
    k = len(class_names)
    runners, ov_errors = _open_runners({precision: path}, openvino)
    tallies = {key: _Tally(k, data.ignore_index) for key in runners}
    try:
        for i, sample in enumerate(data):
            if i >= reference.frames:
                break
            ref_labels = reference.labels[i].astype(np.int64)
            for key, seg in runners.items():
                _run_one(seg, sample, None, ref_labels, tallies[key])
            if progress is not None:
                progress()
    finally:
        for seg in runners.values():
            seg.close()
    check = _check(precision, path, runners, tallies, reference, budgets, class_names, ov_errors)
    check.max_abs_diff = None  # labels only: the reference logits were not kept
    return check


def _reference(model, sample, pp: Preprocess, inference: Inference, runners: dict, traced=None):
    """PyTorch FP32's (logits of the graph's input batch, frame-size labels) for one frame.

    Labels come from `model`; logits, which each graph must match within fp32_max_abs, from
    `traced` where the graph was traced from another module (the grid form of strip attention,
    an approximation of `model` checked by label agreement, not by logits)."""
    import torch

    frame = sample.frame_bgr
    if not inference.slide and pp.resize == "stretch":
        x = torch.from_numpy(preprocess(frame, pp))
        with torch.inference_mode():
            exact = model(x).numpy()
            ref_logits = exact if traced is None else traced(x).numpy()
        _check_reference_finite(exact, sample.name)
        labels = labels_to_frame(logits_to_labels(exact[0], pp), frame.shape[:2])
        return ref_logits, labels.astype(np.int64)
    from export.slide_reference import slide_labels_torch

    labels = slide_labels_torch(model, frame, pp, inference).astype(np.int64)
    ref_logits = None  # the graph's own input batch (windows, padding), as the runtime cuts it
    seg = next((s for s in runners.values() if not s.meta.fused_preprocess), None)
    if seg is not None:
        with torch.inference_mode():
            ref_logits = (traced or model)(torch.from_numpy(seg.prepare(frame))).numpy()
        _check_reference_finite(ref_logits, sample.name)
    return ref_logits, labels


def _check_reference_finite(ref_logits: np.ndarray, frame: str) -> None:
    """PyTorch FP32 itself must give numbers: with NaN logits every label is 0 and every variant
    "agrees" with the reference, so the gate would pass a broken model."""
    bad = ref_logits.size - int(np.count_nonzero(np.isfinite(ref_logits)))
    if bad:
        raise UserInputError(
            f"the checkpoint's own FP32 output holds {bad:,} NaN/Inf values of "
            f"{ref_logits.size:,} on gate frame {frame}: its weights are broken or overflow; "
            "re-export from a healthy training iteration (check its loss), not this one"
        )


def _label_dtype(k: int):
    return np.uint8 if k <= 256 else (np.uint16 if k <= 65536 else np.int64)


def _open_runners(staged: dict[str, Path], openvino: bool) -> tuple[dict, dict[str, str]]:
    from runtime.backends import BackendOptions, open_backend
    from runtime.segmenter import Segmenter

    runners: dict[tuple[str, str], Segmenter] = {}
    ov_errors: dict[str, str] = {}
    try:
        for precision, path in staged.items():
            backend = open_backend(path, "onnxruntime", BackendOptions(provider="cpu"))
            runners[(precision, "onnxruntime")] = Segmenter(backend)
            if openvino:
                try:
                    ov = open_backend(path, "openvino", BackendOptions(device="CPU"))
                    runners[(precision, "openvino")] = Segmenter(ov)
                except (ImportError, RuntimeError, ValueError) as err:
                    ov_errors[precision] = " ".join(str(err).split())
    except BaseException:
        for seg in runners.values():
            seg.close()
        raise
    return runners, ov_errors


def _check(
    precision, path, runners, tallies, reference: GateReference, budgets, class_names, ov_errors
) -> VariantCheck:
    check = _variant_check(precision, path, runners, tallies, reference.has_masks)
    per_class = _per_class_agreement(class_names, tallies[(precision, "onnxruntime")])
    check.failures = _failures(
        check, reference.miou, reference.iou, budgets, class_names, per_class
    )
    ov_key = (precision, "openvino")
    if ov_key in runners:
        ov = check.openvino
        ov.failures = _failures(ov, reference.miou, reference.iou, budgets, class_names,
                                _per_class_agreement(class_names, tallies[ov_key]), precision)  # fmt: skip
    check.openvino_error = ov_errors.get(precision)
    return check


def _run_one(
    seg, sample, ref_logits: np.ndarray | None, ref_labels: np.ndarray, tally: _Tally
) -> None:
    batch = seg.prepare(sample.frame_bgr)
    start = time.perf_counter()
    out = seg.infer(batch)
    tally.times_ms.append((time.perf_counter() - start) * 1e3)
    if seg.meta.output_kind == "logits":
        tally.nonfinite += int(out.size - np.count_nonzero(np.isfinite(out)))
    if (
        ref_logits is not None
        and seg.meta.output_kind == "logits"
        and out.shape == ref_logits.shape
    ):
        diff = np.abs(out.astype(np.float64) - ref_logits).max()
        tally.max_diff = max(tally.max_diff, float(diff))
    labels = seg.postprocess(out, sample.frame_bgr.shape[:2])
    tally.add(labels, ref_labels, sample.truth)


def _variant_check(precision, path: Path, runners, tallies, has_masks: bool) -> VariantCheck:
    ort_key = (precision, "onnxruntime")
    t, seg = tallies[ort_key], runners[ort_key]
    logits = seg.meta.output_kind == "logits"
    check = VariantCheck(
        precision=precision,
        path=path,
        size_bytes=path.stat().st_size,
        agreement=t.agreement,
        miou=t.cm.miou() if has_masks else None,
        iou=t.cm.iou() if has_masks else None,
        latency_ms=t.latency_ms,
        max_abs_diff=t.max_diff if logits else None,
        nonfinite=t.nonfinite,
    )
    ov_key = (precision, "openvino")
    if ov_key in tallies:
        ov_t, ov_seg = tallies[ov_key], runners[ov_key]
        check.openvino = RunnerCheck(
            backend="openvino",
            description=ov_seg.description,
            agreement=ov_t.agreement,
            latency_ms=ov_t.latency_ms,
            miou=ov_t.cm.miou() if has_masks else None,
            iou=ov_t.cm.iou() if has_masks else None,
            inference_precision=getattr(ov_seg.backend, "inference_precision", None),
            nonfinite=ov_t.nonfinite,
        )
    return check


def _per_class_agreement(names: Sequence[str], tally: _Tally) -> str:
    parts = [
        f"{n} {100.0 * a / t:.2f}%"
        for n, a, t in zip(names, tally.agree, tally.total)
        if t > 0 and a < t
    ]
    return ", ".join(parts) if parts else "no class lost pixels"


def _iou_deltas(names: Sequence[str], iou: np.ndarray, ref_iou: np.ndarray) -> str:
    deltas = sorted(
        ((float(b - a) * 100.0, n) for n, a, b in zip(names, ref_iou, iou) if np.isfinite(a)),
        key=lambda d: d[0],
    )
    return ", ".join(f"{n} {d:+.2f}" for d, n in deltas)


def _failures(
    c: VariantCheck | RunnerCheck,
    ref_miou: float | None,
    ref_iou: np.ndarray | None,
    b: Budgets,
    names: Sequence[str],
    per_class: str,
    precision: str | None = None,
) -> list[str]:
    precision = precision or c.precision
    where = "" if isinstance(c, VariantCheck) else f" on {c.backend}"
    out = []
    if c.nonfinite:
        out.append(
            f"{precision}{where} output holds {c.nonfinite:,} NaN/Inf logits over the gate frames "
            "(an overflow in reduced precision); its labels mean nothing"
        )
    if precision == "fp32" and c.max_abs_diff is not None and c.max_abs_diff > b.fp32_max_abs:
        out.append(
            f"fp32 logits differ from PyTorch by up to {c.max_abs_diff:.3g} "
            f"(budget {b.fp32_max_abs:g}, over by {c.max_abs_diff - b.fp32_max_abs:.3g})"
        )
    need = b.agreement(precision)
    if c.agreement < need:
        out.append(
            f"{precision}{where} argmax agreement with PyTorch FP32 {100 * c.agreement:.3f}% is "
            f"below {100 * need:.2f}% (short by {100 * (need - c.agreement):.3f} points); "
            f"per-class agreement: {per_class}"
        )
    if precision == "int8" and ref_miou is not None and c.miou is not None:
        drop = 100.0 * (ref_miou - c.miou)
        if not np.isfinite(drop) or drop > b.int8_miou_drop_points:
            out.append(
                f"int8{where} mIoU {100 * c.miou:.2f} is {drop:.2f} points below FP32 "
                f"{100 * ref_miou:.2f} (budget {b.int8_miou_drop_points:.2f}, over by "
                f"{drop - b.int8_miou_drop_points:.2f}); per-class IoU change (points): "
                f"{_iou_deltas(names, c.iou, ref_iou)}"
            )
    return out
