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
    assert {loc for _, loc in external_data(path)} == {"../secret.bin"}  # If: in both branches
    with pytest.raises(MetaError, match=r"climbs out with '\.\.'.*model's own folder"):
        check_external_data(path)


def test_agrees_with_onnx_on_a_model_saved_with_external_data(tmp_path):
    tiny = build_tiny_model(tmp_path / "tiny.onnx")
    model = onnx.load(str(tiny))
    onnx.save(model, str(tiny), save_as_external_data=True, location="tiny.data", size_threshold=0)
    ours = sorted(external_data(tiny))
    reloaded = onnx.load(str(tiny), load_external_data=False)
    theirs = sorted(
        (t.name, {e.key: e.value for e in t.external_data}["location"])
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
        ("missing.bin", "missing from"),
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


def test_not_protobuf_is_left_to_the_loader(tmp_path):
    bad = tmp_path / "text.onnx"
    bad.write_text("hello, this is not an ONNX model\n" * 10)
    assert check_external_data(bad) == []
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert check_external_data(empty) == []
    cut = build_tiny_model(tmp_path / "cut.onnx")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # truncated mid-message
    assert check_external_data(cut) == []


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
