"""The demo model shipped inside the runtime package, so `scaseg-run clip.mp4` works right after
`pip install 'scaseg[cpu]'`, with no torch and no export step.

It is SCASeg-T trained on generated street scenes (scaseg/weights/scaseg_t_demo.safetensors),
exported by `scaseg-export --precision fp32 --name scaseg_t_demo --out runtime/models`: FP32,
because on ONNX Runtime's CPU provider (the default install) it is the fastest variant (BENCHMARKS.md
table 1); its sidecar records that it passed the gate on OpenVINO too, so `--backend auto` runs it
there where OpenVINO is installed. tests/runtime/test_bundled_model.py checks it is what the export
makes from the shipped weights.
"""

from __future__ import annotations

from pathlib import Path

from runtime.meta import sidecar_path

BUNDLED_MODEL = Path(__file__).resolve().parent / "models" / "scaseg_t_demo.fp32.onnx"


def bundled_model() -> Path | None:
    """The shipped demo model, or None where the package was installed without it."""
    if BUNDLED_MODEL.is_file() and sidecar_path(BUNDLED_MODEL).is_file():
        return BUNDLED_MODEL
    return None
