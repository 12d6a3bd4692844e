"""Mutations that know image and video headers: PNG chunks (CRC fixed, so the edit reaches the
decoder), JPEG frame headers, BMP headers, RIFF (AVI) and MP4 box fields. Each returns None when
the data is not (or no longer) in its format; the caller then falls back to a byte mutation."""

from __future__ import annotations

import random
import struct
import zlib
from functools import cache

from tests.fuzz.mutate_bytes import interesting_int, pack

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Sizes a PNG header may claim: empty, tiny, over the pixel budget, over OpenCV's own limit.
PNG_SIDES = (0, 1, 2, 63, 65, 4096, 9000, 20000, 65535, 1 << 20, (1 << 31) - 1, 1 << 31)


def png_chunks(data: bytes) -> list[tuple[int, bytes, bytes]] | None:
    """(offset, type, payload) of every chunk, or None if this is not a well-formed PNG."""
    if not data.startswith(PNG_MAGIC):
        return None
    pos, chunks = 8, []
    while pos + 12 <= len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if pos + 12 + size > len(data):
            return None
        chunks.append((pos, kind, data[pos + 8 : pos + 8 + size]))
        pos += 12 + size
    return chunks or None


def png_chunk(kind: bytes, payload: bytes, fix_crc: bool = True) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF if fix_crc else 0xDEADBEEF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png_join(chunks: list[tuple[bytes, bytes]], rng: random.Random) -> bytes:
    fix = rng.random() < 0.9
    return PNG_MAGIC + b"".join(png_chunk(k, p, fix) for k, p in chunks)


