"""No output of any scaseg command overwrites, removes, equals, contains or sits inside an input.

Each refused case runs the real CLI in a subprocess and must end in one `<prog>: error:` line that
names the path and says how to fix it, exit 2, no traceback, and leave every file that was there
before byte-identical (and nothing new). Allowed cases (outputs next to their inputs, a folder
scaseg wrote earlier replaced with --force) must succeed and keep what is not scaseg's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from runtime.meta import sidecar_path
from tests.support.tiny_onnx import build_tiny_model

REPO = Path(__file__).resolve().parents[1]
MODULES = {"run": "runtime.cli", "eval": "export.eval_cli", "profile": "runtime.profiling.cli",
           "export": "export.cli"}  # fmt: skip
FIX_HINT = ("choose", "remove", "pass", "give")


@dataclass(frozen=True)
class Case:
    cli: str
    setup: Callable[[Path], list[str]]  # builds the inputs in the folder -> argv (run there)
    words: tuple[str, ...]  # each must appear in the error line


def _cli(cli: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    environment.pop("SCASEG_MODEL", None)
    args = [sys.executable, "-m", MODULES[cli], *argv]
    return subprocess.run(args, cwd=cwd, capture_output=True, timeout=120, env=environment)


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file (bytes), symlink (target) and folder under root, by relative path."""
    seen: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = os.fsdecode(path.relative_to(root))
            if path.is_symlink():
                seen[key] = "-> " + os.readlink(path)
            elif path.is_dir():
                seen[key] = "folder"
            else:
                seen[key] = path.read_bytes()
    return seen


# --- inputs -----------------------------------------------------------------------------------


def _images(folder: Path, count: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        frame = np.full((64, 64, 3), 40 * i, np.uint8)
        assert cv2.imwrite(str(folder / f"f{i}.png"), frame)


def _model(tmp: Path) -> str:
    build_tiny_model(tmp / "m.fp32.onnx")
    return "m.fp32.onnx"


def _video(tmp: Path, name: str = "clip.mp4") -> str:
    writer = cv2.VideoWriter(str(tmp / name), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 64))
    for i in range(3):
        writer.write(np.full((64, 64, 3), 60 * i, np.uint8))
    writer.release()
    return name


def _glob_run(tmp: Path, *extra: str) -> list[str]:
    _images(tmp / "in")
    (tmp / "in" / "notes.txt").write_text("not scaseg's")
    return ["in/*.png", "--model", _model(tmp), *extra]


def _folder_run(tmp: Path, *extra: str) -> list[str]:
    _images(tmp / "in")
    (tmp / "in" / "notes.txt").write_text("not scaseg's")
    return ["in", "--model", _model(tmp), *extra]


def _video_run(tmp: Path, *extra: str | Callable[[Path], str]) -> list[str]:
    """The video source and model, then `extra` (callables make paths once the inputs exist)."""
    argv = [_video(tmp), "--model", _model(tmp)]
    return argv + [e(tmp) if callable(e) else e for e in extra]


def _symlink(tmp: Path, target: str, name: str) -> str:
    os.symlink(target, tmp / name)
    return name


def _hardlink(tmp: Path, target: str, name: str) -> str:
    os.link(tmp / target, tmp / name)
    return name


def _unmarked_folder(tmp: Path) -> str:
    (tmp / "other" / "sub").mkdir(parents=True)
    (tmp / "other" / "notes.txt").write_text("mine")
    (tmp / "other" / "old.png").write_bytes(b"my own picture")
    return "other"


