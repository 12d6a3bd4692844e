"""torch.save zip archives: members are bounded by what their headers declare, checked before
anything is inflated; zip-level damage is one clear CheckpointError."""

from __future__ import annotations

import zipfile

import pytest
import torch

from runtime.errors import BudgetError
from scaseg.checkpoint import CheckpointError, load_model, read_state_dict
from tests.scaseg.hostile_checkpoints import (
    declare_size,
    rewrite_zip,
    storage_member,
    tiny_mmengine,
)

pytest.importorskip("mmengine")

CLS_BIAS_BYTES = 3 * 4  # decode_head.cls_seg.bias: 3 float32


def test_a_deflated_member_over_its_budget_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    """2 MB of zeros deflate to 2 kB: the size the header declares is what counts."""
    src = tiny_mmengine(tmp_path)
    member = storage_member(src, CLS_BIAS_BYTES)
    bomb = rewrite_zip(src, tmp_path / "bomb.pth",
                       lambda name, data: bytes(2_000_000) if name == member else None,
                       deflate=member)  # fmt: skip
    assert bomb.stat().st_size < src.stat().st_size + 3_000
    inflated = []
    real_read = zipfile.ZipExtFile.read
    monkeypatch.setattr(zipfile.ZipExtFile, "read",
                        lambda self, n=-1: inflated.append(self.name) or real_read(self, n))  # fmt: skip
    monkeypatch.setenv("SCASEG_MAX_ZIP_MEMBER_BYTES", "1000000")
    with pytest.raises(BudgetError) as err:
        read_state_dict(bomb)
    message = str(err.value)
    assert "bomb.pth" in message and member in message and "2,000,000 bytes" in message
    assert "SCASEG_MAX_ZIP_MEMBER_BYTES" in message and "\n" not in message
    assert member not in inflated  # refused from its header alone


def test_members_unpacking_past_the_checkpoint_budget_are_refused(tmp_path, monkeypatch):
    src = tiny_mmengine(tmp_path)
    member = storage_member(src, CLS_BIAS_BYTES)
    bomb = rewrite_zip(src, tmp_path / "bomb.pth",
                       lambda name, data: bytes(20_000_000) if name == member else None,
                       deflate=member)  # fmt: skip
    monkeypatch.setenv("SCASEG_MAX_CHECKPOINT_BYTES", str(bomb.stat().st_size + 10_000))
    with pytest.raises(
        BudgetError, match=r"zip members unpacked needs [\d,]+ bytes.*CHECKPOINT_BYTES"
    ):
        read_state_dict(bomb)


def test_a_zip_directory_of_too_many_entries_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    src = tiny_mmengine(tmp_path)
    monkeypatch.setenv("SCASEG_MAX_ZIP_ENTRIES", "50")
    with pytest.raises(BudgetError, match=r"zip directory needs [\d,]+ entries.*ZIP_ENTRIES"):
        read_state_dict(src)


def test_a_deflated_checkpoint_within_budget_loads_exactly(tmp_path):
    """Zip tools may recompress an archive: that is allowed, and reads the same weights."""
    src = tiny_mmengine(tmp_path)
    packed = rewrite_zip(src, tmp_path / "deflated.pth", lambda name, data: None, deflate="")
    with zipfile.ZipFile(packed) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    model, _ = load_model(packed)
    want, _ = read_state_dict(src)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in want.items())


def test_a_storage_longer_than_its_record_is_refused(tmp_path):
    src = tiny_mmengine(tmp_path)
    member = storage_member(src, CLS_BIAS_BYTES)
    edited = rewrite_zip(src, tmp_path / "long.pth",
                         lambda name, data: data + bytes(4) if name == member else None)  # fmt: skip
    with pytest.raises(CheckpointError, match=r"holds 16 bytes, but its record says 12"):
        read_state_dict(edited)


def test_corrupt_deflate_data_is_one_clear_error(tmp_path):
    src = tiny_mmengine(tmp_path)
    member = storage_member(src, CLS_BIAS_BYTES)
    bad = rewrite_zip(src, tmp_path / "bad.pth",
                      lambda name, data: bytes(range(256)) * 64 if name == member else None,
                      deflate=member)  # fmt: skip
    with zipfile.ZipFile(bad) as archive:
        info = archive.getinfo(member)
    data = bytearray(bad.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start : start + 8] = b"\xff" * 8  # an invalid deflate block header
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*bad\.pth") as err:
        read_state_dict(bad)
    assert "\n" not in str(err.value)


def test_a_storage_that_inflates_past_its_record_is_refused_before_inflating(tmp_path, monkeypatch):
    src = tiny_mmengine(tmp_path)
    member = storage_member(src, CLS_BIAS_BYTES)
    bomb = rewrite_zip(src, tmp_path / "bomb.pth",
                       lambda name, data: bytes(20_000_000) if name == member else None,
                       deflate=member)  # fmt: skip
    inflated = []
    real_read = zipfile.ZipExtFile.read
    monkeypatch.setattr(zipfile.ZipExtFile, "read",
                        lambda self, n=-1: inflated.append(self.name) or real_read(self, n))  # fmt: skip
    with pytest.raises(CheckpointError, match=r"holds 20,000,000 bytes, but its record says 12"):
        read_state_dict(bomb)
    assert member not in inflated


@pytest.mark.parametrize("member", ["archive/data.pkl", "archive/byteorder"])
def test_a_header_claiming_more_than_the_file_holds_allocates_nothing(tmp_path, member):
    import tracemalloc

    path = declare_size(tiny_mmengine(tmp_path), member, 1_700_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"claims 1,700,000,000 bytes in a file of"):
            read_state_dict(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000_000
