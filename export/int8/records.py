"""What the INT8 stage and its repairs did, as typed records; `to_dict()` is the sidecar's form
(`calibration` and `calibration.repairs` in the INT8 artifact's JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field

from export.int8.equalize import EqualizedPair
from export.int8.rounding import RoundingResult
from export.int8.sensitivity import NodeSensitivity


@dataclass(frozen=True)
class RepairStep:
    """One gate result of the INT8 variant: agreement, mIoU, latency per CPU backend."""

    step: str
    agreement: float
    miou: float | None
    latency_ms: dict[str, float]
    passed: bool
    openvino_agreement: float | None = None

    @classmethod
    def from_check(cls, name: str, check) -> RepairStep:
        latency = {"onnxruntime": round(check.latency_ms, 2)}
        ov = None
        if check.openvino is not None:
            latency["openvino"] = round(check.openvino.latency_ms, 2)
            ov = round(check.openvino.agreement, 6)
        miou = None if check.miou is None else round(check.miou, 6)
        return cls(name, round(check.agreement, 6), miou, latency, check.passed, ov)

    def to_dict(self) -> dict:
        out = {
            "step": self.step,
            "agreement": self.agreement,
            "miou": self.miou,
            "latency_ms": dict(self.latency_ms),
            "passed": self.passed,
        }
        if self.openvino_agreement is not None:
            out["openvino_agreement"] = self.openvino_agreement
        return out


@dataclass
class RepairRecord:
    """--int8-fallback auto: pairs equalized, nodes left in float, every gate step."""

    equalized: list[EqualizedPair] = field(default_factory=list)
    equalize_diff: float | None = None  # max relative FP32 difference of the kept equalization
    left_in_float: list[str] = field(default_factory=list)
    steps: list[RepairStep] = field(default_factory=list)
    quantized_nodes: int | None = None
    max_float_nodes: int | None = None
    most_sensitive: list[NodeSensitivity] = field(default_factory=list)
    ranking: str | None = None  # how the nodes were ranked, and what it cost

    def latency_cost(self) -> dict | None:
        """Latency of the first gated INT8 graph and of the final one, per backend, and ratio."""
        if len(self.steps) < 2:
            return None
        first = self.steps[0].latency_ms
        final = next((s for s in reversed(self.steps) if s.passed), self.steps[-1]).latency_ms
        return {
            backend: {
                "before": first[backend],
                "after": final[backend],
                "ratio": round(final[backend] / first[backend], 3) if first[backend] else None,
            }
            for backend in first
            if backend in final
        }

    def to_dict(self) -> dict:
        out: dict = {
            "mode": "auto",
            "equalized": [p.to_dict() for p in self.equalized],
            "left_in_float": list(self.left_in_float),
            "steps": [s.to_dict() for s in self.steps],
        }
        if self.equalize_diff is not None and self.equalized:
            out["equalization_fp32_max_relative_diff"] = float(f"{self.equalize_diff:.3g}")
        if self.quantized_nodes is not None:
            out["quantized_nodes"] = self.quantized_nodes
        if self.max_float_nodes is not None:
            out["max_float_nodes"] = self.max_float_nodes
        cost = self.latency_cost()
        if cost:
            out["latency_cost_ms"] = cost
        if self.most_sensitive:
            out["most_sensitive"] = [s.to_dict() for s in self.most_sensitive]
        if self.ranking:
            out["ranking"] = self.ranking
        return out


@dataclass
class CalibrationRecord:
    """How the INT8 graph was made: ranges, quantizer, weight rounding."""

    method: str
    samples: int
    library: str
    data: str
    settings: dict
    cache_key: str
    cache_hit: bool
    float_matmuls: list[str]
    equalized: list[EqualizedPair] = field(default_factory=list)
    constant_weights: int = 0  # Constant-node weights turned into initializers before quantizing
    side_pairs_removed: int = 0  # Q/DQ pairs in front of non-quantized readers, bypassed
    rounding: str = "nearest"  # gptq | nearest
    rounding_frames: int = 0
    rounded: list[RoundingResult] = field(default_factory=list)
    repairs: RepairRecord | None = None

    def to_dict(self) -> dict:
        out = {
            "method": self.method,
            "samples": self.samples,
            "library": self.library,
            "data": self.data,
            "settings": dict(self.settings),
            "cache_key": self.cache_key,
            "cache_hit": self.cache_hit,
            "float_matmuls": list(self.float_matmuls),
            "weight_rounding": self._rounding(),
        }
        if self.constant_weights:
            out["constant_weights_made_initializers"] = self.constant_weights
        if self.side_pairs_removed:
            out["side_qdq_pairs_removed"] = self.side_pairs_removed
        if self.equalized:
            out["equalized"] = [p.to_dict() for p in self.equalized]
        if self.repairs is not None:
            out["repairs"] = self.repairs.to_dict()
        return out

    def _rounding(self) -> dict:
        out: dict = {"method": self.rounding}
        if self.rounding == "gptq":
            before = [r.error_before for r in self.rounded]
            after = [r.error_after for r in self.rounded]
            out.update(
                frames=self.rounding_frames,
                layers=len(self.rounded),
                mean_output_error_nearest=float(f"{sum(before) / max(len(before), 1):.4g}"),
                mean_output_error=float(f"{sum(after) / max(len(after), 1):.4g}"),
            )
        return out
