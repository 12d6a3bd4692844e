"""Tiny real ONNX models (onnx.helper, no torch) with sidecars, for the deployment tests.

A stride-4 convolution stands in for SCASeg and follows the artifact contract: plain ("input"
float32 NCHW -> "logits" (N,K,H/4,W/4)) or fused (uint8 NHWC BGR "image" in; Resize + ArgMax +
Cast "labels" (N,H,W) out), static or with dynamic batch/size and a (min, opt, max) profile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.classes import DEMO_CLASSES, DEMO_PALETTE_RGB
from runtime.meta import ModelMeta, TensorSpec, write_meta
from runtime.preprocess import Preprocess

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SIZE = 64
NUM_CLASSES = 5
# A sidecar's engine provenance, as scaseg-export records it for a Jetson Orin build.
ORIN_ENGINE = {
    "tensorrt_version": "10.3.0",
    "gpu_name": "Orin",
    "compute_capability": "8.7",
    "jetpack": "6.1",
    "dla_core": None,
}


def _fused_input(pp: Preprocess) -> tuple[list, list]:
    """uint8 (N,H,W,3) BGR "image" -> normalised (N,3,H,W) float32 "x" (runtime.preprocess)."""
    inits = [
        numpy_helper.from_array(np.array([2, 1, 0], np.int64), "bgr_to_rgb"),
        numpy_helper.from_array(np.asarray(pp.mean, np.float32), "mean"),
        numpy_helper.from_array(
            (1.0 / np.asarray(pp.std, np.float32)).astype(np.float32), "inv_std"
        ),
    ]
    nodes = [
        helper.make_node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["image_f", "bgr_to_rgb"], ["rgb"], axis=3),
        helper.make_node("Sub", ["rgb", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "inv_std"], ["nhwc"]),
        helper.make_node("Transpose", ["nhwc"], ["x"], perm=[0, 3, 1, 2]),  # NHWC -> NCHW
    ]
    return nodes, inits


def _fused_output(labels_dtype: str) -> tuple[list, list]:
    """logits (N,K,H/4,W/4) -> labels (N,H,W): bilinear x4 (half-pixel), ArgMax, Cast."""
    to = TensorProto.UINT8 if labels_dtype == "uint8" else TensorProto.INT32
    inits = [numpy_helper.from_array(np.array([1, 1, 4, 4], np.float32), "scales")]
    nodes = [
        helper.make_node("Resize", ["logits", "", "scales"], ["up"], mode="linear",
                         coordinate_transformation_mode="half_pixel"),
        helper.make_node("ArgMax", ["up"], ["ids"], axis=1, keepdims=0),
        helper.make_node("Cast", ["ids"], ["labels"], to=to),
    ]  # fmt: skip
    return nodes, inits


def build_model(
    path: Path,
    *,
    fused: bool = False,
    dynamic: bool = False,
    batch_range: tuple[int, int, int] = (1, 2, 4),
    labels_dtype: str = "int32",
    precision: str = "fp32",
    engine: dict | None = None,
    num_classes: int = NUM_CLASSES,
) -> Path:
    """Write a tiny ONNX model (or, for an .engine path, the sidecar for one) and its sidecar."""
    k, s = num_classes, SIZE
    pp = Preprocess(s, s)
    n, h, w = ("batch", "height", "width") if dynamic else (1, s, s)
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.2, (k, 3, 4, 4)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.normal(0, 0.1, (k,)).astype(np.float32), "conv_b"),
    ]
    nodes: list = []
    if fused:
        pre_nodes, pre_inits = _fused_input(pp)
        nodes, inits = nodes + pre_nodes, inits + pre_inits
        graph_in = helper.make_tensor_value_info("image", TensorProto.UINT8, [n, h, w, 3])
        in_spec = TensorSpec("image", "uint8", "NHWC", (n, h, w, 3))
    else:
        graph_in = helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, 3, h, w])
        in_spec = TensorSpec("input", "float32", "NCHW", (n, 3, h, w))
    if dynamic:
        sizes = ((32, 32), (64, 64), (128, 128))
        profile = tuple(
            (b, hh, ww, 3) if fused else (b, 3, hh, ww) for b, (hh, ww) in zip(batch_range, sizes)
        )
        in_spec = TensorSpec(in_spec.name, in_spec.dtype, in_spec.layout, in_spec.shape, profile)
    nodes.append(
        helper.make_node("Conv", ["x" if fused else "input", "conv_w", "conv_b"], ["logits"],
                         strides=[4, 4])
    )  # fmt: skip
    if fused:
        post_nodes, post_inits = _fused_output(labels_dtype)
        nodes, inits = nodes + post_nodes, inits + post_inits
        elem = TensorProto.UINT8 if labels_dtype == "uint8" else TensorProto.INT32
        graph_out = helper.make_tensor_value_info("labels", elem, [n, h, w])
        out_spec = TensorSpec("labels", labels_dtype, "NHW", (n, h, w))
    else:
        h4, w4 = ("h4", "w4") if dynamic else (s // 4, s // 4)
        graph_out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [n, k, h4, w4])
        out_spec = TensorSpec("logits", "float32", "NCHW", (n, k, h4, w4))
    graph = helper.make_graph(nodes, "tiny_seg", [graph_in], [graph_out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if path.suffix == ".onnx":
        onnx.save(model, str(path))
    else:
        # Placeholder bytes, not an engine: only the sidecar is read when writing configs, and
        # nothing here runs it. Real engines need a GPU (see docs/deployment.md, limits).
        path.write_bytes(b"placeholder: not a TensorRT engine")
    classes = tuple(f"class{i}" for i in range(k)) if k > len(DEMO_CLASSES) else DEMO_CLASSES[:k]
    palette = tuple((i * 37 % 256, i * 91 % 256, i * 53 % 256) for i in range(k))
    write_meta(
        path,
        ModelMeta(
            variant="tiny-test",
            precision=precision,
            class_names=classes,
            palette_rgb=palette if k > len(DEMO_PALETTE_RGB) else DEMO_PALETTE_RGB[:k],
            input=in_spec,
            output=out_spec,
            output_kind="labels" if fused else "logits",
            output_stride=1 if fused else 4,
            preprocess=pp,
            fused_preprocess=fused,
            fused_argmax=fused,
            engine=engine,
        ),
    )
    return path


@pytest.fixture(scope="session")
def deploy_models(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deploy_models")
