"""Segmentation metrics on label maps: confusion matrix, per-class IoU, mIoU, pixel accuracy.

Works on (H,W) integer label maps, not on a model, so any backend's output can be scored the same
way. Rows of the confusion matrix are the true class, columns the predicted class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from runtime.errors import UserInputError

IGNORE_INDEX = 255


class ConfusionMatrix:
    """A (K,K) int64 count of (true, predicted) pixel pairs, accumulated over many frames."""

    def __init__(self, num_classes: int, ignore_index: int | None = IGNORE_INDEX) -> None:
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(
        self, pred_labels: np.ndarray, true_labels: np.ndarray, *, skip_out_of_range: bool = False
    ) -> int:
        """Add one prediction/truth pair (same shape, any integer dtype).

        Truth pixels equal to ignore_index are left out. Truth values outside 0..K-1 are an error,
        or with skip_out_of_range left out too (the caller reports them); returns how many were.
        Predictions outside 0..K-1 are always an error: the model and the class list disagree.
        """
        pred, true = np.asarray(pred_labels), np.asarray(true_labels)
        if pred.shape != true.shape:
            raise ValueError(
                f"prediction shape {pred.shape} does not match truth shape {true.shape}; "
                "resize the prediction to the label map's size (nearest neighbour) first"
            )
        for name, arr in (("prediction", pred), ("truth", true)):
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"{name} labels must be an integer array, got dtype {arr.dtype}")
        pred, true = pred.ravel().astype(np.int64), true.ravel().astype(np.int64)
        if self.ignore_index is not None:
            keep = true != self.ignore_index
            pred, true = pred[keep], true[keep]
        skipped = 0
        if skip_out_of_range:
            keep = (true >= 0) & (true < self.num_classes)
            skipped = int(keep.size - np.count_nonzero(keep))
            pred, true = pred[keep], true[keep]
        self._check_range("truth", true)
        self._check_range("prediction", pred)
        k = self.num_classes
        self.matrix += np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
        return skipped

    def _check_range(self, name: str, labels: np.ndarray) -> None:
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            bad = int(labels[(labels < 0) | (labels >= self.num_classes)][0])
            k = self.num_classes
            if name == "truth":
                raise UserInputError(
                    f"the reference labels (masks, or the reference model's output) hold label "
                    f"{bad}, outside 0..{k - 1}: they were made for other classes than the "
                    f"{k} being scored; score with masks made for this model's classes, or give "
                    f"num_classes/the class list they use, and mark unlabelled pixels with "
                    f"ignore_index={self.ignore_index}"
                )
            raise ValueError(
                f"the model predicted label {bad}, outside 0..{k - 1}: it has more classes than "
                f"the {k} being scored; give the model's own class list (num_classes >= {bad + 1})"
            )

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts into this one (e.g. from a parallel worker); returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge a {other.num_classes}-class matrix into a "
                f"{self.num_classes}-class one"
            )
        self.matrix += other.matrix
        return self

    def iou(self) -> np.ndarray:
        """(K,) float64 IoU per class; NaN for a class absent from both prediction and truth."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def miou(self) -> float:
        """Mean IoU over the classes that occur (NaN when nothing was counted)."""
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels predicted correctly (NaN when nothing was counted)."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")


def argmax_agreement(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """Fraction of pixels where two label maps agree (e.g. FP32 vs INT8 engine outputs)."""
    a, b = np.asarray(labels_a), np.asarray(labels_b)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("label maps are empty; nothing to compare")
    return float(np.count_nonzero(a == b) / a.size)


def format_iou_table(names: Sequence[str], iou: np.ndarray) -> str:
    """Plain-text table of per-class IoU (percent) with the mean last; '-' for absent classes."""
    iou = np.asarray(iou, np.float64)
    if len(names) != len(iou):
        raise ValueError(f"got {len(names)} class names for {len(iou)} IoU values")
    width = max([len("class"), len("mean"), *(len(n) for n in names)])
    lines = [f"{'class':<{width}}  IoU %", f"{'-' * width}  -----"]
    for name, value in zip(names, iou, strict=True):
        lines.append(f"{name:<{width}}  {_percent(value)}")
    mean = float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
    lines += [f"{'-' * width}  -----", f"{'mean':<{width}}  {_percent(mean)}"]
    return "\n".join(lines)


def _percent(value: float) -> str:
    return f"{100.0 * value:5.1f}" if np.isfinite(value) else f"{'-':>5}"
