"""Which backend `backend="auto"` runs an .onnx model on, and why (the CLIs print the reason,
with the API's option names turned into their flags).

Kept apart from the backends themselves: deciding needs only the sidecar and what is installed,
and no import of openvino (ONNX Runtime is asked for its provider list).
"""

from __future__ import annotations

import importlib.util
import platform
from dataclasses import dataclass

from runtime.meta import ModelMeta
from runtime.text import printable

X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")
NVIDIA_EPS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass(frozen=True)
class BackendChoice:
    """Which backend `backend="auto"` picked for an .onnx model, and why (shown to the user)."""

    kind: str  # onnxruntime | openvino
    reason: str


def choose_onnx_backend(
    meta: ModelMeta,
    provider: str,
    ort_providers: list[str],
    openvino_installed: bool,
    machine: str,
) -> BackendChoice:
    """The fastest installed backend for an .onnx that was verified on it at export.

    ONNX Runtime wherever an explicit provider or an NVIDIA execution provider is there; OpenVINO
    on x86 CPUs when the export gate ran the artifact on OpenVINO and it passed; else ONNX Runtime.
    """
    if provider != "auto":
        return BackendChoice("onnxruntime", f"provider={provider!r} given")
    nvidia = [p for p in ort_providers if p in NVIDIA_EPS]
    if nvidia:
        return BackendChoice("onnxruntime", f"NVIDIA GPU: ONNX Runtime lists {nvidia[0]}")
    if machine.lower() not in X86_MACHINES:
        return BackendChoice(
            "onnxruntime", f"OpenVINO is picked on x86 CPUs only; this is {machine}"
        )
    if not openvino_installed:
        return BackendChoice(
            "onnxruntime",
            "OpenVINO is not installed (faster on x86: pip install 'scaseg[openvino]')",
        )
    gate = (meta.extra.get("gate") or {}).get("openvino") if isinstance(meta.extra, dict) else None
    if not isinstance(gate, dict):
        return BackendChoice(
            "onnxruntime",
            "not verified on OpenVINO at export: re-export with OpenVINO installed to use it",
        )
    if gate.get("passed") is not True:
        # The sidecar's own words: control characters escaped (the printer escapes markup).
        why = printable(gate.get("error"), limit=200, markup=False) if gate.get("error") else None
        return BackendChoice(
            "onnxruntime", f"failed the OpenVINO check at export ({why or _agreement(gate)})"
        )
    return BackendChoice(
        "openvino", f"x86 CPU, verified on OpenVINO at export ({_agreement(gate)})"
    )


def _agreement(gate: dict) -> str:
    value = gate.get("agreement")
    if isinstance(value, (int, float)):
        return f"argmax agreement {100 * value:.2f}%" if value <= 1 else f"agreement {value}"
    return "agreement not recorded"


def auto_onnx_choice(meta: ModelMeta, provider: str, device: int | str | None) -> BackendChoice:
    """choose_onnx_backend with the facts of this machine (openvino is found, not imported);
    `provider` and `device` as in BackendOptions."""
    if isinstance(device, str):
        return BackendChoice("openvino", f"device={device!r} is an OpenVINO device")
    ort_providers: list[str] = []
    if _installed("onnxruntime"):
        import onnxruntime

        ort_providers = list(onnxruntime.get_available_providers())
    return choose_onnx_backend(
        meta, provider, ort_providers, _installed("openvino"), platform.machine()
    )


def _installed(module: str) -> bool:
    """Whether `module` can be found, without importing it (openvino takes a while to load)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
