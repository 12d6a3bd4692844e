"""Mutations that know data formats: JSON values swapped for NaN, huge numbers, lists, strings
or deep nesting; text lines repeated, lengthened or given odd characters; safetensors headers;
protobuf (ONNX) fields rewritten with every enclosing length kept right."""

from __future__ import annotations

import json
import random
import struct

from tests.fuzz.mutate_bytes import BYTE_OPS, interesting_int

_HOLE = "\x00fuzz-hole\x00"  # stands where raw JSON text is spliced in after json.dumps

# Raw JSON texts a value may become: non-finite and huge numbers, wrong types, deep nesting.
JSON_VALUES = (
    "NaN", "Infinity", "-Infinity", "1e308", "-1e400", "1" + "0" * 5000, "-1", "0", "0.5",
    "9223372036854775808", "true", "null", '""', '"\\u0000"', '"\\ud800"', '"' + "x" * 100_000 + '"',
    "[]", "{}", "[[[[1]]]]", '{"a": {"b": {"c": []}}}', "[" * 100_000 + "]" * 100_000,
    '{"a":' * 5000 + "1" + "}" * 5000, "[" + ",".join(["0"] * 100_000) + "]",
    '"../../../etc/passwd"', '"F64"', '"int8"', '"NCHW"', "[1, 3, 1e9, 1e9]",
)  # fmt: skip


def _paths(node, prefix=()) -> list[tuple]:
    """Every path into a JSON document (keys and indices), the root included."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:64]):
            found += _paths(value, (*prefix, i))
    return found


def _replace(doc, path: tuple, value):
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return doc


def mutate_json_value(doc, rng: random.Random) -> str:
    """`doc` (parsed JSON) with one node swapped, dropped, renamed, wrapped or repeated: text."""
    path = rng.choice(_paths(doc))
    raw = None
    action = rng.random()
    if action < 0.55:
        raw = rng.choice(JSON_VALUES)
        doc = _replace(doc, path, _HOLE)
    elif action < 0.7 and path:
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict):
            value = parent.pop(path[-1])
            if rng.random() < 0.5:
                parent[str(path[-1]) + rng.choice(("_", "X", ""))] = value
        else:
            del parent[path[-1]]
    elif action < 0.85:
        node = doc
        for step in path:
            node = node[step]
        doc = _replace(doc, path, rng.choice(([node], {"value": node}, str(node), [node] * 5000)))
    else:
        node = doc
        for step in path:
            node = node[step]
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            doc = _replace(
                doc, path, rng.choice((-node, node * 1000, interesting_int(rng), float(node) + 0.5))
            )
        elif isinstance(node, str):
            doc = _replace(doc, path, rng.choice((node * 1000, node.upper(), node + "\u202e", "")))
    text = json.dumps(doc)
    return text.replace(json.dumps(_HOLE), raw) if raw is not None else text


def json_edit(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """A JSON document (a sidecar, a class file) with one value changed, as text."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return mutate_json_value(doc, rng).encode("utf-8", "surrogatepass")


