"""Tiny real ONNX models (built with onnx.helper, no torch) with sidecars, and tiny videos.

The models follow the artifact contract: a plain graph ("input" float32 NCHW -> "logits" at
stride 4) and the fused variants (uint8 NHWC BGR "image" input; Resize+ArgMax+Cast "labels"
output), static or dynamic. A stride-4 convolution stands in for SCASeg.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.classes import DEMO_CLASSES, DEMO_PALETTE_RGB
from runtime.meta import ModelMeta, TensorSpec, write_meta
from runtime.preprocess import Preprocess

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SIZE = 64
NUM_CLASSES = 4
DYNAMIC_PROFILE = ((1, 3, 32, 32), (1, 3, 64, 64), (2, 3, 128, 128))


def _weights(k: int) -> list:
    rng = np.random.default_rng(0)
    w = rng.normal(0.0, 0.2, (k, 3, 4, 4)).astype(np.float32)
    b = rng.normal(0.0, 0.1, (k,)).astype(np.float32)
    return [numpy_helper.from_array(w, "conv_w"), numpy_helper.from_array(b, "conv_b")]


def _fused_input_nodes(pp: Preprocess) -> tuple[list, list]:
    """uint8 (N,H,W,3) BGR "image" -> normalised (N,3,H,W) float32 "x", as runtime.preprocess."""
    mean = np.asarray(pp.mean, np.float32)
    inv_std = (1.0 / np.asarray(pp.std, np.float32)).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array([2, 1, 0], np.int64), "bgr_to_rgb"),
        numpy_helper.from_array(mean, "mean"),
        numpy_helper.from_array(inv_std, "inv_std"),
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


def build_model(
    path: Path,
    *,
    fused_preprocess: bool = False,
    fused_argmax: bool = False,
    dynamic: bool = False,
    labels_dtype: str = "uint8",
    num_classes: int = NUM_CLASSES,
    precision: str = "fp32",
    engine: dict | None = None,
) -> Path:
    """Write a tiny ONNX model and its sidecar; returns the model path."""
    k, s = num_classes, SIZE
    pp = Preprocess(s, s)
    n, h, w = ("batch", "height", "width") if dynamic else (1, s, s)
    h4, w4 = ("h4", "w4") if dynamic else (s // 4, s // 4)
    nodes, inits = [], _weights(k)
    if fused_preprocess:
        pre_nodes, pre_inits = _fused_input_nodes(pp)
        nodes += pre_nodes
        inits += pre_inits
        graph_in = helper.make_tensor_value_info("image", TensorProto.UINT8, [n, h, w, 3])
        in_spec = TensorSpec("image", "uint8", "NHWC", (n, h, w, 3))
        conv_in = "x"
    else:
        graph_in = helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, 3, h, w])
        in_spec = TensorSpec("input", "float32", "NCHW", (n, 3, h, w))
        conv_in = "input"
    if dynamic:
        profile = DYNAMIC_PROFILE
        if fused_preprocess:
            profile = tuple((b, hh, ww, 3) for b, _, hh, ww in DYNAMIC_PROFILE)
        in_spec = TensorSpec(in_spec.name, in_spec.dtype, in_spec.layout, in_spec.shape, profile)
    nodes.append(
        helper.make_node("Conv", [conv_in, "conv_w", "conv_b"], ["logits"], strides=[4, 4])
    )
    if fused_argmax:
        post_nodes, post_inits = _fused_output_nodes(labels_dtype)
        nodes += post_nodes
        inits += post_inits
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
    onnx.save(model, str(path))
    meta = ModelMeta(
        variant="tiny-test",
        precision=precision,
        class_names=DEMO_CLASSES[:k],
        palette_rgb=DEMO_PALETTE_RGB[:k],
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


@pytest.fixture(scope="session")
def make_model():
    """build_model(path, fused_preprocess=..., fused_argmax=..., dynamic=..., ...) -> path."""
    return build_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def plain_model(model_dir) -> Path:
    return build_model(model_dir / "tiny.fp32.onnx")


@pytest.fixture(scope="session")
def fused_model(model_dir) -> Path:
    return build_model(model_dir / "tiny_fused.fp32.onnx", fused_preprocess=True, fused_argmax=True)


def write_video(
    path: Path, num_frames: int = 10, size_wh: tuple[int, int] = (80, 60), fps: float = 25.0
) -> Path:
    """A small MJPG/mp4v video of moving colour blocks (fast to write and decode)."""
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size_wh)
    assert writer.isOpened()
    w, h = size_wh
    for i in range(num_frames):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, :] = (40, 80, 120)
        x = (i * 5) % max(w - 20, 1)
        frame[h // 4 : h // 2, x : x + 20] = (200, 30, 30)
        frame[h // 2 :, :] = (90, 90, 90)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def small_video(tmp_path) -> Path:
    return write_video(tmp_path / "clip.mp4")


@pytest.fixture(scope="session")
def make_video():
    """write_video(path, num_frames=10, size_wh=(80, 60), fps=25.0) -> path."""
    return write_video


@pytest.fixture(scope="session")
def decoded_frames():
    """count_frames(path) -> (frames that decode, (width, height))."""
    return count_frames


def count_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """Frames actually decodable (not the container's claim) and (width, height)."""
    cap = cv2.VideoCapture(str(path))
    n, size = 0, (0, 0)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        size = (frame.shape[1], frame.shape[0])
    cap.release()
    return n, size
