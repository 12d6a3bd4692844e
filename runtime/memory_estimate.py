"""How much memory a model's activations need at their peak, read from its ONNX graph, and a
check of that need (plus weights) against the memory the GPU has free.

The estimate is a liveness pass over the graph: every tensor's shape is inferred (ONNX shape
inference with data propagation, after the dynamic input dimensions are bound to the sizes asked
for), then the nodes are walked in graph order (ONNX keeps them topologically sorted). A tensor
is live from the step that produces it (graph inputs from the start) until the last node that
reads it has run; graph outputs stay live to the end. At each step the node's outputs and its
still-live inputs count together, and the peak is the largest such sum.

It models an executor that allocates every tensor separately and frees it as soon as it can.
Real runtimes differ both ways: TensorRT fuses layers and shares one arena between tensors whose
lifetimes do not overlap (less); Reshape/Squeeze outputs are views in most runtimes but count
here (less); kernels need scratch space (im2col, attention workspaces) and allocators round up
and cache freed blocks (more). So read it as the activation size to plan around, within a
factor of about two, not as a byte-exact prediction.

Initializers and Constant outputs are weights and are reported apart (`weights_bytes`). Shapes
that inference cannot pin down (data-dependent sizes, unbound dynamic inputs, custom operators)
are counted in `unknown_tensors` and named in `notes`, never silently as zero bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from runtime.deps import require
from runtime.errors import BudgetError, RunError, UserInputError

if TYPE_CHECKING:
    import onnx

MIB = 1 << 20
MAX_NODES = 100_000  # SCASeg-L exports to about 3,000 nodes; a graph 30x that is not one of ours
MAX_DIM = (1 << 31) - 1  # TensorRT's and most kernels' limit for one dimension
WARN_FRACTION = 0.8  # warn when the need takes more than this share of the free memory
# Initializers up to this many elements stay in the graph for shape inference: shape inputs
# (Reshape, Slice, Resize scales, Expand) are small, and data propagation reads their values.
_KEEP_VALUES = 1024
_FIXES = (
    "use a smaller input size, the grid strip attention (scaseg-export --strip-attention grid), "
    "an FP16 or INT8 build, or close other GPU processes"
)


class DeviceMemoryError(RunError):
    """The model's estimated memory need exceeds the memory the GPU has free (exit 1)."""


class DeviceMemoryWarning(UserWarning):
    """The model's estimated memory need leaves little of the GPU's free memory to spare."""


@dataclass(frozen=True)
class TensorSize:
    """One tensor: its name, its concrete shape and how many bytes it takes."""

    name: str
    shape: tuple[int, ...]
    bytes: int


@dataclass(frozen=True)
class MemoryEstimate:
    """The result of `estimate_peak_activation`; byte counts are exact for the shapes inferred.

    peak_node names the node ("name (OpType)") whose step reached the peak, None when the peak
    is the graph inputs alone. unknown_tensors counts activations whose size could not be
    inferred: each adds 0 to the peak, so a non-zero count makes the peak a lower bound.
    """

    peak_bytes: int
    peak_node: str | None
    largest_tensor: TensorSize | None
    weights_bytes: int
    unknown_tensors: int
    activation_tensors: int  # activations walked (graph inputs and node outputs)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # as bound
    notes: tuple[str, ...] = ()

    @property
    def peak_mb(self) -> float:
        """The peak in MiB (2**20 bytes), rounded to 0.1."""
        return round(self.peak_bytes / MIB, 1)

    @property
    def weights_mb(self) -> float:
        return round(self.weights_bytes / MIB, 1)

    def summary(self) -> str:
        """One line for a log or a report."""
        text = f"peak activations {self.peak_mb:,.1f} MB"
        if self.peak_node:
            text += f" at {self.peak_node}"
        if self.largest_tensor is not None:
            t = self.largest_tensor
            text += f"; largest tensor {t.name} {t.shape} {t.bytes / MIB:,.1f} MB"
        text += f"; weights {self.weights_mb:,.1f} MB"
        if self.unknown_tensors:
            text += f"; {self.unknown_tensors} tensor(s) of unknown size not counted"
        return text


