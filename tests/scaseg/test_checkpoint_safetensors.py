"""Safetensors files: the header length is a budget checked before it is read, the header's
entries are checked against the data before any tensor is mapped, and a damaged file is one
CheckpointError."""

from __future__ import annotations

import struct

import pytest

from runtime.errors import BudgetError
from scaseg.checkpoint import CheckpointError, load_model, read_state_dict, save_checkpoint
from scaseg.model import build_model
from tests.scaseg.hostile_checkpoints import resave_safetensors, safetensors_with_header

F32_4 = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}


def test_a_header_over_the_json_budget_is_refused_before_reading(tmp_path):
    # The file really is that long (sparse, so the test writes nothing): a budget question.
    path = tmp_path / "huge.safetensors"
    claim = 64 << 20
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", claim) + b'{"a": 1}')
        f.truncate(8 + claim)
    with pytest.raises(BudgetError, match=r"safetensors header needs 67,108,864 bytes.*JSON_BYTES"):
        read_state_dict(path)


def test_a_header_length_of_a_terabyte_in_a_small_file_is_a_broken_file(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + b'{"a": 1}')
    with pytest.raises(CheckpointError, match=r"claims 1,099,511,627,776 bytes.*Re-download"):
        read_state_dict(path)


def test_a_header_longer_than_the_file_is_truncation(tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(struct.pack("<Q", 1000) + b'{"a": 1}')
    with pytest.raises(
        CheckpointError, match=r"header claims 1,000 bytes, the file holds 8 after it"
    ):
        read_state_dict(path)


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"dtype": "F31", "shape": [4], "data_offsets": [0, 16]}, "dtype 'F31'"),
        ({"dtype": ["F32"], "shape": [4], "data_offsets": [0, 16]}, "dtype a list of 1 items"),
        ({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, "shape [-4]"),
        ({"dtype": "F32", "shape": [2.5], "data_offsets": [0, 16]}, "shape [2.5]"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}, "data_offsets [16, 0]"),
        (
            {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]},
            "past the 16 the file holds",
        ),
        ({"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}, "16 bytes for 5 F32 elements"),
        ({"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 16]}, "16 bytes for"),
        ("not a dict", "dtype None"),
    ],
)
def test_bad_entries_are_refused_before_the_library_maps_them(tmp_path, entry, words):
    path = safetensors_with_header(tmp_path / "bad.safetensors", {"w": entry}, bytes(16))
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_overlapping_entries_are_the_librarys_error_translated(tmp_path):
    header = {"a": F32_4, "b": F32_4}
    path = safetensors_with_header(tmp_path / "overlap.safetensors", header, bytes(16))
    with pytest.raises(CheckpointError, match="cannot read safetensors file"):
        read_state_dict(path)


def test_tensor_elements_of_the_header_are_a_budget(tmp_path, monkeypatch):
    path = safetensors_with_header(tmp_path / "m.safetensors", {"w": F32_4}, bytes(16))
    monkeypatch.setenv("SCASEG_MAX_TENSOR_ELEMENTS", "3")
    with pytest.raises(BudgetError, match=r"its tensors needs 4 elements"):
        read_state_dict(path)


@pytest.mark.parametrize(
    ("depth", "error", "words"),
    [(100, BudgetError, r"needs 65 levels of nesting.*METADATA_DEPTH"),
     (100_000, CheckpointError, r"nests over [\d,]+ levels deep")],
)  # fmt: skip
@pytest.mark.parametrize("where", ["header", "metadata"])
def test_deeply_nested_json_is_refused(tmp_path, where, depth, error, words):
    deep = "[" * depth + "]" * depth
    if where == "header":
        raw = ('{"w": ' + deep + "}").encode()
        path = tmp_path / "deep.safetensors"
        path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    else:
        header = {"__metadata__": {"scaseg": '{"x": ' + deep + "}"}, "w": F32_4}
        path = safetensors_with_header(tmp_path / "deep.safetensors", header, bytes(16))
    with pytest.raises(error, match=words):
        read_state_dict(path)


@pytest.mark.parametrize(
    ("text", "words"),
    [("{not json", "scaseg metadata is not valid JSON"), ("[1, 2]", "is a list of 2 items")],
)
def test_our_metadata_that_is_not_a_json_object_is_refused(tmp_path, text, words):
    header = {"__metadata__": {"scaseg": text}, "w": F32_4}
    path = safetensors_with_header(tmp_path / "m.safetensors", header, bytes(16))
    with pytest.raises(CheckpointError, match=words):
        read_state_dict(path)


@pytest.mark.parametrize(
    ("preprocess", "warning"),
    [
        ({"color": "rgb", "mean": [0, 0, 0], "std": [0, 1, 1]}, "std [0, 1, 1] must be > 0"),
        ({"color": "rgb", "mean": [0, 0, 0], "std": [float("nan"), 1, 1]}, "std [nan, 1, 1]"),
        ({"color": "rgb", "mean": [float("inf"), 0, 0]}, "mean [inf, 0, 0] is not finite"),
        ({"color": "rgb", "mean": "zero"}, "mean is 'zero', expected 3 numbers"),
        ({"color": "rgba"}, "color 'rgba'"),
        ("rgb", "not a dict ('rgb')"),
    ],
)
def test_unusable_input_normalisation_is_dropped_with_a_reason(tmp_path, preprocess, warning):
    model = build_model("tiny", 3)
    src = save_checkpoint(model, tmp_path / "m.safetensors", {"variant": "tiny"})
    path = resave_safetensors(src, tmp_path / "edited.safetensors", preprocess=preprocess)
    _, info = load_model(path)
    assert "preprocess" not in info
    assert any(warning in w for w in info["metadata_warnings"]), info["metadata_warnings"]


def test_a_checkpoint_over_its_byte_budget_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = save_checkpoint(build_model("tiny", 3), tmp_path / "m.safetensors", {"variant": "tiny"})
    monkeypatch.setenv("SCASEG_MAX_CHECKPOINT_BYTES", "1000")
    with pytest.raises(BudgetError, match=r"checkpoint .*m\.safetensors needs [\d,]+ bytes"):
        read_state_dict(path)