def png_header(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Edit IHDR: width, height, bit depth, colour type or interlace."""
    chunks = png_chunks(data)
    if not chunks or chunks[0][1] != b"IHDR" or len(chunks[0][2]) < 13:
        return None
    w, h, depth, colour, comp, filt, lace = struct.unpack(">IIBBBBB", chunks[0][2][:13])
    field = rng.randrange(5)
    if field == 0:
        w = rng.choice(PNG_SIDES) % (1 << 32)
    elif field == 1:
        h = rng.choice(PNG_SIDES) % (1 << 32)
    elif field == 2:
        depth = rng.choice((1, 2, 3, 4, 8, 16, 255))
    elif field == 3:
        colour = rng.choice((0, 1, 2, 3, 4, 5, 6, 7))
    else:
        lace = rng.choice((0, 1, 2))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, comp, filt, lace)
    rest = [(k, p) for _, k, p in chunks[1:]]
    return _png_join([(b"IHDR", ihdr), *rest], rng)


def png_chunk_edit(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Drop, duplicate, empty or grow one chunk (PLTE, IDAT, tRNS...), or add a text chunk."""
    chunks = png_chunks(data)
    if not chunks:
        return None
    items = [(k, p) for _, k, p in chunks]
    i = rng.randrange(len(items))
    kind, payload = items[i]
    action = rng.randrange(6)
    if action == 0:
        del items[i]
    elif action == 1:
        items.insert(i, (kind, payload))
    elif action == 2:
        items[i] = (kind, payload[: rng.randrange(len(payload) + 1)])
    elif action == 3:
        items[i] = (kind, payload + payload[:768] * rng.choice((1, 2, 100)))
    elif action == 4:
        text = rng.choice((b"zTXt", b"iCCP", b"tEXt", b"tRNS", b"PLTE", b"sBIT"))
        items.insert(1, (text, b"k\x00\x00" + zlib.compress(bytes(1 << rng.choice((4, 16, 24))))))
    else:
        j = rng.randrange(len(items))
        items[i], items[j] = items[j], items[i]
    return _png_join(items, rng)


def png_pixels(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Change the decompressed scanlines (filter bytes, length) and recompress them."""
    chunks = png_chunks(data)
    if not chunks:
        return None
    idat = b"".join(p for _, k, p in chunks if k == b"IDAT")
    try:
        raw = bytearray(zlib.decompress(idat))
    except zlib.error:
        return None
    if raw and rng.random() < 0.5:
        for _ in range(rng.randint(1, 16)):
            raw[rng.randrange(len(raw))] = rng.choice((0, 1, 2, 3, 4, 5, 255))
    else:
        raw = raw[: rng.randrange(len(raw) + 1)] if rng.random() < 0.7 else raw * 2
    items = [(k, p) for _, k, p in chunks if k != b"IDAT"]
    at = next((n for n, (k, _) in enumerate(items) if k == b"IEND"), len(items))
    items.insert(at, (b"IDAT", zlib.compress(bytes(raw))))
    return _png_join(items, rng)


@cache
def _zero_rows(rows: int, row_bytes: int) -> bytes:
    """Deflated zero scanlines: a few hundred kB that inflate to `rows` x `row_bytes`."""
    z = zlib.compressobj(9)
    row = bytes(row_bytes + 1)
    out = [z.compress(row * min(256, rows - i)) for i in range(0, rows, 256)]
    return b"".join(out) + z.flush()


def png_bomb(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """A small valid PNG whose pixels are huge: over the pixel budget, or just under it in
    16-bit RGBA (what a reader must check before it decodes)."""
    if not data.startswith(PNG_MAGIC):
        return None
    w, h, depth, colour, channels = rng.choice(
        ((9000, 9000, 8, 0, 1), (2000, 2000, 16, 6, 4), (30000, 2, 8, 2, 3), (2, 40000, 8, 3, 1))
    )
    rows = _zero_rows(h, w * channels * depth // 8)
    items = [(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))]
    if colour == 3:
        items.append((b"PLTE", bytes(768)))
    items += [(b"IDAT", rows), (b"IEND", b"")]
    return PNG_MAGIC + b"".join(png_chunk(k, p) for k, p in items)


def jpeg_frame(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Edit the first JPEG frame header (SOFn: precision, height, width, components), or the
    length of a marker segment. Also reaches the JPEG frames inside an MJPEG AVI."""
    sofs = [i for i in range(len(data) - 9) if data[i] == 0xFF and 0xC0 <= data[i + 1] <= 0xCF
            and data[i + 1] not in (0xC4, 0xC8, 0xCC)]  # fmt: skip
    if not sofs:
        return None
    at = sofs[0] if rng.random() < 0.7 else rng.choice(sofs)
    field = rng.choice(((2, 2), (4, 1), (5, 2), (7, 2), (9, 1)))  # length, P, Y, X, Nf
    value = (
        rng.choice((0, 1, 3, 4, 8, 12, 16, 255, 65535))
        if rng.random() < 0.6
        else interesting_int(rng)
    )
    where = at + field[0]
    return data[:where] + pack(value, field[1], "big") + data[where + field[1] :]


# BMP header fields: (offset, size), all little-endian.
BMP_FIELDS = (
    (2, 4),
    (10, 4),
    (14, 4),
    (18, 4),
    (22, 4),
    (26, 2),
    (28, 2),
    (30, 4),
    (34, 4),
    (46, 4),
)


def bmp_header(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Edit a BMP header field: file size, pixel offset, header size, width, height (negative
    means top-down), planes, bits per pixel, compression, image size, palette size."""
    if not data.startswith(b"BM") or len(data) < 54:
        return None
    at, size = rng.choice(BMP_FIELDS)
    value = (
        rng.choice((0, 1, 4, 8, 24, 32, 40, 54, 1 << 16, -1, -64, 1 << 31))
        if rng.random() < 0.5
        else interesting_int(rng)
    )
    return data[:at] + pack(value, size) + data[at + size :]


# Tagged containers: a 4-byte tag with a 32-bit size next to it. RIFF (AVI): tag then size,
# little-endian; MP4/QuickTime boxes: size then tag, big-endian.
RIFF_TAGS = (b"RIFF", b"LIST", b"avih", b"strh", b"strf", b"movi", b"idx1", b"00dc", b"JUNK")
MP4_TAGS = (b"moov", b"mvhd", b"trak", b"tkhd", b"mdia", b"mdhd", b"minf", b"stbl", b"stsd",
            b"stts", b"stsc", b"stsz", b"stco", b"mdat", b"ftyp", b"mp4v", b"avc1", b"esds")  # fmt: skip


def container_field(data: bytes, rng: random.Random, donors=()) -> bytes | None:
    """Edit the size of a RIFF chunk / MP4 box, or one 32-bit field of its payload (frame
    counts, width, height, sample tables)."""
    riff = data[:4] == b"RIFF"
    tags = RIFF_TAGS if riff else MP4_TAGS if data[4:8] == b"ftyp" else None
    if tags is None:
        return None
    hits = [(i, t) for t in tags for i in _find_all(data, t)]
    if not hits:
        return None
    at, _ = rng.choice(hits)
    order = "little" if riff else "big"
    size_at = at + 4 if riff else at - 4
    if rng.random() < 0.4 and size_at >= 0:
        where = size_at
    else:
        where = at + (8 if riff else 4) + 4 * rng.randrange(16)
    if where + 4 > len(data):
        return None
    return data[:where] + pack(interesting_int(rng), 4, order) + data[where + 4 :]


def _find_all(data: bytes, tag: bytes, limit: int = 64) -> list[int]:
    found, pos = [], data.find(tag)
    while pos >= 0 and len(found) < limit:
        found.append(pos)
        pos = data.find(tag, pos + 1)
    return found
