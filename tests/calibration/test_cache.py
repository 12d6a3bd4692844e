"""The calibration cache key: every component matters, and a stale file is never reused."""

from __future__ import annotations

import dataclasses
import json

import pytest

from calibration.cache import CacheKey, CalibrationCache
from runtime.preprocess import Preprocess

BASE = CacheKey(
    model_sha256="a" * 64,
    preprocess=Preprocess(512, 512).to_dict(),
    data_sha256="b" * 64,
    method="minmax",
    samples=32,
    settings={"symmetric": True, "library": "onnxruntime 1.32.0"},
)
CHANGES = {
    "model_sha256": "c" * 64,
    "preprocess": Preprocess(512, 512, color="bgr").to_dict(),
    "data_sha256": "d" * 64,
    "method": "entropy",
    "samples": 64,
    "settings": {"symmetric": True, "library": "onnxruntime 1.33.0"},
}


@pytest.mark.parametrize("component", list(CHANGES))
def test_key_changes_with_each_component(component):
    changed = dataclasses.replace(BASE, **{component: CHANGES[component]})
    assert changed.digest() != BASE.digest()


def test_key_is_stable():
    assert dataclasses.replace(BASE).digest() == BASE.digest()


def test_round_trip_and_miss(tmp_path):
    cache = CalibrationCache(tmp_path)
    assert cache.load(BASE) is None
    cache.store(BASE, {"x": (-1.0, 2.5)})
    assert cache.load(BASE) == {"x": (-1.0, 2.5)}
    assert cache.load(dataclasses.replace(BASE, samples=16)) is None


def test_a_file_with_another_key_under_this_name_is_not_reused(tmp_path):
    cache = CalibrationCache(tmp_path)
    path = cache.store(BASE, {"x": (-1.0, 1.0)})
    data = json.loads(path.read_text())
    data["key"]["samples"] = 999  # e.g. copied from elsewhere or edited by hand
    path.write_text(json.dumps(data))
    assert cache.load(BASE) is None


def test_a_corrupt_cache_file_is_a_miss(tmp_path):
    cache = CalibrationCache(tmp_path)
    cache.path(BASE).write_text("{ truncated")
    assert cache.load(BASE) is None


@pytest.mark.parametrize(
    "ranges",
    [
        {"x": [float("nan"), 1.0]},  # json.dumps writes NaN; json.loads reads it back
        {"x": [2.0, 1.0]},  # low above high
        {"x": [0.0]},
        {"x": ["0", "1"]},
        {"x": {"lo": 0}},
        [["x", 0, 1]],
        None,
    ],
)
def test_a_damaged_entry_under_the_right_key_is_a_miss_not_a_crash(tmp_path, ranges):
    # A shared cache folder may hold an entry with the right key and wrong ranges: recompute.
    cache = CalibrationCache(tmp_path)
    path = cache.store(BASE, {"x": (-1.0, 1.0)})
    data = json.loads(path.read_text())
    data["ranges"] = ranges
    path.write_text(json.dumps(data))
    assert cache.load(BASE) is None


@pytest.mark.parametrize("text", ['["format", 1]', "1e999", "[" * 100_000 + "]" * 100_000])
def test_cache_files_that_are_not_objects_are_a_miss(tmp_path, text):
    cache = CalibrationCache(tmp_path)
    cache.path(BASE).write_text(text)
    assert cache.load(BASE) is None
