"""Format-blind mutations: bit flips, interesting integers, truncation, deletion, repeated chunks
and splices from another seed. Every mutation is `op(data, rng, donors) -> bytes`; `rng` is a
`random.Random` seeded by the plan, so a plan always makes the same bytes."""

from __future__ import annotations

import random

# Values that sit on the edges readers get wrong: zero, one, sign bits, type maxima, sizes.
INTERESTING = (
    0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 100, 127, 128, 255, 256, 1000, 1023, 1024,
    4096, 9000, 32767, 32768, 65535, 65536, 1 << 20, 1 << 24, (1 << 31) - 1, 1 << 31,
    (1 << 32) - 1, 1 << 32, 1 << 40, (1 << 63) - 1, 1 << 63, (1 << 64) - 1,
)  # fmt: skip
MAX_GROWTH = 1 << 20  # a mutation adds at most 1 MiB: big inputs come from header claims


def interesting_int(rng: random.Random) -> int:
    if rng.random() < 0.8:
        value = rng.choice(INTERESTING)
    else:
        value = rng.getrandbits(rng.choice((8, 16, 32, 64)))
    return -value if rng.random() < 0.1 else value


def pack(value: int, size: int, order: str = "little") -> bytes:
    """`value` as `size` bytes, wrapped (two's complement for negatives)."""
    return (value % (1 << (8 * size))).to_bytes(size, order)


def offset(data: bytes, rng: random.Random, width: int = 1) -> int:
    """A position for a `width`-byte edit, biased towards the first kilobyte (the headers)."""
    last = max(0, len(data) - width)
    if rng.random() < 0.5:
        return rng.randint(0, min(last, 1023))
    return rng.randint(0, last)


def flip_bits(data: bytes, rng: random.Random, donors=()) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[offset(out, rng)] ^= 1 << rng.randrange(8)
    return bytes(out)


def write_int(data: bytes, rng: random.Random, donors=()) -> bytes:
    size = rng.choice((1, 2, 4, 8))
    if len(data) < size:
        return flip_bits(data, rng)
    at = offset(data, rng, size)
    order = rng.choice(("little", "big"))
    return data[:at] + pack(interesting_int(rng), size, order) + data[at + size :]


def truncate(data: bytes, rng: random.Random, donors=()) -> bytes:
    if len(data) < 2:
        return b""
    choice = rng.random()
    if choice < 0.3:
        keep = len(data) - rng.randint(1, min(64, len(data)))  # the last bytes lost
    elif choice < 0.5:
        keep = rng.randint(0, min(64, len(data) - 1))  # only the magic survives
    else:
        keep = rng.randrange(len(data))
    return data[:keep]


def delete_chunk(data: bytes, rng: random.Random, donors=()) -> bytes:
    if len(data) < 2:
        return data
    at = offset(data, rng)
    size = rng.randint(1, max(1, min(len(data) - at, rng.choice((1, 4, 16, 256, 4096)))))
    return data[:at] + data[at + size :]


def repeat_chunk(data: bytes, rng: random.Random, donors=()) -> bytes:
    """Insert a chunk of the data repeated many times (lists, frames, rows that never end)."""
    if not data:
        return data
    at = offset(data, rng)
    chunk = data[at : at + rng.choice((1, 2, 4, 8, 16, 64, 512))]
    times = min(rng.choice((2, 16, 256, 4096, 65536)), MAX_GROWTH // max(1, len(chunk)))
    return data[:at] + chunk * times + data[at:]


def splice(data: bytes, rng: random.Random, donors=()) -> bytes:
    """Replace a range with bytes from another seed (or another place of this one)."""
    source = rng.choice([*donors, data]) if donors else data
    if not source or not data:
        return data
    start = rng.randrange(len(source))
    chunk = source[start : start + rng.choice((4, 16, 256, 4096, 1 << 16))]
    at = offset(data, rng)
    cut = rng.choice((0, len(chunk), rng.randint(0, len(chunk))))
    return data[:at] + chunk + data[at + cut :]


def insert_random(data: bytes, rng: random.Random, donors=()) -> bytes:
    at = offset(data, rng) if data else 0
    return data[:at] + rng.randbytes(rng.choice((1, 3, 8, 64, 1024))) + data[at:]


BYTE_OPS = (flip_bits, write_int, truncate, delete_chunk, repeat_chunk, splice, insert_random)
