"""scaseg runtime: torch-free inference for SCASeg artifacts (ONNX Runtime or TensorRT).

    from runtime import Segmenter
    labels = Segmenter("scaseg_t_demo.int8.onnx")(frame_bgr)

Names are resolved lazily (PEP 562) so that `import runtime` loads nothing heavy.
"""

from __future__ import annotations

_LAZY = {
    "Segmenter": "runtime.segmenter",
    "open_backend": "runtime.backends",
    "BackendOptions": "runtime.backends",
    "open_source": "runtime.io.sources",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