def estimate_peak_activation(
    model: onnx.ModelProto,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
) -> MemoryEstimate:
    """Estimate the peak activation memory of `model` for the given input shapes.

    `input_shapes` maps graph input names to concrete shapes; it binds the dynamic dimensions
    (and must agree with the fixed ones). An unbound dynamic input leaves its tensors unknown
    (counted, and said in `notes`). UserInputError for a shape that cannot be bound, BudgetError
    for a graph of more than MAX_NODES nodes.
    """
    onnx = require("onnx", "to estimate a model's activation memory")
    graph = model.graph
    nodes = list(graph.node)
    notes: list[str] = []
    consumed = _consumers(nodes, notes)  # also enforces MAX_NODES, subgraphs included
    light, bound = _shape_model(onnx, model, input_shapes or {}, notes)
    sizes = _tensor_sizes(onnx, _infer(onnx, light, notes).graph)
    if not bound:  # the shapes the model stores hold only for the sizes it was saved with
        stored = _tensor_sizes(onnx, graph)
        sizes.update({n: v for n, v in stored.items() if sizes.get(n) is None})
    weights = _weight_names(graph)
    weights_bytes = _weights_bytes(onnx, graph, nodes, sizes)
    walk = _Walk(sizes)
    last = _last_uses(nodes, consumed, graph)
    for value in graph.input:
        if value.name not in weights:
            walk.add(value.name)
    walk.observe(None)
    walk.release([v.name for v in graph.input], last, -1)
    for index, node in enumerate(nodes):
        outputs = [name for name in node.output if name and name not in weights]
        for name in outputs:
            walk.add(name)
        walk.observe(f"{node.name or f'#{index}'} ({node.op_type})")
        walk.release([*consumed[index], *outputs], last, index)
    if walk.unknown:
        shown = ", ".join(sorted(walk.unknown)[:5]) + (" ..." if len(walk.unknown) > 5 else "")
        notes.append(
            f"{len(walk.unknown)} activation(s) of unknown size are not counted ({shown}); "
            "the peak is a lower bound"
        )
    return MemoryEstimate(
        peak_bytes=walk.peak,
        peak_node=walk.peak_node,
        largest_tensor=walk.largest,
        weights_bytes=weights_bytes,
        unknown_tensors=len(walk.unknown),
        activation_tensors=walk.count,
        input_shapes=bound,
        notes=tuple(notes),
    )


def estimate_for_file(
    path: str | os.PathLike, input_shapes: dict[str, tuple[int, ...]] | None = None
) -> MemoryEstimate:
    """`estimate_peak_activation` of the ONNX file at `path`, parsed by the project's guarded
    reader (runtime/onnx_guard.py: size budget first, MetaError for what is not an ONNX model).

    External-data files are never opened: a weight's size comes from its declared dimensions, so
    the file's external paths need no check here (the runtimes that do read them check them)."""
    from runtime.onnx_guard import _read_model

    return estimate_peak_activation(_read_model(Path(path)), input_shapes)


def check_device_memory(
    estimate_bytes: int, free_bytes: int, total_bytes: int, what: str, extra_bytes: int = 0
) -> str | None:
    """Judge a memory need against the GPU's free memory.

    The need is `estimate_bytes` (activations) plus `extra_bytes` (what else the caller knows
    will be allocated: weights, I/O buffers). Returns None when it fits with margin; a warning
    (numbers in MB of 2**20 bytes, and what to do) when it takes more than WARN_FRACTION of the
    free memory;
    raises DeviceMemoryError when it is more than the free memory. `what` names the work, e.g.
    "building model.fp32.onnx".
    """
    activations, extra = max(int(estimate_bytes), 0), max(int(extra_bytes), 0)
    need, free = activations + extra, max(int(free_bytes), 0)
    parts = f" ({_mb(activations)} activations + {_mb(extra)} weights and buffers)" if extra else ""
    numbers = (
        f"{what} needs about {_mb(need)} of GPU memory{parts}, and {_mb(free)} of the GPU's "
        f"{_mb(total_bytes)} are free"
    )
    if need > free:
        raise DeviceMemoryError(f"{numbers}: it will not fit; {_FIXES}")
    if need > WARN_FRACTION * free:
        return (
            f"{numbers}: that leaves under {100 - round(WARN_FRACTION * 100)}% to spare, and "
            f"the estimate is approximate; if it runs out of memory, {_FIXES}"
        )
    return None


def _mb(nbytes: int) -> str:
    value = nbytes / MIB
    return f"{value:,.1f} MB" if value < 10 else f"{value:,.0f} MB"


