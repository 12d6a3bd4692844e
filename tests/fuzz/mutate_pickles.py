"""Mutations that know torch checkpoints: zip directory fields, members rewritten (with their
CRCs right, so the edit reaches the unpickler), deflate bombs, and pickle opcode edits: opcodes
swapped, arguments and length prefixes changed, and inserted snippets that name code-running
globals, allocate huge objects or nest very deep."""

from __future__ import annotations

import io
import pickletools
import random
import struct
import zipfile
import zlib
from functools import cache

from tests.fuzz.mutate_bytes import BYTE_OPS, interesting_int, pack

ZIP_MAGIC = b"PK\x03\x04"
# Central directory entry fields: (offset, size): method, crc, sizes, name/extra/comment lengths,
# disk, local header offset. Local header: method, crc, sizes, name/extra lengths.
CD_FIELDS = (
    (8, 2),
    (10, 2),
    (16, 4),
    (20, 4),
    (24, 4),
    (28, 2),
    (30, 2),
    (32, 2),
    (34, 2),
    (42, 4),
)
LOCAL_FIELDS = ((6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2))
EOCD_FIELDS = ((4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2))


def _eocd(data: bytes) -> int | None:
    at = data.rfind(b"PK\x05\x06")
    return at if at >= 0 and at + 22 <= len(data) else None


def _central_entries(data: bytes) -> list[tuple[int, int, str]]:
    """(central entry offset, local header offset, name) of every member."""
    at = _eocd(data)
    if at is None:
        return []
    count, _, start = struct.unpack("<HII", data[at + 10 : at + 20])
    entries, pos = [], start
    for _ in range(count):
        if data[pos : pos + 4] != b"PK\x01\x02" or pos + 46 > len(data):
            break
        nlen, xlen, clen = struct.unpack("<HHH", data[pos + 28 : pos + 34])
        (local,) = struct.unpack("<I", data[pos + 42 : pos + 46])
        entries.append((pos, local, data[pos + 46 : pos + 46 + nlen].decode("utf-8", "replace")))
        pos += 46 + nlen + xlen + clen
    return entries


def _pick_entry(entries, rng: random.Random):
    pickle_entries = [e for e in entries if e[2].endswith(".pkl")]
    if pickle_entries and rng.random() < 0.4:
        return rng.choice(pickle_entries)
    return rng.choice(entries[: rng.choice((4, 8, len(entries)))])


def zip_field(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Edit a field of the end record, a central directory entry or a local header."""
    entries = _central_entries(data)
    if not entries:
        return None
    where = rng.randrange(3)
    if where == 0:
        base, (at, size) = _eocd(data), rng.choice(EOCD_FIELDS)
    else:
        central, local, _ = _pick_entry(entries, rng)
        base, (at, size) = (
            (central, rng.choice(CD_FIELDS)) if where == 1 else (local, rng.choice(LOCAL_FIELDS))
        )
    at += base
    if at + size > len(data):
        return None
    return data[:at] + pack(interesting_int(rng), size) + data[at + size :]


MEMBER_LIMIT = 64 << 20  # an earlier bomb: mutate around it, never inflate it


def _members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if any(info.file_size > MEMBER_LIMIT for info in archive.infolist()):
                return None
            return [(info, archive.read(info)) for info in archive.infolist()]
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError):
        return None


def _zip(members: list[tuple[str, bytes, int]]) -> bytes:
    """A zip of (name, payload, method) members, CRCs and sizes right."""
    raw = []
    for name, payload, method in members:
        if method == zipfile.ZIP_DEFLATED:
            z = zlib.compressobj(6, zlib.DEFLATED, -15)
            raw.append(
                (name, z.compress(payload) + z.flush(), method, zlib.crc32(payload), len(payload))
            )
        else:
            raw.append((name, payload, zipfile.ZIP_STORED, zlib.crc32(payload), len(payload)))
    return raw_zip(raw)


def raw_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip of (name, stored bytes, method, crc, uncompressed size) members, written by hand so
    the stored bytes may be anything (a deflate stream much smaller than it inflates to)."""
    local, central = [], []
    pos = 0
    for name, stored, method, crc, size in members:
        encoded = name.encode()
        head = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(stored),
                           size, len(encoded), 0)  # fmt: skip
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21,
                                   crc, len(stored), size, len(encoded), 0, 0, 0, 0, 0, pos) + encoded)  # fmt: skip
        local.append(head + encoded + stored)
        pos += len(local[-1])
    directory = b"".join(central)
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), pos, 0
    )
    return b"".join(local) + directory + end


