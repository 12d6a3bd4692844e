"""Refuse ONNX files whose weights point outside their own folder, before anything loads them.

An ONNX tensor may keep its bytes in an "external data" file named by a path inside the model.
A model received from elsewhere could name `../../home/user/.ssh/id_rsa` or `/etc/shadow` and
have a runtime read (and, through the outputs, leak) any file the process can open. Recent
ONNX Runtime and onnx releases refuse such paths, older ones (as shipped on some JetPacks) and
TensorRT's parser do not all do so, so the check is ours and runs whatever is installed.

The file is scanned with a small protobuf reader (no `onnx` package at run time): every tensor
in the graph, in nested graphs (If/Loop/Scan bodies), in attributes, in sparse tensors, in
training graphs and in local functions is visited. Weight bytes are skipped, never copied.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from runtime.meta import MetaError

# Field numbers from onnx.proto.
_MODEL_GRAPH, _MODEL_TRAINING_INFO, _MODEL_FUNCTIONS = 7, 20, 25
_TRAINING_GRAPHS = (1, 2)  # initialization, algorithm
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_NODE_ATTRIBUTE = 5
_ATTR_TENSOR, _ATTR_GRAPH, _ATTR_TENSORS, _ATTR_GRAPHS = 5, 6, 10, 11
_ATTR_SPARSE, _ATTR_SPARSES = 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_FUNCTION_NODE, _FUNCTION_ATTRIBUTE_PROTO = 7, 11
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_MAX_DEPTH = 64  # nested graphs deeper than this are not a model anyone exported


class _MalformedError(ValueError):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _MalformedError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) for one message; value is an int or a memoryview."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 5:
            value, pos = None, pos + 4
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value = buf[pos : pos + length]
            pos += length
        else:
            raise _MalformedError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise _MalformedError("message runs past its end")
        yield number, wire, value


def _tensor(buf: memoryview) -> tuple[str, str] | None:
    """(tensor name, external location) if the tensor keeps its data outside the model."""
    name, location, external = "", None, False
    for number, wire, value in _fields(buf):
        if wire == 2 and number == _TENSOR_NAME:
            name = bytes(value).decode("utf-8", "replace")
        elif wire == 0 and number == _TENSOR_DATA_LOCATION:
            external = value == _EXTERNAL
        elif wire == 2 and number == _TENSOR_EXTERNAL_DATA:
            entry = {n: bytes(v).decode("utf-8", "replace") for n, w, v in _fields(value) if w == 2}
            if entry.get(_ENTRY_KEY) == "location":
                location = entry.get(_ENTRY_VALUE, "")
    if external or location is not None:
        return name, location or ""
    return None


def _sparse(buf: memoryview) -> Iterator[tuple[str, str]]:
    for number, wire, value in _fields(buf):
        if wire == 2 and number in (_SPARSE_VALUES, _SPARSE_INDICES) and (hit := _tensor(value)):
            yield hit


def _attribute(buf: memoryview, depth: int) -> Iterator[tuple[str, str]]:
    for number, wire, value in _fields(buf):
        if wire != 2:
            continue
        if number in (_ATTR_TENSOR, _ATTR_TENSORS) and (hit := _tensor(value)):
            yield hit
        elif number in (_ATTR_GRAPH, _ATTR_GRAPHS):
            yield from _graph(value, depth + 1)
        elif number in (_ATTR_SPARSE, _ATTR_SPARSES):
            yield from _sparse(value)


def _nodes_attributes(buf: memoryview, depth: int) -> Iterator[tuple[str, str]]:
    for number, wire, value in _fields(buf):
        if wire == 2 and number == _NODE_ATTRIBUTE:
            yield from _attribute(value, depth)


def _graph(buf: memoryview, depth: int) -> Iterator[tuple[str, str]]:
    if depth > _MAX_DEPTH:
        raise _MalformedError(f"graphs nested more than {_MAX_DEPTH} deep")
    for number, wire, value in _fields(buf):
        if wire != 2:
            continue
        if number == _GRAPH_INITIALIZER and (hit := _tensor(value)):
            yield hit
        elif number == _GRAPH_SPARSE_INITIALIZER:
            yield from _sparse(value)
        elif number == _GRAPH_NODE:
            yield from _nodes_attributes(value, depth)


def _function(buf: memoryview, depth: int) -> Iterator[tuple[str, str]]:
    for number, wire, value in _fields(buf):
        if wire == 2 and number == _FUNCTION_NODE:
            yield from _nodes_attributes(value, depth)
        elif wire == 2 and number == _FUNCTION_ATTRIBUTE_PROTO:
            yield from _attribute(value, depth)


def _model(buf: memoryview) -> Iterator[tuple[str, str]]:
    for number, wire, value in _fields(buf):
        if wire != 2:
            continue
        if number == _MODEL_GRAPH:
            yield from _graph(value, 0)
        elif number == _MODEL_FUNCTIONS:
            yield from _function(value, 0)
        elif number == _MODEL_TRAINING_INFO:
            for inner, inner_wire, graph in _fields(value):
                if inner_wire == 2 and inner in _TRAINING_GRAPHS:
                    yield from _graph(graph, 0)


def external_data(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(tensor name, location) of every tensor in the ONNX file that keeps its bytes elsewhere.

    Raises ValueError when the bytes are not a well-formed protobuf message.
    """
    # Plain bytes rather than mmap: the slices held by the parser's frames (in a traceback too)
    # would keep a mapping from closing.
    view = memoryview(Path(path).read_bytes())
    try:
        return list(_model(view))
    except _MalformedError as err:
        raise ValueError(str(err)) from None


def _unsafe_reason(location: str, folder: Path) -> str | None:
    if not location:
        return "names no file"
    if "\0" in location:
        return "holds a NUL byte"
    pure = Path(location)
    if (
        pure.is_absolute()
        or location.startswith(("/", "\\"))
        or (len(location) > 1 and location[1] == ":")
    ):
        return "is an absolute path"
    if ".." in pure.parts or ".." in location.replace("\\", "/").split("/"):
        return "climbs out with '..'"
    real_folder = folder.resolve()
    target = (folder / pure).resolve()
    if real_folder != target and real_folder not in target.parents:
        return f"resolves to {target}, outside {real_folder} (a symlink?)"
    return None


def check_external_data(path: str | os.PathLike) -> list[str]:
    """Raise MetaError unless every external-data file stays inside the model's own folder.

    Returns the external files the model uses (empty for the usual single-file model). A file that
    is not a well-formed protobuf is left for the ONNX loader to reject with its own message.
    """
    path = Path(path)
    try:
        found = external_data(path)
    except ValueError:
        return []
    folder = path.parent if str(path.parent) else Path(".")
    files: list[str] = []
    for tensor, location in found:
        reason = _unsafe_reason(location, folder)
        if reason:
            raise MetaError(
                f"refusing to load {path}: tensor {tensor!r} keeps its weights in external file "
                f"{location!r}, which {reason}; external data must sit in the model's own folder "
                "(re-export the model, or move its data file beside it and re-save it)"
            )
        target = folder / location
        if not target.is_file():
            raise MetaError(
                f"cannot load {path}: tensor {tensor!r} keeps its weights in {location!r}, which "
                f"is missing from {folder}; copy the data file beside the model"
            )
        if location not in files:
            files.append(location)
    return files
