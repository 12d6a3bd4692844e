"""A FAKE engine file with its sidecar, for the TensorRT backend, profiler and CLI tests.

The engine runs only on FakeTrt (tests/support/fake_tensorrt.py); it proves nothing about real
TensorRT engines.
"""

from __future__ import annotations

from runtime.meta import ModelMeta, TensorSpec, write_meta
from runtime.preprocess import Preprocess
from scenes.classes import DEMO_CLASSES, DEMO_PALETTE_RGB
from tests.support.fake_tensorrt import write_fake_engine

K = 4
BUILD = "scaseg-export build-engine tiny.fp32.onnx --workspace-gib 2"  # as build_command writes it
PROVENANCE = {
    "tensorrt_version": "10.3.0.30",
    "cuda_version": "12.2",
    "gpu_name": "Fake GPU",
    "compute_capability": "8.7",
    "jetpack": "6.0",
    "dla_core": None,
    "build_command": BUILD,
}
PROFILE = ((1, 3, 32, 32), (1, 3, 64, 64), (2, 3, 128, 128))


def engine_tensors(dynamic: bool, input_dtype: str = "float32") -> list[dict]:
    """Outputs listed first and an extra output: binding must go by name, not index."""
    x_shape = [-1, 3, -1, -1] if dynamic else [1, 3, 64, 64]
    out_shape = [-1, K, -1, -1] if dynamic else [1, K, 16, 16]
    return [
        {"name": "aux", "mode": "output", "dtype": "float32", "shape": [-1 if dynamic else 1, 1]},
        {"name": "logits", "mode": "output", "dtype": "float32", "shape": out_shape},
        {
            "name": "input",
            "mode": "input",
            "dtype": input_dtype,
            "shape": x_shape,
            "profile": PROFILE,
        },
    ]


def make_engine(tmp_path, dynamic=False, engine=PROVENANCE, sidecar=True, input_dtype="float32"):
    path = tmp_path / "tiny.fp32.engine"
    write_fake_engine(path, engine_tensors(dynamic, input_dtype))
    shape = ("batch", 3, "height", "width") if dynamic else (1, 3, 64, 64)
    meta = ModelMeta(
        variant="tiny-test", precision="fp32", class_names=DEMO_CLASSES[:K],
        palette_rgb=DEMO_PALETTE_RGB[:K],
        input=TensorSpec("input", "float32", "NCHW", shape, PROFILE if dynamic else None),
        output=TensorSpec("logits", "float32", "NCHW", ("batch", K, "h4", "w4")),
        output_kind="logits", output_stride=4, preprocess=Preprocess(64, 64), engine=engine,
    )  # fmt: skip
    if sidecar:
        write_meta(path, meta)
    return path, meta