RUN_CASES = [
    pytest.param(Case("run", lambda t: _glob_run(t, "--jsonl", "in/f0.png", "--force"),
                      ("--jsonl", "in/f0.png", "is the input")), id="run-jsonl-is-a-glob-image"),
    pytest.param(Case("run", lambda t: _glob_run(t, "--labels-out", "in", "--force"),
                      ("--labels-out", "in", "holds the input", "choose")), id="run-labels-out-holds-glob-images"),
    pytest.param(Case("run", lambda t: _folder_run(t, "--labels-out", "in", "--force"),
                      ("--labels-out", "in", "choose an output outside in/")), id="run-labels-out-is-source-folder"),
    pytest.param(Case("run", lambda t: _folder_run(t, "--labels-out", "in/labels", "--force"),
                      ("in/labels", "inside the input folder in")), id="run-labels-out-inside-source-folder"),
    pytest.param(Case("run", lambda t: _folder_run(t, "--out", "in/o.mp4"),
                      ("in/o.mp4", "inside the input folder in")), id="run-out-inside-source-folder"),
    pytest.param(Case("run", lambda t: _video_run(t, "--labels-out", ".", "--force"),
                      ("--labels-out", "holds the input")), id="run-labels-out-holds-the-video"),
    pytest.param(Case("run", lambda t: _glob_run(t, "--labels-out", _unmarked_folder(t), "--force"),
                      ("other", ".scaseg-output", "choose")), id="run-labels-out-folder-not-scaseg"),
    pytest.param(Case("run", lambda t: _video_run(t, "--out", lambda t: _symlink(t, "clip.mp4", "link.mp4"), "--force"),
                      ("link.mp4", "is the input")), id="run-out-symlink-to-the-video"),
    pytest.param(Case("run", lambda t: _video_run(t, "--out", lambda t: _hardlink(t, "clip.mp4", "hard.mp4"), "--force"),
                      ("hard.mp4", "is the input")), id="run-out-hardlink-to-the-video"),
    pytest.param(Case("run", lambda t: _video_run(t, "--jsonl", "m.fp32.onnx", "--force"),
                      ("--jsonl", "m.fp32.onnx", "is the input")), id="run-jsonl-is-the-model"),
    pytest.param(Case("run", lambda t: _video_run(t, "--jsonl", "m.fp32.onnx.json", "--force"),
                      ("m.fp32.onnx.json", "is the input")), id="run-jsonl-is-the-sidecar"),
    pytest.param(Case("run", lambda t: _folder_run(t, "--profile", "in", "--force"),
                      ("--profile", "in", "the input folder in")), id="run-profile-in-source-folder"),
    pytest.param(Case("run", lambda t: _video_run(t, "--out", "o.mp4", "--labels-out", "o.mp4"),
                      ("o.mp4", "own path")), id="run-two-outputs-one-path"),
    pytest.param(Case("run", lambda t: _video_run(t, "--labels-out", "lab", "--jsonl", "lab/s.jsonl"),
                      ("lab/s.jsonl", "inside")), id="run-output-inside-labels-folder"),
    pytest.param(Case("run", lambda t: [_video(t, "o_00001.mp4"), "--model", _model(t), "--out", "o.mp4",
                                        "--segment-minutes", "1", "--force"],
                      ("o_00001.mp4", "is the input")), id="run-segment-is-the-input"),
]  # fmt: skip


def _eval(tmp: Path, *extra: str) -> list[str]:
    from tests.support.datasets import make_mmseg

    make_mmseg(tmp / "ds")
    return [_model(tmp), "--val-data", "ds", *extra]


def _profile(tmp: Path, *extra: str) -> list[str]:
    return [_model(tmp), "--frames", "2", "--warmup", "0", "--no-png", *extra]


def _export(tmp: Path, *extra: str) -> list[str]:
    from scaseg.checkpoint import save_checkpoint
    from scaseg.model import build_model

    (tmp / "ck").mkdir(exist_ok=True)
    save_checkpoint(build_model("tiny", 8), tmp / "ck" / "tiny.safetensors", {"variant": "tiny"})
    return ["--checkpoint", "ck/tiny.safetensors", "--engines", "no", "--input-size", "64x64",
            "--verify-frames", "2", "--calib-samples", "2", "--calib-cache", "cache", *extra]  # fmt: skip


OTHER_CASES = [
    pytest.param(Case("eval", lambda t: _eval(t, "--json", "m.fp32.onnx"),
                      ("--json", "m.fp32.onnx", "is the input")), id="eval-json-is-the-model"),
    pytest.param(Case("eval", lambda t: _eval(t, "--json", "ds/eval.json"),
                      ("--json", "ds/eval.json", "inside the input folder ds")), id="eval-json-inside-val-data"),
    pytest.param(Case("profile", lambda t: (_images(t / "in"), _profile(t, "--source", "in", "--out", "in"))[1],
                      ("--out", "in", "is the input folder in")), id="profile-out-is-source-folder"),
    pytest.param(Case("profile", lambda t: (_images(t / "in"), _profile(t, "--source", "in", "--out", _symlink(t, "in", "link")))[1],
                      ("--out", "link", "is the input folder in")), id="profile-out-symlink-to-source-folder"),
    pytest.param(Case("export", lambda t: (_images(t / "in"), _export(t, "--precision", "int8", "--calib-data", "in", "--out", "in/art"))[1],
                      ("--out", "in/art", "inside the input folder in")), id="export-out-inside-calib-folder"),
    pytest.param(Case("export", lambda t: (_images(t / "in"), _export(t, "--precision", "int8", "--calib-data", "in", "--out", "art", "--calib-cache", "in/cache"))[1],
                      ("--calib-cache", "in/cache", "inside the input folder in")), id="export-calib-cache-in-calib-folder"),
    pytest.param(Case("export", lambda t: ((t / "cls").mkdir(), (t / "cls" / "x.fp32.onnx.json").write_text('["a"]'),
                                           _export(t, "--classes", "cls/x.fp32.onnx.json", "--out", "cls", "--force"))[2],
                      ("--out", "x.fp32.onnx.json", "a name scaseg writes there")), id="export-out-holds-an-input-named-like-an-artifact"),
    pytest.param(Case("export", lambda t: _export(t, "--out", "art", "--triton-repo", "ck"),
                      ("--triton-repo", "ck", "holds the input")), id="export-triton-repo-holds-checkpoint"),
    pytest.param(Case("export", lambda t: (_images(t / "in"), _export(t, "--out", "art", "--deepstream", "in/ds", "--val-data", "in", "--val-masks", "in"))[1],
                      ("--deepstream", "in/ds", "inside the input folder in")), id="export-deepstream-inside-val-data"),
    pytest.param(Case("export", lambda t: (_images(t / "in"), _export(t, "--precision", "int8", "--calib-data", "in", "--out", "art", "--sensitivity-report", "in"))[1],
                      ("--sensitivity-report", "in", "the input folder in")), id="export-sensitivity-report-in-calib-folder"),
]  # fmt: skip


