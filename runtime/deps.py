"""Optional heavy dependencies, imported only when a code path needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from runtime.errors import ScasegError

INSTALL_HINTS = {
    "onnxruntime": "pip install 'scaseg[cpu]' (or 'scaseg[gpu]' for CUDA; never both)",
    "tensorrt": "use JetPack's python3-libnvinfer or the NVIDIA TensorRT container (pip wheels need a GPU driver)",
    "pycuda": "pip install 'scaseg[trt]' on the target (it compiles against the local CUDA)",
    "cuda": "pip install cuda-python",
    "onnx": "pip install onnx (it comes with the cpu, gpu, openvino and export extras)",
    "matplotlib": "pip install 'scaseg[profile]' (or just matplotlib)",
    "psutil": "pip install 'scaseg[profile]' (or just psutil)",
    "openvino": "pip install 'scaseg[openvino]' (or use --backend onnxruntime)",
}


class MissingDependencyError(ScasegError, ImportError):
    """An optional package a code path needs is not installed; the message says how to get it."""


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` or raise MissingDependencyError naming what it is for and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        hint = INSTALL_HINTS.get(top, f"pip install {top}")
        raise MissingDependencyError(
            f"{module} is needed {purpose} but is not installed: {hint}"
        ) from err


def available(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
