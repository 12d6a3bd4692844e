"""What a checkpoint pickle may make the reader allocate: sizes it chooses are checked before they
are paid, and tensor views must lie inside their storage."""

from __future__ import annotations

import pickle
import struct
import time
from collections import OrderedDict

import pytest
import torch

from runtime.errors import BudgetError
from scaseg.checkpoint import CheckpointError, load_model, read_state_dict
from scaseg.model import build_model
from tests.scaseg.hostile_checkpoints import state_with, view
from tests.support.checkpoints import Payload, save_payload_checkpoint

pytest.importorskip("mmengine")


def test_a_58_byte_pickle_cannot_allocate_2_5_gb(tmp_path):
    path = tmp_path / "tiny.pkl"
    path.write_bytes(pickle.dumps({"state_dict": Payload(bytearray, 2_500_000_000)}, protocol=4))
    assert path.stat().st_size < 80
    start = time.monotonic()
    with pytest.raises(BudgetError) as err:
        read_state_dict(path)
    message = str(err.value)
    assert "builtins.bytearray(2500000000)" in message and "2,500,000,000 bytes" in message
    assert "SCASEG_MAX_PICKLE_OBJECT_BYTES" in message and "tiny.pkl" in message
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (Payload(bytearray, 2_500_000_000), ("builtins.bytearray", "2,500,000,000 bytes")),
        (Payload(bytes, 10**10), ("builtins.bytes", "10,000,000,000 bytes")),
        (Payload(list, range(10**10)), ("builtins.list(a range)", "10,000,000,000 items")),
        (Payload(bytes, b"x" * 100_000_000), ("a string, bytes or frame", "100,000,000 bytes")),
    ],
    ids=["bytearray", "bytes", "list-range", "bytes-object"],
)
def test_allocations_chosen_by_the_pickle_are_refused_in_a_real_checkpoint(
    tmp_path, payload, words
):
    """In the metadata of an otherwise valid mmengine checkpoint, which loads without them."""
    path = save_payload_checkpoint(build_model("tiny", 3), tmp_path / "m.pth", payload)
    with pytest.raises(BudgetError) as err:
        load_model(path)
    for word in words:
        assert word in str(err.value), str(err.value)


@pytest.mark.parametrize("build", [frozenset, set, tuple, list, torch.Size])
def test_containers_built_from_the_pickle_are_counted_first(tmp_path, monkeypatch, build):
    """Items are checked against metadata_items before the container is filled. (Lowered here:
    a regression must not fill the test machine's memory.)"""
    monkeypatch.setenv("SCASEG_MAX_METADATA_ITEMS", "100000")
    path = tmp_path / "c.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": Payload(build, range(200_000))}, path)
    with pytest.raises(BudgetError, match=r"\(a range\) in its pickle needs 200,000 items"):
        read_state_dict(path)


def test_newobj_cannot_reach_the_builtin_types(tmp_path):
    """tuple.__new__(tuple, range(...)) would fill a tuple before any wrapper saw it."""
    ops = b"\x80\x02cbuiltins\ntuple\ncbuiltins\nrange\nK\x00J\x00\xe1\xf5\x05\x86R\x85\x81."
    path = tmp_path / "newobj.pkl"
    path.write_bytes(ops)
    with pytest.raises(CheckpointError, match="NEWOBJ"):
        read_state_dict(path)


