"""What an export decided about the graph's form, recorded in the report and the sidecar:
the strip attention form (export/strip_form.py) and how frames are run (export/inference_plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.slide import Inference


@dataclass(frozen=True)
class StripForm:
    form: str  # "exact" | "grid"
    grid: int | None  # grid points per head (grid form only)
    requested: str  # what was asked: auto | exact | grid
    reason: str  # one line: why this form

    def to_dict(self) -> dict:
        return {
            "form": self.form,
            "grid": self.grid,
            "requested": self.requested,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class InferencePlan:
    inference: Inference
    resize: str  # stretch | keep_ratio
    scale: tuple[int, int] | None  # keep_ratio: mmseg's Resize scale (long and short limits)
    source: str  # where the choice came from, for the report
    windows: tuple[int, int] = (1, 1)  # slide: windows of a landscape / the largest frame

    def describe(self) -> str:
        resize = "stretch" if self.resize == "stretch" else f"keep-ratio resize to {self.scale}"
        text = f"{self.inference.describe()} inference, {resize} ({self.source})"
        if self.inference.slide:
            text += f"; up to {self.windows[1]} windows per frame in one batch"
        return text
