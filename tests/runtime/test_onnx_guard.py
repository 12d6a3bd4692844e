"""External data of untrusted ONNX files must stay inside the model's folder (runtime.onnx_guard)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime.backends import BackendOptions, open_backend
from runtime.deps import MissingDependencyError
from runtime.errors import BudgetError
from runtime.meta import MetaError
from runtime.onnx_guard import check_external_data, external_data
from tests.support.tiny_onnx import build_tiny_model, point_at_external_data

REPO = Path(__file__).resolve().parents[2]


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.bin"
    np.arange(4, dtype=np.float32).tofile(secret)
    return secret


def _add_model(folder: Path, location: str, where: str = "initializer") -> Path:
    """A 4-element Add whose constant lives at `location`, placed as `where` says."""
    folder.mkdir(parents=True, exist_ok=True)
    weight = numpy_helper.from_array(np.ones(4, np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    if where == "initializer":
        graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y])
        graph.initializer.append(weight)
        point_at_external_data(graph.initializer[0], location)
    elif where == "constant":
        const = helper.make_node("Constant", [], ["w"], value=weight)
        point_at_external_data(const.attribute[0].t, location)
        graph = helper.make_graph(
            [const, helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y]
        )
    elif where == "if-branch":
        const = helper.make_node("Constant", [], ["w"], value=weight)
        point_at_external_data(const.attribute[0].t, location)
        wv = helper.make_tensor_value_info("w", TensorProto.FLOAT, [4])
        branch = helper.make_graph([const], "branch", [], [wv])
        cond = helper.make_node(
            "Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True])
        )
        iff = helper.make_node("If", ["c"], ["w"], then_branch=branch, else_branch=branch)
        graph = helper.make_graph(
            [cond, iff, helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y]
        )
    elif where == "sparse":
        graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y])
        values = numpy_helper.from_array(np.ones(4, np.float32), "w")
        indices = numpy_helper.from_array(np.arange(4, dtype=np.int64), "w_idx")
        graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))
        point_at_external_data(graph.sparse_initializer[0].values, location)
    else:
        raise AssertionError(where)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("where", ["initializer", "constant", "if-branch", "sparse"])
def test_finds_external_tensors_wherever_they_hide(tmp_path, where):
    path = _add_model(tmp_path / "m", "../secret.bin", where)
    assert {loc for _, loc in external_data(path)} == {b"../secret.bin"}  # If: in both branches
    with pytest.raises(MetaError, match=r"climbs out with '\.\.'.*model's own folder"):
        check_external_data(path)


def test_agrees_with_onnx_on_a_model_saved_with_external_data(tmp_path):
    tiny = build_tiny_model(tmp_path / "tiny.onnx")
    model = onnx.load(str(tiny))
    onnx.save(model, str(tiny), save_as_external_data=True, location="tiny.data", size_threshold=0)
    ours = sorted(external_data(tiny))
    reloaded = onnx.load(str(tiny), load_external_data=False)
    theirs = sorted(
        (t.name, {e.key: e.value for e in t.external_data}["location"].encode())
        for t in reloaded.graph.initializer
        if t.data_location == TensorProto.EXTERNAL
    )
    assert ours == theirs and ours, ours
    assert check_external_data(tiny) == ["tiny.data"]
    # A contained external data file is fine: the real backend loads and runs the model.
    with open_backend(tiny, options=BackendOptions(provider="cpu")) as backend:
        out = backend.infer(np.zeros(backend.meta.input.shape, np.float32))
    assert out.shape == tuple(backend.meta.output.shape)


def test_single_file_models_have_no_external_data(tmp_path):
    assert external_data(build_tiny_model(tmp_path / "tiny.onnx")) == []
    assert check_external_data(build_tiny_model(tmp_path / "fused.onnx", fused_argmax=True)) == []


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("SECRET_ABS", "absolute path"),
        ("../secret.bin", "climbs out"),
        ("sub/../../secret.bin", "climbs out"),
        ("link.bin", "outside"),
        ("missing.bin", "is missing in"),
        ("", "names no file"),
    ],
)
def test_refuses_paths_outside_the_folder(tmp_path, location, reason):
    secret = _secret(tmp_path)
    if location == "SECRET_ABS":
        location = str(secret)
    folder = tmp_path / "m"
    path = _add_model(folder, location)
    if location == "link.bin":
        os.symlink(secret, folder / "link.bin")
    with pytest.raises(MetaError, match=reason):
        check_external_data(path)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello, this is not an ONNX model\n" * 10, "not a valid ONNX model"),
        (b"", "is empty"),
        (b"\x08\x08", "holds no graph"),  # a well-formed ModelProto with only ir_version
    ],
)
def test_what_the_guard_cannot_read_is_refused(tmp_path, data, reason):
    """Refused, not waved through: a file the guard cannot parse is not checked."""
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data)
    with pytest.raises(MetaError, match=reason):
        check_external_data(bad)


def test_a_truncated_model_is_refused(tmp_path):
    cut = build_tiny_model(tmp_path / "cut.onnx")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # truncated mid-message
    with pytest.raises(MetaError, match="not a valid ONNX model"):
        check_external_data(cut)


def _escaping_bytes(tmp_path: Path) -> bytes:
    _secret(tmp_path)
    return _add_model(tmp_path / "m", "../secret.bin").read_bytes()


def test_unknown_fields_real_parsers_skip_do_not_hide_external_data(tmp_path):
    """A trailing group field (wire type 3) is legal protobuf that ONNX Runtime skips; the guard
    must read past it like the runtime does, not give up and let the file through."""
    path = tmp_path / "m" / "model.onnx"
    path.write_bytes(_escaping_bytes(tmp_path) + b"\x0b\x0c")  # field 1: start group, end group
    with pytest.raises(MetaError, match="climbs out"):
        check_external_data(path)


def _with_raw_location(tmp_path: Path, raw: bytes) -> Path:
    """A model whose external-data location is exactly these bytes (UTF-8 or not)."""
    placeholder = "L" * len(raw)
    path = _add_model(tmp_path / "m", placeholder)
    path.write_bytes(path.read_bytes().replace(placeholder.encode(), raw))
    return path


def test_a_location_that_is_not_utf8_is_refused(tmp_path):
    """b'data\\xff.bin' must not be checked as 'data\\ufffd.bin': that is another file than the
    one the runtime opens (here a harmless file, while the real name links outside)."""
    secret = _secret(tmp_path)
    path = _with_raw_location(tmp_path, b"data\xff.bin")
    folder = os.fsencode(path.parent)
    (path.parent / "data\ufffd.bin").write_bytes(b"\0" * 16)  # what errors="replace" would check
    os.symlink(os.fsencode(secret), os.path.join(folder, b"data\xff.bin"))
    with pytest.raises(MetaError, match="not valid UTF-8"):
        check_external_data(path)


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("a\\..\\..\\secret.bin", "backslash"),
        ("C:secret.bin", "drive"),
        ("a\0b.bin", "NUL"),
        ("*/_ORT_MEM_ADDR_/*", "in-memory"),
        ("./../secret.bin", "climbs out"),
        ("sub/./../../secret.bin", "climbs out"),
        ("//secret.bin", "absolute"),
    ],
)
def test_refuses_locations_other_platforms_or_runtimes_would_follow(tmp_path, location, reason):
    _secret(tmp_path)
    path = _add_model(tmp_path / "m", location)
    with pytest.raises(MetaError, match=reason):
        check_external_data(path)


def test_a_data_file_that_is_a_fifo_is_refused(tmp_path):
    path = _add_model(tmp_path / "m", "pipe.bin")
    os.mkfifo(path.parent / "pipe.bin")
    with pytest.raises(MetaError, match="is not a regular file"):
        check_external_data(path)


def test_every_location_entry_is_checked(tmp_path):
    """Two 'location' entries: runtimes differ in which one wins, so both must be safe."""
    _secret(tmp_path)
    path = _add_model(tmp_path / "m", "fine.bin")
    (path.parent / "fine.bin").write_bytes(b"\0" * 16)
    model = onnx.load(str(path), load_external_data=False)
    entry = model.graph.initializer[0].external_data.add()
    entry.key, entry.value = "location", "../secret.bin"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(MetaError, match="climbs out"):
        check_external_data(path)


def test_tensors_in_functions_and_training_graphs_are_checked(tmp_path):
    folder = tmp_path / "m"
    path = _add_model(folder, "fine.bin")
    (folder / "fine.bin").write_bytes(b"\0" * 16)
    model = onnx.load(str(path), load_external_data=False)
    const = helper.make_node(
        "Constant", [], ["c"], value=numpy_helper.from_array(np.ones(4, np.float32))
    )
    point_at_external_data(const.attribute[0].t, "../secret.bin")
    function = helper.make_function(
        "local", "F", ["x"], ["c"], [const], [helper.make_opsetid("", 17)]
    )
    with_function = onnx.ModelProto()
    with_function.CopyFrom(model)
    with_function.functions.append(function)
    path.write_bytes(with_function.SerializeToString())
    with pytest.raises(MetaError, match="climbs out"):
        check_external_data(path)
    training = onnx.ModelProto()
    training.CopyFrom(model)
    info = training.training_info.add()
    info.algorithm.CopyFrom(helper.make_graph([const], "train", [], []))
    path.write_bytes(training.SerializeToString())
    with pytest.raises(MetaError, match="climbs out"):
        check_external_data(path)


def test_graph_nesting_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("SCASEG_MAX_METADATA_DEPTH", "1")
    path = _add_model(tmp_path / "m", "fine.bin", "if-branch")  # one If: two levels of graph
    (path.parent / "fine.bin").write_bytes(b"\0" * 16)
    with pytest.raises(BudgetError, match="SCASEG_MAX_METADATA_DEPTH"):
        check_external_data(path)


def test_model_and_data_size_is_bounded_before_reading(tmp_path, monkeypatch):
    tiny = build_tiny_model(tmp_path / "tiny.onnx")
    model = onnx.load(str(tiny))
    onnx.save(model, str(tiny), save_as_external_data=True, location="tiny.data", size_threshold=0)
    data_bytes = (tmp_path / "tiny.data").stat().st_size
    monkeypatch.setenv("SCASEG_MAX_ONNX_BYTES", str(tiny.stat().st_size + data_bytes - 1))
    with pytest.raises(BudgetError, match="SCASEG_MAX_ONNX_BYTES"):
        check_external_data(tiny)
    monkeypatch.setenv("SCASEG_MAX_ONNX_BYTES", str(tiny.stat().st_size - 1))
    with pytest.raises(BudgetError, match="SCASEG_MAX_ONNX_BYTES"):
        check_external_data(tiny)


def test_without_the_onnx_package_the_guard_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(MissingDependencyError, match="onnx is needed to check an ONNX model"):
        check_external_data(build_tiny_model(tmp_path / "tiny.onnx"))


def test_backend_refuses_before_onnx_runtime_reads_anything(tmp_path, monkeypatch):
    """The guard runs before the session: ONNX Runtime is never handed the file."""
    (tmp_path / "m").mkdir()
    tiny = build_tiny_model(tmp_path / "m" / "tiny.onnx")
    model = onnx.load(str(tiny))
    point_at_external_data(model.graph.initializer[0], "../secret.bin")
    tiny.write_bytes(model.SerializeToString())
    import onnxruntime

    def _forbidden(*args, **kwargs):
        raise AssertionError("InferenceSession was created for a model the guard must refuse")

    monkeypatch.setattr(onnxruntime, "InferenceSession", _forbidden)
    with pytest.raises(MetaError, match="refusing to load"):
        open_backend(tiny, options=BackendOptions(provider="cpu"))


def test_scaseg_run_refuses_with_one_line(tmp_path):
    _secret(tmp_path)
    folder = tmp_path / "m"
    folder.mkdir()
    tiny = build_tiny_model(folder / "tiny.onnx")
    model = onnx.load(str(tiny))
    point_at_external_data(model.graph.initializer[0], "../secret.bin")
    tiny.write_bytes(model.SerializeToString())
    frame = tmp_path / "frame.png"
    import cv2

    cv2.imwrite(str(frame), np.zeros((32, 32, 3), np.uint8))
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-m", "runtime.cli", str(frame), "--model", str(tiny), "--out",
         str(tmp_path / "out.png")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "../secret.bin" in errors[0], result.stderr
    assert not (tmp_path / "out.png").exists()


def _scaseg_run(tmp_path: Path, model: Path) -> subprocess.CompletedProcess:
    import cv2

    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.zeros((32, 32, 3), np.uint8))
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", str(frame), "--model", str(model), "--out",
         str(tmp_path / "out.png")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_scaseg_run_refuses_a_non_utf8_location_with_one_line(tmp_path):
    """The file the runtime would open (data\\xff.bin) links outside the folder: exit 2, one
    line, and nothing written, whichever ONNX Runtime release is installed."""
    folder = tmp_path / "m"
    folder.mkdir()
    tiny = build_tiny_model(folder / "tiny.onnx")
    model = onnx.load(str(tiny))
    point_at_external_data(model.graph.initializer[0], "L" * 9)
    tiny.write_bytes(model.SerializeToString().replace(b"L" * 9, b"data\xff.bin"))
    (folder / "data\ufffd.bin").write_bytes(b"\0" * 4096)
    os.symlink(os.fsencode(_secret(tmp_path)), os.path.join(os.fsencode(folder), b"data\xff.bin"))
    result = _scaseg_run(tmp_path, tiny)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "not valid UTF-8" in errors[0], result.stderr
    assert not (tmp_path / "out.png").exists()