def test_str_of_a_container_is_refused(tmp_path):
    big = [b"x" * 1000] * 1000
    path = tmp_path / "s.pkl"
    path.write_bytes(pickle.dumps({"state_dict": {"w": torch.ones(1)}, "x": Payload(str, big)}))
    with pytest.raises(CheckpointError, match=r"builtins\.str of a list.*only of text or numbers"):
        read_state_dict(path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_view_past_the_end_of_its_storage_is_refused_not_filled_with_heap(tmp_path, legacy):
    """torch would grow the storage to fit the view; the export would then hold heap bytes."""
    model = build_model("tiny", 3)
    base = torch.zeros(1)
    state = state_with(model, decode_head__cls_seg__bias=view(base, 0, (3,), (1,)))
    path = tmp_path / "past.pth"
    torch.save({"state_dict": state}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert "reaches byte 12 of a storage of 4 bytes" in message and "\n" not in message


@pytest.mark.parametrize(
    ("offset", "size", "stride", "words"),
    [
        (4, (2,), (1,), "reaches byte 24 of a storage of 16 bytes"),  # offset past the end
        (0, (2, 3), (3, 1), "reaches byte 24 of a storage of 16 bytes"),
        (0, (2,), (-1,), "stride of -1"),
        (-1, (2,), (1,), "storage offset of -1"),
        (0, (2, 2), (1,), "2 sizes and 1 strides"),
        (0, (2.5,), (1,), "size of 2.5"),
    ],
)
def test_tensor_geometry_is_checked_against_its_storage(tmp_path, offset, size, stride, words):
    path = tmp_path / "v.pth"
    torch.save({"w": view(torch.zeros(4), offset, size, stride)}, path)
    with pytest.raises(CheckpointError, match=words):
        read_state_dict(path)


def test_empty_and_in_bounds_views_still_load(tmp_path):
    base = torch.arange(12.0)
    path = tmp_path / "ok.pth"
    torch.save({"empty": view(base, 12, (0, 5), (5, 1)), "tail": view(base, 9, (3,), (1,)),
                "grid": view(base, 1, (2, 2), (6, 2))}, path)  # fmt: skip
    got, _ = read_state_dict(path)
    assert got["empty"].shape == (0, 5) and got["tail"].tolist() == [9.0, 10.0, 11.0]
    assert got["grid"].tolist() == [[1.0, 3.0], [7.0, 9.0]]


def test_a_stride_0_classifier_cannot_claim_ten_million_classes(tmp_path):
    """(10_000_000, 32, 1, 1) out of 32 floats: refused quickly, nothing of that size is built."""
    model = build_model("tiny", 3)
    weight = view(torch.randn(32), 0, (10_000_000, 32, 1, 1), (0, 1, 1, 1))
    state = state_with(model, decode_head__cls_seg__weight=weight,
                       decode_head__cls_seg__bias=torch.zeros(10_000_000))  # fmt: skip
    path = tmp_path / "wide.pth"
    torch.save({"state_dict": state}, path)
    start = time.monotonic()
    with pytest.raises(
        CheckpointError, match=r"decode_head\.cls_seg\.weight is a view that repeats"
    ):
        load_model(path)
    assert time.monotonic() - start < 5.0


def test_tensor_elements_are_counted_by_the_sizes_views_claim(tmp_path, monkeypatch):
    path = tmp_path / "wide.pth"
    torch.save({"w": view(torch.ones(1), 0, (1000, 1000), (0, 0))}, path)
    monkeypatch.setenv("SCASEG_MAX_TENSOR_ELEMENTS", "999999")
    with pytest.raises(BudgetError, match=r"its tensors needs 1,000,000 elements"):
        read_state_dict(path)


@pytest.mark.parametrize(
    ("elements", "error", "words"),
    [
        (250_000, CheckpointError, "claim 1,000,000 bytes but only 52 bytes follow"),
        (2**31 - 1, BudgetError, r"storage \d+ needs 8,589,934,588 bytes"),
    ],
)
def test_legacy_storages_cannot_claim_more_bytes_than_the_file_holds(
    tmp_path, elements, error, words
):
    """The pre-zip format allocates every storage before reading it: the claim is checked."""
    path = tmp_path / "legacy.pth"
    torch.save(OrderedDict(w=torch.ones(4)), path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    # The persistent id ("storage", FloatStorage, key, "cpu", 4, None): edit its element count.
    assert data.count(b"cpuq\x07K\x04N") == 1
    path.write_bytes(
        data.replace(b"cpuq\x07K\x04N", b"cpuq\x07J" + struct.pack("<i", elements) + b"N")
    )
    with pytest.raises(error, match=words):
        read_state_dict(path)
