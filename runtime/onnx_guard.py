"""Refuse ONNX files whose weights point outside their own folder, before anything loads them.

An ONNX tensor may keep its bytes in an "external data" file named by a path inside the model.
A model received from elsewhere could name `../../home/user/.ssh/id_rsa` or `/etc/shadow` and
have a runtime read (and, through the outputs, leak) any file the process can open. ONNX Runtime
checks these paths itself only from 1.24.1 (initializers) and 1.27.0 (sparse initializers); the
releases Python 3.10 and JetPack get, TensorRT's parser and OpenVINO's reader do not all check
them, so the check is ours and runs whatever is installed.

The model is read with the `onnx` package's protobuf classes, the same parser family the
runtimes use, so a file is seen here as they see it: a hand-rolled reader disagreed with them on
legal protobuf (unknown group fields) and on location bytes that are not UTF-8. Every tensor is
visited: initializers, sparse initializers, node attributes (t, tensors, sparse_tensor(s)),
nested graphs (If/Loop/Scan bodies, g and graphs) at any depth up to the `metadata_depth` budget,
training graphs and local functions. What cannot be parsed is refused, never waved through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from runtime.budgets import check
from runtime.deps import require
from runtime.meta import MetaError
from runtime.text import printable

# protobuf cannot hold a message of 2 GiB or more: larger models must use external data.
_PROTOBUF_LIMIT = (2 << 30) - 1
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
# ONNX Runtime reads an external tensor at this "location" from a raw memory address given as
# the offset; releases before 1.27 accepted it from any model file.
_ORT_MEMORY_MARKER = b"*/_ORT_MEM_ADDR_/*"


def _read_model(path: Path):
    """The ModelProto, parsed after its size is checked; MetaError for what cannot be parsed."""
    onnx = require("onnx", "to check an ONNX model before loading it")
    from google.protobuf.message import DecodeError

    size = path.stat().st_size
    check("onnx_bytes", size, f"ONNX model {path}")
    if size == 0:
        raise MetaError(f"cannot load {path}: the file is empty; re-export the model")
    if size > _PROTOBUF_LIMIT:
        raise MetaError(
            f"cannot load {path}: {size:,} bytes is over protobuf's 2 GiB message limit, so it is "
            "not a valid ONNX model; save the weights as external data (onnx.save(..., "
            "save_as_external_data=True)) and keep the data file beside the model"
        )
    model = onnx.ModelProto()
    try:
        model.ParseFromString(path.read_bytes())
    except DecodeError as err:
        raise MetaError(
            f"cannot load {path}: not a valid ONNX model (protobuf: {err}); is it truncated or "
            "mislabelled? Re-export it with scaseg-export"
        ) from err
    if not model.HasField("graph"):
        raise MetaError(
            f"cannot load {path}: not a valid ONNX model (it holds no graph); is it mislabelled? "
            "Re-export it with scaseg-export"
        )
    return model


def _attribute_tensors(attr, depth: int, path: Path) -> Iterator:
    if attr.HasField("t"):
        yield attr.t
    yield from attr.tensors
    for sparse in (
        *([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []),
        *attr.sparse_tensors,
    ):
        yield sparse.values
        yield sparse.indices
    for graph in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
        yield from _graph_tensors(graph, depth + 1, path)


def _node_tensors(nodes, depth: int, path: Path) -> Iterator:
    for node in nodes:
        for attr in node.attribute:
            yield from _attribute_tensors(attr, depth, path)


def _graph_tensors(graph, depth: int, path: Path) -> Iterator:
    """Every TensorProto of `graph` and the graphs nested in its nodes; `depth` counts from 1."""
    check("metadata_depth", depth, f"ONNX model {path}: graphs nested {depth} deep")
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _node_tensors(graph.node, depth, path)


def _model_tensors(model, path: Path) -> Iterator:
    yield from _graph_tensors(model.graph, 1, path)
    for info in model.training_info:
        yield from _graph_tensors(info.initialization, 1, path)
        yield from _graph_tensors(info.algorithm, 1, path)
    for function in model.functions:
        yield from _node_tensors(function.node, 1, path)
        for attr in function.attribute_proto:
            yield from _attribute_tensors(attr, 1, path)


def _raw(value: str | bytes) -> bytes:
    """A protobuf string field's bytes: upb hands proto2 strings that are not UTF-8 over as bytes."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def external_data(path: str | os.PathLike) -> list[tuple[str, bytes]]:
    """(tensor name, location bytes) for every external-data "location" entry in the model, and
    (name, b"") for an external tensor that names none. Raises MetaError/BudgetError for a file
    that is too large, nested too deep, or not a parseable ONNX model."""
    path = Path(path)
    found: list[tuple[str, bytes]] = []
    for tensor in _model_tensors(_read_model(path), path):
        locations = [_raw(e.value) for e in tensor.external_data if _raw(e.key) == b"location"]
        if tensor.data_location == _EXTERNAL and not locations:
            locations = [b""]
        name = _raw(tensor.name).decode("utf-8", "backslashreplace")
        found += [(name, location) for location in locations]
    return found


