"""The output-path rule: what is refused, what is allowed, and how inputs are expanded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.errors import BudgetError, UnsafePathError
from runtime.io.input_paths import file_inputs, folder_inputs, source_inputs
from runtime.io.output_paths import check_outputs, files_in, output_file, output_folder
from runtime.text import shown


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    """in/f0.png, in/f1.png, in/sub/f2.png, ck/m.pth, notes.txt; the cwd is tmp_path."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("in/f0.png", "in/f1.png", "in/sub/f2.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "m.pth").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _out(kind: str, path: str, flag: str, names: tuple[str, ...] = ()):
    """An output built in the tree (the rule resolves paths when it is built)."""
    if kind == "file":
        return output_file(path, flag)
    return output_folder(path, flag) if kind == "folder" else files_in(path, names, flag)


REFUSED = [
    ("in/*.png", ("file", "in/f0.png", "--jsonl"), "is the input in/f0.png"),
    ("in/*.png", ("folder", "in", "--labels-out"), "holds the input"),
    ("in/*.png", ("folder", ".", "--labels-out"), "holds the input"),
    ("in", ("file", "in/o.mp4", "--out"), "inside the input folder in"),
    ("in", ("folder", "in/sub/labels", "--labels-out"), "inside the input folder in"),
    ("in", ("files", "in", "--profile", ("profile.json",)), "is the input folder in"),
    ("in/*/*.png", ("folder", "in/labels", "--labels-out"), "inside the input folder in"),
    ("in/**/*.png", ("file", "in/sub/f2.png", "--jsonl"), "is the input"),
    ("in/f0.png", ("folder", "in", "--labels-out"), "holds the input in/f0.png"),
]


@pytest.mark.parametrize(("source", "output", "words"), REFUSED)
def test_refused(tree, source, output, words):
    with pytest.raises(UnsafePathError, match="choose") as err:
        check_outputs(source_inputs(source, "SOURCE"), [_out(*output)])
    assert words in str(err.value)


ALLOWED = [
    ("in/*.png", ("file", "in/o.mp4", "--out")),  # beside the images, not one of them
    ("in/*.png", ("folder", "in/labels", "--labels-out")),  # a new folder beside them
    ("in/f0.png", ("file", "in/o.mp4", "--out")),
    ("in", ("file", "o.mp4", "--out")),
    ("in", ("files", ".", "--profile", ("profile.json",))),  # named files, never cleared
    ("0", ("file", "0.mp4", "--out")),  # a camera index reads no file
    ("rtsp://cam/stream", ("folder", "labels", "--labels-out")),
]


@pytest.mark.parametrize(("source", "output"), ALLOWED)
def test_allowed(tree, source, output):
    check_outputs(source_inputs(source, "SOURCE"), [_out(*output)])


def test_export_beside_its_checkpoint_but_not_over_a_name_it_writes(tree):
    checkpoint = file_inputs("ck/m.pth", "--checkpoint")
    artifacts = files_in("ck", ["*.fp32.onnx", "*.fp32.onnx.json"], "--out")
    check_outputs(checkpoint, [artifacts])
    (tree / "ck" / "x.fp32.onnx.json").write_text("[]")
    with pytest.raises(UnsafePathError, match="a name scaseg writes there"):
        check_outputs(file_inputs("ck/x.fp32.onnx.json", "--classes"), [artifacts])


def test_symlinks_and_hard_links_are_the_same_file(tree):
    os.symlink("in", tree / "link")
    os.link(tree / "in" / "f0.png", tree / "hard.png")
    images = source_inputs("in/*.png", "SOURCE")
    with pytest.raises(UnsafePathError, match="is the input"):
        check_outputs(images, [output_file("hard.png", "--jsonl")])
    with pytest.raises(UnsafePathError, match="holds the input"):
        check_outputs(images, [output_folder("link", "--labels-out")])
    with pytest.raises(UnsafePathError, match="inside the input folder"):
        check_outputs(folder_inputs("in", "--val-data"), [output_file("link/x.json", "--json")])


def test_two_outputs_never_share_a_path(tree):
    with pytest.raises(UnsafePathError, match="own path"):
        check_outputs([], [output_file("o.mp4", "--out"), output_file("o.mp4", "--jsonl")])
    with pytest.raises(UnsafePathError, match="inside the --labels-out folder"):
        check_outputs([], [output_folder("lab", "--labels-out"), output_file("lab/s", "--jsonl")])
    shared = [files_in("art", ["*.onnx"], "--out"), files_in("art", ["labels.txt"], "--ds")]
    check_outputs([], shared)  # one folder, different names


def test_a_list_file_and_the_files_it_lists_are_inputs(tree):
    (tree / "list.txt").write_text("# frames\nin/f1.png\n\nmissing.png\n")
    inputs = source_inputs("list.txt", "--calib-data", lists=True)
    assert [i.path for i in inputs] == ["list.txt", str(Path("in/f1.png"))]
    with pytest.raises(UnsafePathError, match="is the input"):
        check_outputs(inputs, [output_file("in/f1.png", "--jsonl")])
    as_source = source_inputs("list.txt", "SOURCE")  # scaseg-run reads no lists
    assert [i.path for i in as_source] == ["list.txt"]


def test_globs_are_expanded_within_the_folder_entries_budget(tree, monkeypatch):
    monkeypatch.setenv("SCASEG_MAX_FOLDER_ENTRIES", "1")
    with pytest.raises(BudgetError, match="SCASEG_MAX_FOLDER_ENTRIES"):
        source_inputs("in/*.png", "SOURCE")


def test_shown_paths_are_printable():
    assert shown(os.fsdecode(b"a\xffb")) == "a\\xffb"
    assert shown("x\ny\x1b[31m") == "x\\ny\\x1b[31m"
    assert shown("[red]/ok") == "[red]/ok"  # markup is escaped by whoever prints with markup


def test_a_model_brings_its_sidecar_and_external_data(tmp_path):
    onnx = pytest.importorskip("onnx")
    from runtime.io.input_paths import model_inputs
    from tests.support.tiny_onnx import build_tiny_model

    tiny = build_tiny_model(tmp_path / "tiny.onnx")
    model = onnx.load(str(tiny))
    onnx.save(model, str(tiny), save_as_external_data=True, location="tiny.data", size_threshold=0)
    inputs = model_inputs(tiny)
    assert [Path(i.path).name for i in inputs] == ["tiny.onnx", "tiny.onnx.json", "tiny.data"]
    with pytest.raises(UnsafePathError, match=r"--jsonl .*tiny\.data is the input"):
        check_outputs(inputs, [output_file(tmp_path / "tiny.data", "--jsonl")])
    check_outputs(inputs, [output_file(tmp_path / "o.mp4", "--out")])  # beside the model: fine