def json_nest(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """The whole document nested very deep (what a recursive reader stumbles on)."""
    depth = rng.choice((100, 1000, 100_000))
    left, right = (
        (b"[" * depth, b"]" * depth) if rng.random() < 0.5 else (b'{"a":' * depth, b"}" * depth)
    )
    return left + data + right


# Lines a text file (class list, image list) may gain: odd characters, colours out of range,
# very long names, paths that leave the folder, and many of them.
TEXT_LINES = (
    "", "#", " ", "\x00", "\r", "\u2028", "\ufeffroad", "road", "road 1,2,3", "road 300,-1,2",
    "car 1,2,3,4", "x 1,2", "person 99999999999999999999,0,0", "a" * 100_000, "../../etc/passwd",
    "/dev/zero", "/proc/self/mem", "frames", ".", "..", "a.png\x00.jpg", "\udcff",
)  # fmt: skip


def text_lines(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Insert, repeat, drop or change lines of a text file."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None
    at = rng.randint(0, len(lines))
    action = rng.randrange(4)
    if action == 0:
        lines.insert(at, rng.choice(TEXT_LINES))
    elif action == 1 and lines:
        line = lines[min(at, len(lines) - 1)]
        lines[at:at] = [line] * rng.choice((2, 100, 10_000, 200_000))
    elif action == 2 and lines:
        del lines[min(at, len(lines) - 1)]
    elif lines:
        i = min(at, len(lines) - 1)
        lines[i] = lines[i] + rng.choice((" 1,2,3", "\t", " ", ",", "\x85", "  255,255,255", " x"))
    newline = rng.choice(("\n", "\r\n", "\r"))
    return newline.join(lines).encode("utf-8", "surrogateescape")


HEADER_VALUES = {
    "dtype": ("F64", "F8_E4M3", "BOOL", "XX", 7),
    "shape": ([], [0], [1 << 40, 1 << 40], [-1], "3"),
    "data_offsets": ([0, 0], [0, 1 << 62], [10, 5], [0], ["0", "4"]),
}


def safetensors_header(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Edit the JSON header of a safetensors file (dtypes, shapes, data offsets, metadata)
    and, most of the time, write its length field to match."""
    if len(data) < 8:
        return None
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        return None
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if rng.random() < 0.3 and isinstance(header, dict):  # the fields safetensors checks first
        key = rng.choice([k for k in header if k != "__metadata__"] or ["__metadata__"])
        entry = header.get(key)
        if isinstance(entry, dict):
            field = rng.choice(("dtype", "shape", "data_offsets"))
            entry[field] = rng.choice(HEADER_VALUES[field])
        text = json.dumps(header).encode()
    else:
        text = mutate_json_value(header, rng).encode("utf-8", "surrogatepass")
    length = len(text) if rng.random() < 0.85 else interesting_int(rng) % (1 << 64)
    return struct.pack("<Q", length) + text + data[8 + size :]


# --- protobuf ------------------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    value %= 1 << 64
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def parse_message(buf: bytes, depth: int = 0) -> list | None:
    """[[number, wire, value], ...] where a length-delimited value that parses as a message is a
    list itself (a string may parse by chance: harmless for a fuzzer). None: not a message."""
    fields, pos = [], 0
    try:
        while pos < len(buf):
            key, pos = _varint(buf, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, pos = _varint(buf, pos)
            elif wire in (1, 5):
                width = 8 if wire == 1 else 4
                value, pos = buf[pos : pos + width], pos + width
            elif wire == 2:
                length, pos = _varint(buf, pos)
                value, pos = buf[pos : pos + length], pos + length
                if depth < 12 and len(value) > 1:
                    value = parse_message(value, depth + 1) or value
            else:
                return None
            if pos > len(buf) or number == 0:
                return None
            fields.append([number, wire, value])
    except ValueError:
        return None
    return fields


_RAW = (
    8  # not a wire type: a length-delimited field whose bytes (length varint included) are as given
)


def write_message(fields: list) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _encode_varint(number << 3 | (2 if wire == _RAW else wire))
        if wire == 0:
            out += _encode_varint(value)
        elif wire in (1, 5, _RAW):
            out += value
        else:
            payload = write_message(value) if isinstance(value, list) else value
            out += _encode_varint(len(payload)) + payload
    return bytes(out)


def _all_fields(fields: list, found: list) -> list:
    for field in fields:
        found.append((fields, field))
        if isinstance(field[2], list):
            _all_fields(field[2], found)
    return found


# Strings an ONNX field may become: external data locations that leave the folder, other ops.
PROTO_STRINGS = (
    b"", b"../../etc/passwd", b"/etc/passwd", b"weights.bin\x00", b"..", b".", b"C:\\x",
    b"location", b"EXTERNAL", b"Loop", b"If", b"Scan", b"com.microsoft", b"a" * 5000, b"\xff\xfe",
)  # fmt: skip


def protobuf_field(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Change one field anywhere in the message tree (a number, a string, its bytes), drop or
    repeat it, and write the tree again so every enclosing length stays right."""
    tree = parse_message(data)
    if not tree:
        return None
    parent, field = rng.choice(_all_fields(tree, []))
    _, wire, value = field
    action = rng.random()
    if action < 0.1:
        parent.remove(field)
    elif action < 0.2:
        parent.extend([list(field)] * rng.choice((1, 2, 100)))
    elif wire == 0:
        field[2] = interesting_int(rng) % (1 << 64)
    elif wire == 2 and not isinstance(value, list):
        field[2] = (
            rng.choice(PROTO_STRINGS)
            if rng.random() < 0.5
            else (rng.choice(BYTE_OPS)(value, rng) or value)
        )
    elif wire == 2 and rng.random() < 0.3:
        field[1], field[2] = 0, interesting_int(rng) % (1 << 64)  # a message where a number was
    elif wire == 2:
        field[2] = write_message(value)[: rng.randrange(len(write_message(value)) + 1)]
    else:
        field[2] = rng.randbytes(len(value))
    return write_message(tree)


def protobuf_length(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """A length prefix that lies: one field claims more or fewer bytes than it has (the
    enclosing messages' lengths stay right, so the lie is met where that field is read)."""
    tree = parse_message(data)
    if not tree:
        return None
    nested = [pf for pf in _all_fields(tree, []) if pf[1][1] == 2]
    if not nested:
        return None
    _, field = rng.choice(nested)
    value = field[2]
    payload = write_message(value) if isinstance(value, list) else value
    claimed = rng.choice((len(payload) + 1, len(payload) - 1, 0, interesting_int(rng)))
    # The field becomes raw bytes written after its key: a length varint that is not its own.
    field[1], field[2] = _RAW, _encode_varint(claimed) + payload
    return write_message(tree)
