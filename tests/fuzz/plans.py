"""A mutation plan: which seed, then a few (mutation, random seed) steps. Hypothesis draws the
plans (`plans`), so a CI run is reproducible and the deep run explores; `apply` makes the bytes."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import strategies as st

from tests.fuzz import mutate_data as data_ops
from tests.fuzz import mutate_images as image_ops
from tests.fuzz import mutate_pickles as pickle_ops
from tests.fuzz.mutate_bytes import BYTE_OPS, flip_bits
from tests.fuzz.seeds import SEEDS

FORMAT_OPS = {
    "zip": pickle_ops.ZIP_OPS,
    "pickle": (pickle_ops.pickle_stream,),
    "safetensors": (data_ops.safetensors_header,),
    "protobuf": (data_ops.protobuf_field, data_ops.protobuf_field, data_ops.protobuf_length),
    "json": (data_ops.json_edit, data_ops.json_edit, data_ops.json_nest),
    "text": (data_ops.text_lines,),
    "png": (
        image_ops.png_header,
        image_ops.png_chunk_edit,
        image_ops.png_pixels,
        image_ops.png_bomb,
    ),
    "jpeg": (image_ops.jpeg_frame,),
    "bmp": (image_ops.bmp_header,),
    "riff": (image_ops.container_field, image_ops.jpeg_frame),
    "mp4": (image_ops.container_field,),
    "bytes": (),
}


# Mutations whose inputs cost seconds each until the reader refuses them cheaply: in the deep
# run only (their findings are replayed by every run as regression files).
HEAVY_OPS = (pickle_ops.zip_bomb,)


@dataclass(frozen=True)
class Plan:
    seed: str
    steps: tuple[tuple[int, int], ...]  # (operation number, random seed)
    heavy: bool = False  # HEAVY_OPS among the choices

    def describe(self) -> str:
        ops = ", ".join(operation(self.seed, n, self.heavy).__name__ for n, _ in self.steps)
        return f"{self.seed}: {ops}"


def operation(seed: str, number: int, heavy: bool = False):
    """Format-aware mutations twice as likely as byte ones, where the seed has a format."""
    fmt = [op for op in FORMAT_OPS[SEEDS[seed][1]] if heavy or op not in HEAVY_OPS]
    candidates = (*fmt, *fmt, *BYTE_OPS)
    return candidates[number % len(candidates)]


def mutate(seed: str, number: int, data: bytes, rng: random.Random, donors, heavy=False) -> bytes:
    """One step: mutation `number` of the seed's format, or a bit flip where it does not apply."""
    try:
        mutated = operation(seed, number, heavy)(data, rng, donors)
    except RecursionError:  # an earlier step nested the data deeper than a parser goes
        mutated = None
    return mutated if mutated is not None else flip_bits(data, rng)


def apply(plan: Plan, seed_bytes: dict[str, bytes]) -> bytes:
    data = seed_bytes[plan.seed]
    donors = [b for name, b in seed_bytes.items() if name != plan.seed and len(b) < (1 << 20)]
    for number, rng_seed in plan.steps:
        data = mutate(plan.seed, number, data, random.Random(rng_seed), donors, plan.heavy)
    return data


def plans(seeds: list[str], heavy: bool = False) -> st.SearchStrategy[Plan]:
    step = st.tuples(st.integers(0, 255), st.integers(0, (1 << 32) - 1))
    steps = st.lists(step, min_size=1, max_size=3).map(tuple)
    return st.builds(Plan, st.sampled_from(seeds), steps, st.just(heavy))