class _Walk:
    """The running state of the liveness walk: live tensors, their total and the peak so far."""

    def __init__(self, sizes: dict[str, TensorSize | None]) -> None:
        self.sizes = sizes
        self.live: dict[str, int] = {}
        self.total = 0
        self.peak = 0
        self.peak_node: str | None = None
        self.largest: TensorSize | None = None
        self.unknown: set[str] = set()
        self.count = 0

    def add(self, name: str) -> None:
        size = self.sizes.get(name)
        self.count += 1
        if size is None:
            self.unknown.add(name)
        elif self.largest is None or size.bytes > self.largest.bytes:
            self.largest = size
        nbytes = size.bytes if size is not None else 0
        self.total += nbytes - self.live.get(name, 0)  # a name produced twice replaces itself
        self.live[name] = nbytes

    def observe(self, node: str | None) -> None:
        """Record the live total after `node`'s outputs were added (None: the graph inputs)."""
        if self.total > self.peak:
            self.peak, self.peak_node = self.total, node

    def release(self, names: list[str], last: dict[str, int], step: int) -> None:
        """Free each of `names` whose last reader is `step` or earlier (or that none reads)."""
        for name in names:
            if name in self.live and last.get(name, step) <= step:
                self.total -= self.live.pop(name)


def _consumers(nodes: list, notes: list[str]) -> list[set[str]]:
    """For each node, the names it reads: its inputs, plus the outer names its subgraphs
    (If/Loop/Scan bodies) read, which keep those tensors live until the node has run."""
    total = len(nodes)
    _check_nodes(total)
    result: list[set[str]] = []
    with_subgraphs: list[str] = []
    for node in nodes:
        names = {name for name in node.input if name}
        stack = _subgraphs(node)
        if stack:
            with_subgraphs.append(node.op_type)
        while stack:
            graph = stack.pop()
            total += len(graph.node)
            _check_nodes(total)
            for inner in graph.node:
                names.update(name for name in inner.input if name)
                stack += _subgraphs(inner)
        result.append(names)
    if with_subgraphs:
        kinds = ", ".join(sorted(set(with_subgraphs)))
        notes.append(
            f"{len(with_subgraphs)} node(s) hold subgraphs ({kinds}): only their outputs are "
            "counted, not the activations inside them"
        )
    return result


def _subgraphs(node) -> list:
    """The graphs in `node`'s attributes (If branches, Loop/Scan bodies)."""
    graphs = []
    for attr in node.attribute:
        if attr.HasField("g"):
            graphs.append(attr.g)
        graphs.extend(attr.graphs)
    return graphs


def _check_nodes(count: int) -> None:
    if count > MAX_NODES:
        raise BudgetError(
            f"the ONNX graph has more than {MAX_NODES:,} nodes (subgraphs included); the memory "
            "estimate refuses graphs that large (SCASeg exports have a few thousand)"
        )


def _last_uses(nodes: list, consumed: list[set[str]], graph) -> dict[str, int]:
    """Tensor name -> index of the last node that reads it; graph outputs: past the last node."""
    last: dict[str, int] = {}
    for index, names in enumerate(consumed):
        for name in names:
            last[name] = index
    for value in graph.output:
        last[value.name] = len(nodes)
    return last


