"""Tiny real ONNX segmenters (onnx.helper, no torch) with sidecars, shared by the test suites.

A stride-4 convolution stands in for SCASeg and follows the artifact contract: a plain graph
("input" float32 NCHW -> "logits" (N,K,H/4,W/4)) and the fused variants (uint8 NHWC BGR "image"
in; Resize + ArgMax + Cast "labels" (N,H,W) out), static or with dynamic batch/size and a
(min, opt, max) profile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.meta import ModelMeta, TensorSpec, write_meta
from runtime.preprocess import Preprocess
from scenes.classes import DEMO_CLASSES, DEMO_PALETTE_RGB

SIZE = 64
PROFILE_SIZES = ((32, 32), (64, 64), (128, 128))  # (min, opt, max) HxW of dynamic models


def _weights(k: int) -> list:
    rng = np.random.default_rng(0)
    w = rng.normal(0.0, 0.2, (k, 3, 4, 4)).astype(np.float32)
    b = rng.normal(0.0, 0.1, (k,)).astype(np.float32)
    return [numpy_helper.from_array(w, "conv_w"), numpy_helper.from_array(b, "conv_b")]


def _fused_input_nodes(pp: Preprocess) -> tuple[list, list]:
    """uint8 (N,H,W,3) BGR "image" -> normalised (N,3,H,W) float32 "x", as runtime.preprocess."""
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


def _fused_output_nodes(labels_dtype: str) -> tuple[list, list]:
    """logits (N,K,H/4,W/4) -> labels (N,H,W): bilinear x4 (half-pixel), argmax, cast."""
    to = TensorProto.UINT8 if labels_dtype == "uint8" else TensorProto.INT32
    inits = [numpy_helper.from_array(np.array([1, 1, 4, 4], np.float32), "scales")]
    nodes = [
        helper.make_node(
            "Resize", ["logits", "", "scales"], ["logits_up"], mode="linear",
            coordinate_transformation_mode="half_pixel",
        ),
        helper.make_node("ArgMax", ["logits_up"], ["ids"], axis=1, keepdims=0),
        helper.make_node("Cast", ["ids"], ["labels"], to=to),
    ]  # fmt: skip
    return nodes, inits


def _classes(k: int) -> tuple[tuple, tuple]:
    if k <= len(DEMO_CLASSES):
        return DEMO_CLASSES[:k], DEMO_PALETTE_RGB[:k]
    names = tuple(f"class{i}" for i in range(k))
    return names, tuple((i * 37 % 256, i * 91 % 256, i * 53 % 256) for i in range(k))


def build_tiny_model(
    path: Path,
    *,
    fused_preprocess: bool = False,
    fused_argmax: bool = False,
    dynamic: bool = False,
    batches: tuple[int, int, int] = (1, 1, 2),
    labels_dtype: str = "uint8",
    num_classes: int = 4,
    precision: str = "fp32",
    engine: dict | None = None,
) -> Path:
    """Write a tiny ONNX model and its sidecar; returns the path.

    For a path that is not .onnx (an .engine), only placeholder bytes are written next to the
    sidecar: enough for code that reads sidecars, never a runnable engine.
    """
    k, s = num_classes, SIZE
    pp = Preprocess(s, s)
    n, h, w = ("batch", "height", "width") if dynamic else (1, s, s)
    h4, w4 = ("h4", "w4") if dynamic else (s // 4, s // 4)
    nodes, inits = [], _weights(k)
    if fused_preprocess:
        pre_nodes, pre_inits = _fused_input_nodes(pp)
        nodes, inits = nodes + pre_nodes, inits + pre_inits
        graph_in = helper.make_tensor_value_info("image", TensorProto.UINT8, [n, h, w, 3])
        in_spec = TensorSpec("image", "uint8", "NHWC", (n, h, w, 3))
    else:
        graph_in = helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, 3, h, w])
        in_spec = TensorSpec("input", "float32", "NCHW", (n, 3, h, w))
    if dynamic:
        profile = tuple(
            (b, hh, ww, 3) if fused_preprocess else (b, 3, hh, ww)
            for b, (hh, ww) in zip(batches, PROFILE_SIZES, strict=True)
        )
        in_spec = TensorSpec(in_spec.name, in_spec.dtype, in_spec.layout, in_spec.shape, profile)
    conv_in = "x" if fused_preprocess else "input"
    nodes.append(
        helper.make_node("Conv", [conv_in, "conv_w", "conv_b"], ["logits"], strides=[4, 4])
    )
    if fused_argmax:
        post_nodes, post_inits = _fused_output_nodes(labels_dtype)
        nodes, inits = nodes + post_nodes, inits + post_inits
        elem = TensorProto.UINT8 if labels_dtype == "uint8" else TensorProto.INT32
        graph_out = helper.make_tensor_value_info("labels", elem, [n, h, w])
        out_spec = TensorSpec("labels", labels_dtype, "NHW", (n, h, w))
    else:
        graph_out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [n, k, h4, w4])
        out_spec = TensorSpec("logits", "float32", "NCHW", (n, k, h4, w4))
    graph = helper.make_graph(nodes, "tiny_seg", [graph_in], [graph_out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime >= 1.14
    onnx.checker.check_model(model)
    if path.suffix == ".onnx":
        onnx.save(model, str(path))
    else:
        path.write_bytes(b"placeholder: not a TensorRT engine")
    names, palette = _classes(k)
    meta = ModelMeta(
        variant="tiny-test",
        precision=precision,
        class_names=names,
        palette_rgb=palette,
        input=in_spec,
        output=out_spec,
        output_kind="labels" if fused_argmax else "logits",
        output_stride=1 if fused_argmax else 4,
        preprocess=pp,
        fused_preprocess=fused_preprocess,
        fused_argmax=fused_argmax,
        engine=engine,
    )
    write_meta(path, meta)
    return path


def point_at_external_data(tensor: onnx.TensorProto, location: str) -> None:
    """Make `tensor` keep its (16 bytes of) data in external file `location`."""
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    del tensor.external_data[:]
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


# --- broken variants of the tiny model (what a backend must refuse as one line) --------------


def edited_tiny_model(path: Path, edit) -> Path:
    """The tiny model (and its sidecar) at `path`, with `edit(model)` applied to the graph; the
    sidecar keeps the original's hash, so only the graph is wrong."""
    path = build_tiny_model(path)
    model = onnx.load(str(path))
    edit(model)
    path.write_bytes(model.SerializeToString())
    return path


def custom_domain(model: onnx.ModelProto) -> None:
    model.graph.node[0].domain = "com.example.evil"
    model.opset_import.add(domain="com.example.evil", version=1)


def short_weight(model: onnx.ModelProto) -> None:
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:8]
