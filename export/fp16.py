"""FP32 ONNX -> FP16 ONNX with numerically fragile nodes kept in FP32 (explicit Casts around them).

LayerNormalization and Softmax overflow or lose their reductions in float16 (segmentation maps
collapse to one class on TensorRT 10.3), so they, and any stand-alone norm arithmetic
(ReduceMean/Pow/Sqrt), stay float32. Graph inputs and outputs stay float32 too (keep_io_types), so
the runtime feeds every precision the same tensors. With the precision explicit in the graph,
TensorRT >= 10 builds it strongly typed; older TensorRT gets FP16 + per-layer FP32 constraints
from the list of kept nodes recorded in the sidecar.
"""

from __future__ import annotations

import warnings
from collections import Counter

import onnx

FRAGILE_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt", "ReduceSum")
# Ops whose float16 form TensorRT or ONNX Runtime handle badly (scales/ranges must stay float32).
# Never "Cast": onnxconverter-common 1.16 loops forever with Cast in the block list.
KEEP_FLOAT_OPS = ("Resize", "Range", "TopK", "CumSum", "Min", "Max", "Upsample", "ArgMax")


def convert_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    """Return (fp16 model, names of nodes kept in float32 because they are numerically fragile)."""
    from onnxconverter_common import float16

    model = unshare_initializers(model)
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FRAGILE_OPS) | set(KEEP_FLOAT_OPS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "values truncated to float16 range" for tiny weights
        converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    _fix_cast_targets(converted)
    _restore_float_outputs(model, converted)
    kept = tuple(n.name for n in converted.graph.node if n.op_type in FRAGILE_OPS)
    return converted, kept


def unshare_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node its own copy of an initializer that several nodes share.

    The simplifiers deduplicate identical initializers (zero biases of a fresh model, LayerNorm
    ones), and onnxconverter-common 1.16 then keeps a shared initializer float32 for a blocked
    node while converting its other user to float16: "Type parameter (T) of Conv bound to
    different types". Copies cost a few bytes and make each node's dtype independent.
    """
    model = _copy(model)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    uses = Counter(name for node in graph.node for name in node.input if name in inits)
    seen: Counter = Counter()
    for node in graph.node:
        for k, name in enumerate(node.input):
            if uses.get(name, 0) < 2:
                continue
            seen[name] += 1
            if seen[name] == 1:
                continue  # the first user keeps the original
            clone = onnx.TensorProto()
            clone.CopyFrom(inits[name])
            clone.name = f"{name}__use{seen[name]}"
            graph.initializer.append(clone)
            node.input[k] = clone.name
    return model


def _fix_cast_targets(model: onnx.ModelProto) -> None:
    """Make each Cast's "to" match the float16 type the converter gave its output.

    onnxconverter-common 1.16 retypes the output of the fused-preprocessing Cast (uint8 -> float)
    to float16 in value_info but leaves the node's "to" attribute at FLOAT: ONNX Runtime then
    refuses the graph ("Type (tensor(float16)) of output arg ... does not match").
    """
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    for node in model.graph.node:
        if node.op_type != "Cast" or types.get(node.output[0]) != onnx.TensorProto.FLOAT16:
            continue
        for attr in node.attribute:
            if attr.name == "to" and attr.i == onnx.TensorProto.FLOAT:
                attr.i = onnx.TensorProto.FLOAT16


def _restore_float_outputs(original: onnx.ModelProto, converted: onnx.ModelProto) -> None:
    """Keep float32 graph outputs float32 even when a kept-FP32 node produces them.

    With keep_io_types, onnxconverter-common 1.16 still ends a graph whose last node is blocked
    (Softmax, ArgMax's input...) with a Cast to float16 and declares the output float16.
    """
    wanted = {o.name: o.type.tensor_type.elem_type for o in original.graph.output}
    producers = {out: node for node in converted.graph.node for out in node.output}
    for output in converted.graph.output:
        tensor_type = output.type.tensor_type
        if wanted.get(output.name) != onnx.TensorProto.FLOAT:
            continue
        if tensor_type.elem_type != onnx.TensorProto.FLOAT16:
            continue
        node = producers[output.name]
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = onnx.TensorProto.FLOAT
        else:
            inner = f"{output.name}__fp16"
            node.output[list(node.output).index(output.name)] = inner
            cast = onnx.helper.make_node(
                "Cast",
                [inner],
                [output.name],
                to=onnx.TensorProto.FLOAT,
                name=f"{output.name}__to_fp32",
            )
            converted.graph.node.append(cast)
        tensor_type.elem_type = onnx.TensorProto.FLOAT


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out