def _weight_names(graph) -> set[str]:
    names = {t.name for t in graph.initializer}
    names |= {s.values.name for s in graph.sparse_initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            names.update(name for name in node.output if name)
    return names


def _weights_bytes(onnx: ModuleType, graph, nodes: list, sizes: dict) -> int:
    """Bytes of the initializers (from their declared dims: external data is never read) and of
    the Constant nodes' values."""
    total = 0
    for tensor in graph.initializer:
        total += _nbytes(onnx, tensor.data_type, tuple(tensor.dims)) or 0
    for sparse in graph.sparse_initializer:
        for part in (sparse.values, sparse.indices):
            total += _nbytes(onnx, part.data_type, tuple(part.dims)) or 0
    for node in nodes:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for name in node.output:
                size = sizes.get(name)
                total += size.bytes if size is not None else 0
    return total


def _shape_model(onnx: ModuleType, model, shapes: dict, notes: list[str]):
    """A light copy of `model` for shape inference, its dynamic inputs bound to `shapes`, and
    without the model's stored intermediate shapes (value_info).

    Large initializers become typed graph inputs: inference needs their shapes, not their
    values, and copying gigabytes of weights into the inference call would cost time and memory.
    Returns (the copy, the shapes bound by input name)."""
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    graph, source = light.graph, model.graph
    graph.name = source.name
    graph.node.extend(source.node)
    graph.input.extend(source.input)
    graph.output.extend(source.output)
    # No value_info: shapes stored at export time would override the ones the bound inputs imply
    # (inference keeps a stored shape that disagrees with its own); they fill gaps afterwards.
    graph.sparse_initializer.extend(source.sparse_initializer)
    declared = {value.name for value in source.input}
    for tensor in source.initializer:
        external = tensor.data_location == onnx.TensorProto.EXTERNAL  # values not in memory
        if not external and _elements(tuple(tensor.dims)) <= _KEEP_VALUES:
            graph.initializer.append(tensor)
        elif tensor.name not in declared:
            graph.input.append(
                onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
            )
    initializers = {t.name for t in source.initializer}
    real_inputs = [v for v in graph.input if v.name in declared and v.name not in initializers]
    unknown = sorted(set(shapes) - {v.name for v in real_inputs})
    if unknown:
        names = ", ".join(repr(v.name) for v in real_inputs) or "none"
        notes.append(
            f"input_shapes names {unknown}, which are not graph inputs (these are {names})"
        )
    bound = {}
    for value in real_inputs:
        if value.name in shapes:
            bound[value.name] = _bind(value, shapes[value.name])
        else:
            _note_dynamic(value, notes)
    return light, bound


def _bind(value, shape) -> tuple[int, ...]:
    """Set the dims of graph input `value` to `shape`; UserInputError where they cannot be."""
    if not value.type.HasField("tensor_type"):
        raise UserInputError(f"input {value.name!r} is not a tensor; it takes no input_shapes")
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or any(isinstance(d, bool) or not isinstance(d, int) for d in dims):
        raise UserInputError(f"input_shapes[{value.name!r}] must be a tuple of ints, got {shape!r}")
    if any(not 0 < d <= MAX_DIM for d in dims):
        raise UserInputError(
            f"input_shapes[{value.name!r}] = {dims}: every dimension must be 1..{MAX_DIM:,}"
        )
    tensor_type = value.type.tensor_type
    if tensor_type.HasField("shape"):
        declared = tensor_type.shape.dim
        if len(declared) != len(dims):
            raise UserInputError(
                f"input {value.name!r} has {len(declared)} dimensions, but input_shapes gives "
                f"{len(dims)}: {dims}"
            )
        for axis, (dim, size) in enumerate(zip(declared, dims)):
            if dim.HasField("dim_value") and dim.dim_value != size:
                raise UserInputError(
                    f"input {value.name!r} has a fixed size {dim.dim_value} on axis {axis}, but "
                    f"input_shapes asks for {size}: {dims}"
                )
    tensor_type.shape.Clear()
    for size in dims:
        tensor_type.shape.dim.add().dim_value = size
    return dims


def _note_dynamic(value, notes: list[str]) -> None:
    dims = value.type.tensor_type.shape.dim
    free = [d.dim_param or "?" for d in dims if not d.HasField("dim_value")]
    if free or not value.type.tensor_type.HasField("shape"):
        notes.append(
            f"input {value.name!r} has dynamic dimensions ({', '.join(free) or 'unknown rank'}) "
            "that input_shapes does not bind; the tensors that depend on them are unknown"
        )


def _infer(onnx: ModuleType, light, notes: list[str]):
    """Shape inference with data propagation; on failure the shapes stored in the model."""
    errors = (onnx.shape_inference.InferenceError, onnx.checker.ValidationError)
    try:
        return onnx.shape_inference.infer_shapes(
            light, check_type=False, strict_mode=False, data_prop=True
        )
    except (*errors, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        notes.append(f"shape inference failed ({first}); only the shapes stored in the model count")
        return light


def _tensor_sizes(onnx: ModuleType, graph) -> dict[str, TensorSize | None]:
    """Name -> TensorSize for every tensor with a known type and concrete shape, else None."""
    sizes: dict[str, TensorSize | None] = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        if not value.type.HasField("tensor_type"):
            sizes.setdefault(value.name, None)  # sequences, maps, optionals
            continue
        tensor_type = value.type.tensor_type
        shape = None
        if tensor_type.HasField("shape"):
            dims = tensor_type.shape.dim
            if all(d.HasField("dim_value") and d.dim_value >= 0 for d in dims):
                shape = tuple(int(d.dim_value) for d in dims)
        nbytes = _nbytes(onnx, tensor_type.elem_type, shape) if shape is not None else None
        size = TensorSize(value.name, shape, nbytes) if nbytes is not None else None
        if sizes.get(value.name) is None:
            sizes[value.name] = size
    return sizes


def _elements(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= max(int(dim), 0)
    return count


def _nbytes(onnx: ModuleType, elem_type: int, shape: tuple[int, ...] | None) -> int | None:
    """Bytes of a dense tensor of `elem_type` and `shape`; None for an unknown or unsized type
    (strings, undefined). 4-bit types pack two elements per byte."""
    if shape is None or not elem_type:
        return None
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
    except (KeyError, TypeError, ValueError):
        return None
    if dtype.kind == "O":  # STRING: variable length
        return None
    count = _elements(shape)
    four_bit = {getattr(onnx.TensorProto, n, -1) for n in ("INT4", "UINT4", "FLOAT4E2M1")}
    if elem_type in four_bit:
        return (count + 1) // 2
    return count * dtype.itemsize