def _unsafe_reason(raw: bytes, folder: bytes, allowed: tuple[bytes, ...]) -> str | None:
    """Why the runtime must not open `raw` (relative to `folder`), or None. Judged on the bytes a
    runtime passes to open(): nothing is decoded or normalised before the checks."""
    if not raw:
        return "names no file"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8 (ONNX stores text as UTF-8; a runtime would open other bytes)"
    if b"\0" in raw:
        return "holds a NUL byte"
    if _ORT_MEMORY_MARKER in raw:
        return "is ONNX Runtime's in-memory marker (it reads raw process memory, not a file)"
    if b"\\" in raw:
        return "holds a backslash (a Windows path separator, which can climb out there)"
    if raw[1:2] == b":" and raw[:1].isalpha():
        return "starts with a drive letter"
    if raw.startswith(b"/"):
        return "is an absolute path"
    if b".." in raw.split(b"/"):
        return "climbs out with '..'"
    target = os.path.realpath(os.path.join(folder, raw))
    if not any(os.path.commonpath([root, target]) == root for root in allowed):
        return f"resolves to {_text(target)}, outside {_text(allowed[0])} (a symlink?)"
    return None


def _text(raw: bytes) -> str:
    return printable(os.fsdecode(raw), markup=False)


def check_external_data(path: str | os.PathLike) -> list[str]:
    """Raise MetaError unless every external-data file stays inside the model's own folder, exists,
    and the model with its data fits the `onnx_bytes` budget; BudgetError or MetaError for a file
    that cannot be checked (too large, nested too deep, not an ONNX model).

    Returns the external files the model uses (empty for the usual single-file model).
    """
    path = Path(path)
    folder = os.fsencode(os.path.abspath(path.parent))
    # Like ONNX Runtime: data may also sit beside the file a model symlink points to (a
    # Hugging Face cache links every file of a snapshot into one blobs folder).
    allowed = (os.path.realpath(folder), os.fsencode(os.path.dirname(os.path.realpath(path))))
    files: dict[bytes, int] = {}
    for tensor, raw in external_data(path):
        where = f"tensor {printable(tensor, markup=False)!r} keeps its weights in {_text(raw)!r}"
        reason = _unsafe_reason(raw, folder, allowed)
        if reason:
            raise MetaError(
                f"refusing to load {path}: {where}, which {reason}; external data must sit in "
                "the model's own folder (re-export the model, or move its data file beside it "
                "and re-save it)"
            )
        target = os.path.join(folder, raw)
        if not os.path.isfile(target):  # a FIFO or device would block or never end
            what = "is not a regular file" if os.path.lexists(target) else "is missing"
            raise MetaError(
                f"cannot load {path}: {where}, which {what} in {path.parent}; copy the data "
                "file beside the model"
            )
        files.setdefault(raw, os.path.getsize(target))
    total = path.stat().st_size + sum(files.values())
    check("onnx_bytes", total, f"ONNX model {path} with its external data")
    return [os.fsdecode(raw) for raw in files]
