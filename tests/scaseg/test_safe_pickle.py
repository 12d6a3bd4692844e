"""The restricted unpickler: tensors come back exactly, anything else stays inert, code is refused."""

import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from scaseg.checkpoint import CheckpointError, load_model, read_state_dict
from scaseg.model import build_model
from scaseg.pickle_globals import Placeholder
from scaseg.safe_pickle import load_torch_pickle
from tests.support.checkpoints import Payload, payloads, save_payload_checkpoint, touch_marker

pytest.importorskip("mmengine")

PAYLOAD_GLOBALS = list(payloads(Path("unused")))  # io.open, posix.system, builtins.eval, ...


def _tensors() -> dict:
    torch.manual_seed(0)
    base = torch.randn(6, 8)
    return {
        "f32": base,
        "f16": base.half(),
        "bf16": base.bfloat16(),
        "f64": base.double(),
        "i64": torch.arange(10),
        "i32": torch.arange(10, dtype=torch.int32),
        "i8": torch.arange(-5, 5, dtype=torch.int8),
        "u8": torch.arange(10, dtype=torch.uint8),
        "bool": base > 0,
        "c64": torch.complex(base, base),
        "f8": base.to(torch.float8_e4m3fn),
        "scalar": torch.tensor(3.5),
        "transposed": base.t(),  # non-contiguous, shares base's storage
        "strided": base[::2, 1::3],
        "row": base[2],  # storage offset
        "empty": torch.zeros(0, 4),
        "param": torch.nn.Parameter(torch.ones(3)),
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_every_dtype_and_view_comes_back_exactly(tmp_path, legacy):
    source = _tensors()
    path = tmp_path / "t.pth"
    torch.save(source, path, _use_new_zipfile_serialization=not legacy)
    got, container = load_torch_pickle(path)
    assert container == ("legacy" if legacy else "zip")
    for key, want in source.items():
        have = got[key]
        assert have.dtype == want.dtype and have.shape == want.shape, key
        assert have.stride() == want.stride() and have.storage_offset() == want.storage_offset()
        exact = have.float() if key == "f8" else have  # float8 has no equal kernel
        assert torch.equal(exact, want.detach().float() if key == "f8" else want.detach()), key
    # Views share one storage, as they did when saved.
    ptr = got["f32"].untyped_storage().data_ptr()
    assert got["transposed"].untyped_storage().data_ptr() == ptr
    assert got["strided"].untyped_storage().data_ptr() == ptr


def test_unknown_classes_become_inert_placeholders(tmp_path):
    import numpy as np

    obj = {"w": torch.ones(2), "np": np.float64(0.5), "arr": np.arange(3), "od": OrderedDict(a=1),
           "set": {1, 2}, "misc": (None, True, b"x", "s", 1.5, [1])}  # fmt: skip
    torch.save(obj, tmp_path / "m.pth")
    got, _ = load_torch_pickle(tmp_path / "m.pth")
    assert isinstance(got["np"], Placeholder) and "scalar" in got["np"].global_name
    assert isinstance(got["arr"], Placeholder) and got["arr"].state is not None
    assert got["od"] == OrderedDict(a=1) and got["set"] == {1, 2}
    assert got["misc"] == (None, True, b"x", "s", 1.5, [1])


def test_payloads_are_live_when_unpickled_naively(tmp_path):
    """The refusals below mean something: each payload really runs under plain pickle."""
    for name, payload in payloads(tmp_path / "ran").items():
        marker = tmp_path / "ran"
        pickle.loads(pickle.dumps(payload, protocol=2))
        assert marker.exists(), name
        marker.unlink()


@pytest.mark.parametrize("where", ["top", "meta", "nested"])
@pytest.mark.parametrize("name", PAYLOAD_GLOBALS)
def test_code_running_payload_in_an_mmengine_checkpoint_is_refused_unrun(tmp_path, where, name):
    marker = tmp_path / "pwned"
    path = save_payload_checkpoint(build_model("tiny", 3), tmp_path / "evil.pth",
                                   payloads(marker)[name], where)  # fmt: skip
    for load in (read_state_dict, load_model):
        with pytest.raises(CheckpointError) as err:
            load(path)
        message = str(err.value)
        assert "refusing to load" in message and "evil.pth" in message
        assert name in message, message  # names the global
        assert "\n" not in message
    assert not marker.exists()


def test_other_globals_are_never_called(tmp_path):
    """A function the allow-list does not know is stubbed, not called: the checkpoint loads and
    the function's side effect never happens."""
    marker = tmp_path / "ran"
    model = build_model("tiny", 3).eval()
    path = save_payload_checkpoint(model, tmp_path / "m.pth", Payload(touch_marker, str(marker)))
    _, info = load_model(path)
    assert not marker.exists()
    assert info["format"] == "mmengine/mmseg 1.x"
    got, _ = load_torch_pickle(path)
    assert got["meta"]["note"].global_name == "tests.support.checkpoints.touch_marker"


def test_getattr_on_a_real_object_is_refused(tmp_path):
    path = tmp_path / "g.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": Payload(getattr, "text", "upper")}, path)
    with pytest.raises(CheckpointError, match=r"builtins\.getattr on a str"):
        read_state_dict(path)


def test_plain_pickle_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"state_dict": payloads(marker)["posix.system"]}, protocol=2))
    with pytest.raises(CheckpointError, match=r"refusing to load .*posix\.system"):
        read_state_dict(path)
    assert not marker.exists()


def test_a_pickled_model_object_is_not_a_state_dict(tmp_path):
    torch.save(build_model("tiny", 3), tmp_path / "whole.pth")
    with pytest.raises(CheckpointError, match=r"scaseg\.model\.SCASeg.*model\.state_dict"):
        read_state_dict(tmp_path / "whole.pth")


@pytest.mark.parametrize("protocol", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_mmengine_checkpoint_reads_under_every_pickle_protocol(tmp_path, protocol, legacy):
    from tests.support.checkpoints import CLASSES, mmengine_checkpoint

    model = build_model("tiny", 3)
    path = tmp_path / "m.pth"
    torch.save(mmengine_checkpoint(model), path, pickle_protocol=protocol,
               _use_new_zipfile_serialization=not legacy)  # fmt: skip
    state, info = read_state_dict(path)
    assert info["class_names"] == list(CLASSES)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_checkpoint_is_one_clear_error(tmp_path, legacy):
    from tests.support.checkpoints import mmengine_checkpoint

    path = tmp_path / "cut.pth"
    torch.save(mmengine_checkpoint(build_model("tiny", 3)), path,
               _use_new_zipfile_serialization=not legacy)  # fmt: skip
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint") as err:
        read_state_dict(path)
    assert "\n" not in str(err.value)


def test_state_dict_written_with_plain_pickle_loads(tmp_path):
    """pickle.dump(model.state_dict()): storages travel as nested torch.save bytes."""
    model = build_model("tiny", 3).eval()
    with open(tmp_path / "m.pkl", "wb") as f:
        pickle.dump({"state_dict": model.state_dict()}, f)
    loaded, info = load_model(tmp_path / "m.pkl")
    assert info["container"] == "pickle"
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
