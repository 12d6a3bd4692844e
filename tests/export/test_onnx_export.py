"""Export: names, shapes, fused pre/post, dynamic shapes vs PyTorch, and the TensorRT op set."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from calibration.ranges import CalibrationSettings, compute_ranges
from export.fp16 import convert_fp16
from export.int8.quantize import quantize_int8
from export.onnx_export import ExportOptions, ShapeRange, export_onnx
from export.ort_session import cpu_session
from export.simplify import simplify_model
from export.trt_ops import TRT_ONNX_OPS, UnsupportedOpsError, check_trt_ops, op_counts
from runtime.preprocess import Preprocess, logits_to_labels, preprocess, preprocess_uint8
from scenes import render_scene

PP = Preprocess(64, 64)


def _export(model, **kw):
    options = ExportOptions(64, 64, **kw)
    data, io_spec = export_onnx(model, PP, options)
    shapes = (
        [tuple(s) for s in io_spec.input.profile]
        if io_spec.input.profile
        else [io_spec.input.shape]
    )
    return simplify_model(onnx.load_from_string(data), io_spec, shapes).model, io_spec


def test_static_export_names_shapes_and_matches_pytorch(tiny_model):
    model, io_spec = _export(tiny_model)
    assert (io_spec.input.name, io_spec.input.shape) == ("input", (1, 3, 64, 64))
    assert (io_spec.output.name, io_spec.output.shape) == ("logits", (1, 8, 16, 16))
    assert io_spec.output_kind == "logits" and io_spec.output_stride == 4
    assert model.opset_import[0].version >= 17
    assert "LayerNormalization" in op_counts(model)  # native, not decomposed
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    y = cpu_session(model.SerializeToString()).run(None, {"input": x})[0]
    with torch.no_grad():
        ref = tiny_model(torch.from_numpy(x)).numpy()
    assert np.abs(y - ref).max() <= 1e-4


@pytest.mark.slow
def test_dynamic_export_matches_pytorch_at_three_sizes_and_batch_2(tiny_model):
    dyn = ShapeRange(batch=(1, 1, 2), height=(64, 64, 128), width=(64, 64, 160))
    model, io_spec = _export(tiny_model, dynamic=dyn)
    assert io_spec.input.shape == ("batch", 3, "height", "width")
    assert io_spec.input.profile == ((1, 3, 64, 64), (1, 3, 64, 64), (2, 3, 128, 160))
    session = cpu_session(model.SerializeToString())
    rng = np.random.default_rng(1)
    for shape in [(1, 3, 64, 64), (1, 3, 96, 160), (1, 3, 128, 64), (2, 3, 96, 128)]:
        x = rng.standard_normal(shape).astype(np.float32)
        y = session.run(None, {"input": x})[0]
        with torch.no_grad():
            ref = tiny_model(torch.from_numpy(x)).numpy()
        assert y.shape == ref.shape
        assert np.abs(y - ref).max() <= 1e-4, shape


@pytest.mark.slow
def test_fused_preprocess_and_argmax_match_runtime_path(tiny_model):
    model, io_spec = _export(tiny_model, fuse_preprocess=True, fuse_argmax=True)
    assert (io_spec.input.name, io_spec.input.dtype, io_spec.input.layout) == (
        "image",
        "uint8",
        "NHWC",
    )
    assert (io_spec.output.name, io_spec.output.dtype, io_spec.output.shape) == (
        "labels",
        "int32",
        (1, 64, 64),
    )
    assert io_spec.output_kind == "labels" and io_spec.output_stride == 1
    session = cpu_session(model.SerializeToString())
    frame, _ = render_scene(3_000_500, 64, 64)
    labels = session.run(None, {"image": preprocess_uint8(frame, PP)})[0][0]
    with torch.no_grad():
        logits = tiny_model(torch.from_numpy(preprocess(frame, PP)))[0].numpy()
    ref = logits_to_labels(logits, PP)
    assert labels.dtype == np.int32
    assert np.mean(labels == ref) >= 0.999  # bilinear x4 + argmax: the same computation


def test_sizes_must_be_multiples_of_32():
    with pytest.raises(ValueError, match="nearest valid size"):
        ExportOptions(100, 64)


def _variants(tiny_model, fused: bool, tmp_path):
    model, io_spec = _export(tiny_model, fuse_preprocess=fused, fuse_argmax=fused)
    fp32 = tmp_path / "m.fp32.onnx"
    onnx.save(model, str(fp32))
    fp16, _ = convert_fp16(model)
    rng = np.random.default_rng(0)
    if fused:
        inputs = [rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8) for _ in range(2)]
    else:
        inputs = [rng.standard_normal((1, 3, 64, 64)).astype(np.float32) for _ in range(2)]
    ranges = compute_ranges(fp32, io_spec.input.name, inputs, CalibrationSettings("minmax"))
    quantize_int8(fp32, tmp_path / "m.int8.onnx", ranges, "minmax")
    return {"fp32": model, "fp16": fp16, "int8": onnx.load(str(tmp_path / "m.int8.onnx"))}


@pytest.mark.slow
@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
def test_every_exported_variant_uses_only_tensorrt_ops(tiny_model, fused, tmp_path):
    for precision, model in _variants(tiny_model, fused, tmp_path).items():
        ops = op_counts(model)
        outside = sorted(set(ops) - TRT_ONNX_OPS)
        assert not outside, (
            f"{precision} ({'fused' if fused else 'plain'}) ops outside TensorRT's set: {outside}; all ops: {dict(ops)}"
        )
        if precision == "int8":
            assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0


def test_op_check_names_unsupported_ops():
    node = onnx.helper.make_node("Gelu", ["x"], ["y"])
    ms = onnx.helper.make_node("FusedConv", ["y"], ["z"], domain="com.microsoft")
    graph = onnx.helper.make_graph([node, ms], "g", [], [])
    with pytest.raises(UnsupportedOpsError, match=r"Gelu x1, com\.microsoft::FusedConv x1"):
        check_trt_ops(onnx.helper.make_model(graph))