@pytest.mark.parametrize("case", RUN_CASES + OTHER_CASES)
def test_output_onto_an_input_is_refused(case: Case, tmp_path):
    argv = case.setup(tmp_path)
    before = _snapshot(tmp_path)
    result = _cli(case.cli, argv, tmp_path)
    stderr = result.stderr.decode("utf-8", "replace")
    output = result.stdout.decode("utf-8", "replace") + stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, output
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    for word in case.words:
        assert word.lower() in errors[0].lower(), errors[0]
    assert any(hint in errors[0] for hint in FIX_HINT), errors[0]
    assert _snapshot(tmp_path) == before  # every input byte-identical, nothing written


# --- allowed: outputs beside their inputs, scaseg's own folder replaced -----------------------


def test_outputs_beside_glob_inputs_are_allowed(tmp_path):
    argv = _glob_run(tmp_path, "--out", "in/o.mp4", "--jsonl", "in/s.jsonl", "--labels-out",
                     "in/labels")  # fmt: skip
    images = {p.name: p.read_bytes() for p in (tmp_path / "in").glob("*.png")}
    result = _cli("run", argv, tmp_path)
    assert result.returncode == 0, result.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "in").glob("*.png")} == images
    assert sorted(p.name for p in (tmp_path / "in" / "labels").glob("*.png")) == sorted(images)


def test_force_replaces_only_what_scaseg_wrote_in_its_labels_folder(tmp_path):
    argv = _glob_run(tmp_path, "--labels-out", "labels")
    assert _cli("run", argv, tmp_path).returncode == 0
    labels = tmp_path / "labels"
    assert (labels / ".scaseg-output").is_file()
    (labels / "notes.txt").write_text("mine")
    (labels / "sub").mkdir()
    (labels / "sub" / "keep.png").write_bytes(b"mine too")
    (labels / "f0.png").write_bytes(b"stale")
    (labels / "gone.png").write_bytes(b"from an older run")
    again = _cli("run", argv, tmp_path)
    assert again.returncode == 2 and b"--force" in again.stderr  # exists: --force to replace
    forced = _cli("run", [*argv, "--force"], tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert sorted(p.name for p in labels.iterdir()) == [
        ".scaseg-output", "f0.png", "f1.png", "f2.png", "notes.txt", "sub"
    ]  # fmt: skip
    assert (labels / "f0.png").read_bytes().startswith(b"\x89PNG")
    assert (labels / "notes.txt").read_text() == "mine"
    assert (labels / "sub" / "keep.png").read_bytes() == b"mine too"


def test_export_next_to_the_checkpoint_is_allowed(tmp_path):
    result = _cli("export", _export(tmp_path, "--out", "ck"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ck" / "tiny.fp32.onnx").is_file()
    assert sidecar_path(tmp_path / "ck" / "tiny.fp32.onnx").is_file()


# --- names the terminal cannot show as typed --------------------------------------------------


def test_undecodable_output_names_work_or_are_refused_in_one_line(tmp_path):
    name = os.fsdecode(b"\xff\xfe")
    argv = _video_run(tmp_path, "--jsonl", f"{name}.jsonl", "--labels-out", name)
    result = _cli("run", argv, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / f"{name}.jsonl").is_file() and any((tmp_path / name).glob("*.png"))
    assert b"\\xff\\xfe" in result.stdout  # shown escaped in the summary
    # OpenCV takes only UTF-8 names (it crashes on others): refused before it sees one.
    video = _cli("run", [*argv[:3], "--out", f"{name}.mp4"], tmp_path)
    assert video.returncode == 2 and b"Traceback" not in video.stderr, video.stderr
    errors = [line for line in video.stderr.splitlines() if b"error:" in line]
    assert len(errors) == 1 and b"UTF-8" in errors[0], video.stderr
    assert not (tmp_path / f"{name}.mp4").exists()


def test_markup_in_output_paths_is_printed_as_typed(tmp_path):
    (tmp_path / "a[").mkdir()
    (tmp_path / "[red]x").mkdir()
    argv = _video_run(tmp_path, "--labels-out", "a[/]lab", "--jsonl", "[red]x/s.jsonl")
    result = _cli("run", argv, tmp_path)
    assert result.returncode == 0, result.stderr
    stdout = result.stdout.decode()
    assert "a[/]lab" in stdout and "[red]x/s.jsonl" in stdout
    assert "\x1b[31m" not in stdout
