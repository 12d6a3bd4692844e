"""FP16 conversion: fragile nodes stay FP32 and are listed; I/O stays float32."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from export.fp16 import FRAGILE_OPS, convert_fp16, unshare_initializers
from export.ort_session import cpu_session


def _model():
    """x -> Conv(w, b) -> LayerNormalization(scale, b) -> Softmax; b shared by Conv and LN (as
    the simplifiers leave zero biases), the case that broke onnxconverter-common."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4, 1, 1], np.eye(4).ravel().tolist())
    b = helper.make_tensor("b", TensorProto.FLOAT, [4], [0.0] * 4)
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [4], [1.0] * 4)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
        helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1], name="tr"),
        helper.make_node("LayerNormalization", ["t", "scale", "b"], ["n"], axis=-1, name="ln"),
        helper.make_node("Softmax", ["n"], ["y"], axis=-1, name="sm"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 4])],
        [w, b, scale],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_fragile_nodes_stay_fp32_and_are_listed():
    fp16, kept = convert_fp16(_model())
    assert set(kept) == {"ln", "sm"}
    assert {"LayerNormalization", "Softmax"} <= set(FRAGILE_OPS)
    conv_w = next(i for i in fp16.graph.initializer if i.name == "w")
    assert conv_w.data_type == TensorProto.FLOAT16
    assert fp16.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert fp16.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    a = cpu_session(_model().SerializeToString()).run(None, {"x": x})[0]
    b = cpu_session(fp16.SerializeToString()).run(None, {"x": x})[0]
    assert b.dtype == np.float32 and np.abs(a - b).max() < 1e-2


def test_shared_initializers_are_copied_per_node():
    model = unshare_initializers(_model())
    inputs = [name for n in model.graph.node for name in n.input]
    assert inputs.count("b") == 1 and any(name.startswith("b__use") for name in inputs)
    onnx.checker.check_model(model)
