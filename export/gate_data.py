"""What the accuracy gate runs on, in order of preference:

1. the user's validation images with masks (`--val-data`): agreement, mIoU and per-class IoU;
2. held-out frames of `--calib-data` (never the frames calibration used): agreement only;
3. generated street scenes: with their exact masks for the bundled demo model (its classes are
   the scenes' classes); for any other model agreement only, with a warning, since those masks
   mean nothing to it.

Frames are read one at a time (a Cityscapes frame is 6 MB decoded), so a gate over hundreds of
validation images holds one frame in memory, not all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from runtime.errors import UserInputError
from runtime.preprocess import Preprocess

MISMATCH_FRACTION = 0.01  # more mask pixels than this outside the classes: wrong data or model
GATE_SPLIT, GATE_START = "val", 50_000  # far past the 30-200 val frames training looks at
DEFAULT_GATE_FRAMES = 16  # --verify-frames default: generated scenes, held-out frames
DEFAULT_VAL_IMAGES = 100  # ... and for --val-data (evenly spaced over the pairs)


class ClassMismatchError(UserInputError):
    """The masks hold many values the model has no class for (bad input, exit 2)."""


def check_class_mismatch(tally, counted_pixels: int, k: int, name: str) -> None:
    """Refuse masks that mostly label classes the model does not have (another dataset, or a
    missing --reduce-zero-label): mIoU over them would be meaningless. `counted_pixels` are the
    in-range labelled pixels scored so far; `tally` holds the out-of-range ones."""
    labelled = counted_pixels + tally.total_pixels
    if tally.total_pixels > MISMATCH_FRACTION * max(labelled, 1):
        raise ClassMismatchError(
            f"class-count mismatch: {100 * tally.total_pixels / labelled:.1f}% of labelled mask "
            f"pixels so far (up to {name}) hold values outside 0..{k - 1} (largest "
            f"{tally.max_value}) but the model has {k} classes; pass the validation data of "
            "this model's classes, or the --reduce-zero-label / --ignore-index its masks need"
        )


@dataclass(frozen=True)
class GateSample:
    frame_bgr: np.ndarray  # (H,W,3) uint8 as decoded, any size
    truth: np.ndarray | None  # (H,W) class ids at the frame's size; ignore_index where unlabelled
    name: str


@dataclass(frozen=True)
class GateData:
    kind: str  # val | calib-holdout | generated
    description: str  # named in the report and the sidecar
    count: int
    read: Callable[[int], GateSample]
    has_masks: bool
    ignore_index: int = 255
    warnings: tuple[str, ...] = field(default=())
    # Warnings only known once every frame was read (mask values outside the classes).
    late_warnings: Callable[[], list[str]] = lambda: []
    tally: object = None  # val data: the running count of mask values outside the classes

    def __iter__(self) -> Iterator[GateSample]:
        for i in range(self.count):
            yield self.read(i)


def generated_gate(pp: Preprocess, count: int, with_truth: bool) -> GateData:
    """Held-out generated scenes at the model's input size (the demo model's own domain)."""
    from scenes import render_scene, split_seeds

    seeds = split_seeds(GATE_SPLIT, count, GATE_START)

    def read(i: int) -> GateSample:
        frame, labels = render_scene(seeds[i], pp.height, pp.width)
        return GateSample(frame, labels if with_truth else None, f"scene {seeds[i]}")

    what = "with their exact masks" if with_truth else "agreement only, no masks"
    desc = f"generated street scenes: {count} held-out frames at {pp.height}x{pp.width} ({what})"
    return GateData("generated", desc, count, read, with_truth)


def holdout_gate(frames: tuple[np.ndarray, ...], source: str) -> GateData:
    """Frames of the calibration source that calibration did not use (no masks)."""

    def read(i: int) -> GateSample:
        return GateSample(frames[i], None, f"held-out frame {i}")

    desc = (
        f"{len(frames)} held-out frames of --calib-data {source} (not used to calibrate; no masks)"
    )
    return GateData("calib-holdout", desc, len(frames), read, False)


def val_gate(val_set, count: int | None, num_classes: int, ignore_index: int) -> GateData:
    """Validation images with masks; mask values outside the classes are ignored and reported."""
    from runtime.masks import OutOfRangeTally

    picked = val_set.indices(count)
    tally = OutOfRangeTally(num_classes, ignore_index)

    def read(i: int) -> GateSample:
        frame, labels = val_set.read(picked[i])
        name = val_set.pairs[picked[i]][1].name
        labels = tally.clean(labels, name)
        return GateSample(frame, labels, val_set.pairs[picked[i]][0].name)

    desc = f"{val_set.description}; {len(picked)} of {len(val_set)} pairs used"
    return GateData(
        "val", desc, len(picked), read, True, ignore_index, tuple(val_set.warnings),
        tally.summary, tally,
    )  # fmt: skip
