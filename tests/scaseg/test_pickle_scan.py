"""A checkpoint's pickle opcodes are checked before the C unpickler runs them: lengths, memo
indices, nesting and edits of tensors that torch.save never writes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from runtime.errors import BudgetError
from scaseg.checkpoint import CheckpointError, load_model, read_state_dict
from scaseg.model import build_model
from tests.scaseg.hostile_checkpoints import state_with
from tests.support.checkpoints import mmengine_checkpoint

pytest.importorskip("mmengine")

REPO = Path(__file__).resolve().parents[2]
PROTO2 = b"\x80\x02"


def _pickle(tmp_path: Path, ops: bytes, name: str = "hostile.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(ops)
    return path


def test_a_dict_key_of_a_million_nested_tuples_is_refused_not_a_crash(tmp_path):
    """Hashing it recurses in C until the interpreter dies (a segfault, no exception): 1 MB of
    TUPLE1 opcodes. Run in a child process, so a regression fails this test only."""
    path = _pickle(tmp_path, PROTO2 + b"}q\x00)" + b"\x85" * 1_000_000 + b"K\x01s.")
    code = (
        "import sys\nfrom runtime.errors import BudgetError\n"
        "from scaseg.checkpoint import read_state_dict\n"
        f"try:\n    read_state_dict({str(path)!r})\n"
        "except BudgetError as err:\n    print('refused:', err)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env=env, cwd=REPO)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused:" in result.stdout and "SCASEG_MAX_METADATA_DEPTH" in result.stdout


@pytest.mark.parametrize(
    ("ops", "error", "words"),
    [
        # LONG_BINPUT 0xfffffff0: the C unpickler resizes its memo table to twice that.
        (PROTO2 + b"K\x01r\xf0\xff\xff\xff.", CheckpointError, "memo index 4294967280 out of order"),
        # BINUNICODE8 claiming a terabyte: read(n) allocates n before reading.
        (PROTO2 + b"\x8d" + (1 << 40).to_bytes(8, "little") + b"abc.", BudgetError,
         "needs 1,099,511,627,776 bytes"),
        # BINBYTES8 of 100 MB, a FRAME of 2**40: the same, through other opcodes.
        (PROTO2 + b"\x8e" + (100 << 20).to_bytes(8, "little") + b"abc.", BudgetError,
         "needs 104,857,600 bytes"),
        (b"\x80\x04\x95" + (1 << 40).to_bytes(8, "little") + b"K\x01.", BudgetError,
         "needs 1,099,511,627,776 bytes"),
        # EXT1: a global looked up in copyreg's extension registry, never written by torch.
        (PROTO2 + b"\x82\x01.", CheckpointError, "opcode EXT1"),
        # STACK_GLOBAL of a name computed by the pickle instead of written in it.
        (b"\x80\x04\x8c\x08builtins\x8c\x03str\x93K\x01\x85R\x8c\x03len\x93.", CheckpointError,
         "STACK_GLOBAL of names that are not plain text"),
        (PROTO2 + b"K\x01K\x02.", CheckpointError, "malformed pickle"),  # two objects, one STOP
        (PROTO2 + b"K\x01", CheckpointError, "truncated"),
    ],
    ids=["memo", "string-length", "bytes-length", "frame", "ext", "computed-global", "extra",
         "no-stop"],
)  # fmt: skip
def test_stream_claims_are_checked_before_the_unpickler_trusts_them(tmp_path, ops, error, words):
    with pytest.raises(error, match=words) as err:
        read_state_dict(_pickle(tmp_path, ops))
    assert "\n" not in str(err.value)


class _Built:
    """Pickles as a tensor rebuilt by torch, then BUILD with `state`: Tensor.__setstate__ then
    calls set_(*state), which re-points the tensor (and grows the storage it names)."""

    def __init__(self, base: torch.Tensor, state: tuple) -> None:
        self.base, self.state = base, state

    def __reduce__(self):
        func, args = self.base.__reduce_ex__(2)
        return func, args, self.state


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_build_on_a_tensor_is_refused_it_would_grow_a_storage(tmp_path, legacy):
    model = build_model("tiny", 3)
    other = torch.zeros(1)
    bias = _Built(torch.zeros(3), (other, 0, (3,), (1,)))
    state = state_with(model, decode_head__cls_seg__bias=bias, decode_head__extra=other)
    path = tmp_path / "built.pth"
    torch.save({"state_dict": state}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError, match="BUILD on a tensor after it was built"):
        load_model(path)


def test_pickles_with_more_opcodes_than_the_budget_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "m.pth"
    torch.save(mmengine_checkpoint(build_model("tiny", 3)), path)
    monkeypatch.setenv("SCASEG_MAX_METADATA_ITEMS", "1000")
    with pytest.raises(BudgetError, match=r"its pickle \(opcodes\) needs 1,001 items"):
        read_state_dict(path)


def test_every_opcode_torch_and_mmengine_write_passes(tmp_path):
    """The scan knows the legitimate streams: each protocol, zip and legacy, plain pickle."""
    import pickle

    model = build_model("tiny", 3)
    checkpoint = mmengine_checkpoint(model)
    checkpoint["meta"]["misc"] = [{1, 2}, frozenset({3}), b"\x00\xff", bytearray(b"ab"), 1.5,
                                  10**30, -5, None, True, ("t", OrderedDict(a=[]))]  # fmt: skip
    for protocol in (0, 1, 2, 3, 4, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps({"state_dict": model.state_dict(), "meta": checkpoint["meta"]},
                                      protocol=protocol))  # fmt: skip
        state, _ = read_state_dict(path)
        assert torch.equal(state["decode_head.cls_seg.bias"], model.decode_head.cls_seg.bias)