def zip_member(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Rewrite one member (the pickle most often) through a pickle or byte mutation, or drop,
    duplicate or deflate one, and write the archive again with correct CRCs."""
    members = _members(data)
    if not members:
        return None
    items = [(info.filename, payload, zipfile.ZIP_STORED) for info, payload in members]
    pkl = [i for i, (name, _, _) in enumerate(items) if name.endswith(".pkl")]
    i = rng.choice(pkl) if pkl and rng.random() < 0.7 else rng.randrange(len(items))
    name, payload, method = items[i]
    action = rng.random()
    if action < 0.7:
        op = (
            rng.choice(PICKLE_OPS)
            if name.endswith(".pkl") and rng.random() < 0.8
            else rng.choice(BYTE_OPS)
        )
        items[i] = (name, op(payload, rng, donors) or payload, method)
    elif action < 0.8:
        del items[i]
    elif action < 0.9:
        items.insert(i, items[i])
    else:
        items[i] = (name, payload, zipfile.ZIP_DEFLATED)
    return _zip(items)


@cache
def _deflated_zeros(size: int) -> bytes:
    """A raw deflate stream of `size` zero bytes, made fast: a fully flushed block of 1 MiB of
    zeros is self-contained, so repeating it and adding an empty final block is a valid stream."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = z.compress(bytes(1 << 20)) + z.flush(zlib.Z_FULL_FLUSH)
    return chunk * (size >> 20) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def zip_bomb(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Replace a storage (or the pickle) with a member of a few MB that inflates to 1.5 GiB:
    what a reader must not inflate whole when the pickle asks for a few bytes."""
    members = _members(data)
    if not members:
        return None
    names = [info.filename for info, _ in members]
    target = rng.choice([n for n in names if "/data/" in n] or names)
    size = 3 << 29
    raw = [
        (name, _deflated_zeros(size), zipfile.ZIP_DEFLATED, _zeros_crc(size), size)
        if name == target
        else (name, payload, zipfile.ZIP_STORED, zlib.crc32(payload), len(payload))
        for name, payload in ((info.filename, payload) for info, payload in members)
    ]
    return raw_zip(raw)


@cache
def _zeros_crc(size: int) -> int:
    crc, block = 0, bytes(1 << 20)
    for _ in range(size >> 20):
        crc = zlib.crc32(block, crc)
    return crc


# --- pickle opcodes ------------------------------------------------------------------------------

OPCODES = [op for op in pickletools.opcodes]
INT_ARGS = {
    "BININT",
    "BININT1",
    "BININT2",
    "LONG1",
    "BINPUT",
    "LONG_BINPUT",
    "BINGET",
    "LONG_BINGET",
    "BINFLOAT",
}
LENGTH_ARGS = {"SHORT_BINUNICODE": 1, "BINUNICODE": 4, "BINUNICODE8": 8, "SHORT_BINBYTES": 1,
               "BINBYTES": 4, "BINBYTES8": 8, "BYTEARRAY8": 8, "SHORT_BINSTRING": 1, "BINSTRING": 4,
               "FRAME": 8, "LONG1": 1, "LONG4": 4}  # fmt: skip


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _call(func: bytes, *args: bytes) -> bytes:
    """func(*args) in pickle opcodes: GLOBAL, MARK, args, TUPLE, REDUCE."""
    return func + b"(" + b"".join(args) + b"tR"


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value) if -(1 << 31) <= value < (1 << 31) else b"L%dL\n" % value


# Snippets that push one object: the readers' budgets and refusals are about these.
SNIPPETS = (
    b"(", b"]", b"}", b")", b"0", b"1", b"2", b"N", b"\x88", b"t", b"R", b"b", b"s", b"u", b"a",
    b"e", b"\x85", b"\x86", b".",
    _global("builtins", "eval"), _global("posix", "system"), _global("os", "system"),
    b"\x8c\x08builtins\x8c\x04exec\x93", _global("subprocess", "Popen"),
    _global("collections", "OrderedDict"), _global("torch._utils", "_rebuild_tensor_v2"),
    _global("torch", "FloatStorage"), _global("numpy.core.multiarray", "_reconstruct"),
    _call(_global("builtins", "bytearray"), _int(1 << 30)),
    _call(_global("builtins", "bytes"), _int((1 << 31) - 1)),
    _call(_global("builtins", "set"), _call(_global("builtins", "range"), _int(1 << 30))),
    _call(_global("builtins", "list"), _call(_global("builtins", "range"), _int(1 << 28))),
    _call(_global("builtins", "int"), b"X\x10\x27\x00\x00" + b"9" * 10000),
    _call(_global("_codecs", "encode"), b"X\x05\x00\x00\x00hello", b"X\x04\x00\x00\x00rot13"),
    _call(_global("builtins", "getattr"), _global("collections", "OrderedDict"), b"X\x08\x00\x00\x00__init__"),
    b"]" * 100_000 + b"a" * 99_999,  # a list nested 100,000 deep
    b"}" * 2000 + b"N" + b"s" * 0,  # many empty dicts left on the stack
    b"(" * 50_000,  # marks without end
    b"B\xff\xff\xff\x7f",  # BINBYTES that claims 2 GiB
)  # fmt: skip


def _opcodes(data: bytes) -> list[tuple[pickletools.OpcodeInfo, object, int]]:
    ops = []
    try:
        for op, arg, pos in pickletools.genops(data):
            ops.append((op, arg, pos))
    except ValueError:  # a malformed pickle: keep the opcodes read so far
        pass
    return ops


def pickle_opcode(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Swap, delete, duplicate or re-argue one opcode, change a length prefix, or insert a
    snippet (often followed by POP, so the rest of the pickle still makes sense)."""
    ops = _opcodes(data)
    if not ops:
        return None
    n = rng.randrange(len(ops))
    op, _, pos = ops[n]
    end = ops[n + 1][2] if n + 1 < len(ops) else len(data)
    action = rng.randrange(6)
    if action == 0:
        return data[:pos] + rng.choice(OPCODES).code.encode("latin-1") + data[pos + 1 :]
    if action == 1:
        return data[:pos] + data[end:]
    if action == 2:
        return data[:pos] + data[pos:end] * rng.choice((2, 3, 100)) + data[end:]
    if action == 3 and (op.name in LENGTH_ARGS or op.name in INT_ARGS):
        width = LENGTH_ARGS.get(op.name) or max(1, min(8, end - pos - 1))
        return data[: pos + 1] + pack(interesting_int(rng), width) + data[pos + 1 + width :]
    snippet = rng.choice(SNIPPETS)
    tail = b"0" if rng.random() < 0.5 else b""
    return data[:pos] + snippet + tail + data[pos:]


def pickle_stream(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """A legacy torch.save stream is several pickles back to back: edit one of its first ops."""
    if not data.startswith(b"\x80\x02"):
        return None
    return pickle_opcode(data, rng, donors)


PICKLE_OPS = (pickle_opcode,)
ZIP_OPS = (zip_field, zip_member, zip_member, zip_bomb)
