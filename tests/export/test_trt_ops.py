"""The TensorRT op table is per version: what every target parses, and what newer ones add."""

from __future__ import annotations

import onnx
import pytest

from export.trt_ops import (
    ADDED_AFTER_8_6,
    OPS_SINCE,
    TRT_ONNX_OPS,
    UnsupportedOpsError,
    check_trt_ops,
    supported_ops,
    unsupported_ops,
)


def _model(*ops: str) -> onnx.ModelProto:
    nodes = [onnx.helper.make_node(op, ["x"], [f"y{i}"]) for i, op in enumerate(ops)]
    return onnx.helper.make_model(onnx.helper.make_graph(nodes, "g", [], []))


def test_hardmax_is_not_an_every_target_op():
    """onnx-tensorrt's 8.6-GA operator table marks Hardmax unsupported; 10.0-GA supports it."""
    assert "Hardmax" not in TRT_ONNX_OPS and "Hardmax" not in supported_ops("8.6.1.6")
    assert "Hardmax" in supported_ops("10.3.0.30") and "Hardmax" in supported_ops((11, 4))
    with pytest.raises(UnsupportedOpsError, match="Hardmax x1"):
        check_trt_ops(_model("Relu", "Hardmax"))
    assert unsupported_ops(_model("Relu", "Hardmax"), "10.3.0") == {}


def test_every_target_ops_are_the_8_6_table_and_newer_ops_carry_their_version():
    assert supported_ops() == TRT_ONNX_OPS == supported_ops((8, 6))
    assert set(OPS_SINCE) == TRT_ONNX_OPS | set(ADDED_AFTER_8_6)
    assert all(since > (8, 6) for since in ADDED_AFTER_8_6.values())
    assert not TRT_ONNX_OPS & set(ADDED_AFTER_8_6)
    assert supported_ops("10.0.0") >= TRT_ONNX_OPS | {"Gelu", "Mish", "CastLike"}
