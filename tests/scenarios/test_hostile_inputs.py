"""Hostile input through the real CLIs: each crafted file or argument must end in one error line
with the right exit code (or a clean success where the input is odd but valid), in bounded time
and memory, with every input byte-identical afterwards and nothing partial at the outputs.

Each CLI runs in a subprocess under an address-space limit, so an allocation the file asks for
ends as a MemoryError (exit 1, a failed case) instead of taking the machine, and a segfault shows
as a negative return code. Budgets are lowered through their SCASEG_MAX_* variables where the
default would make the test itself expensive; the check under test is the same.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import resource
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from runtime.meta import sidecar_path
from tests.support.tiny_onnx import build_tiny_model

REPO = Path(__file__).resolve().parents[2]
MODULES = {"export": "export.cli", "eval": "export.eval_cli", "run": "runtime.cli"}
ADDRESS_SPACE = 6 << 30  # torch + onnxruntime + OpenVINO import well below this
TIMEOUT_S = 90
FIX_HINT = re.compile(
    r"\b(pass|give|choose|re-export|re-download|re-save|rebuild|use|put|keep|create|resize|copy|"
    r"free|raise|rename|edit|remove|expected|is not one of|should be)\b"
)


@dataclass(frozen=True)
class Hostile:
    cli: str
    setup: Callable[[Path, dict], list[str]]  # (folder, shared files) -> argv; writes inputs
    code: int | tuple[int, ...]  # 0 = handled: odd but valid input succeeds
    words: tuple[str, ...] = ()  # must appear in the error line (case-insensitive)
    outputs: tuple[str, ...] = ()  # must not exist (or be an empty folder) after a refusal
    env: dict = field(default_factory=dict)


# --- shared real files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> dict:
    from scaseg.checkpoint import save_checkpoint
    from scaseg.model import build_model
    from scenes import write_scene_video

    folder = tmp_path_factory.mktemp("hostile-shared")
    ckpt = folder / "tiny.safetensors"
    info = {"variant": "tiny", "num_classes": 3, "class_names": ["road", "car", "person"],
            "palette_rgb": [[128, 64, 128], [0, 0, 142], [220, 20, 60]]}  # fmt: skip
    save_checkpoint(build_model("tiny", 3), ckpt, info)
    video = folder / "clip.mp4"
    write_scene_video(video, 0, 64, 64, 3)
    return {"ckpt": ckpt, "onnx": build_tiny_model(folder / "tiny.fp32.onnx"), "video": video}


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    if sidecar_path(src).exists():
        sidecar_path(dst).write_text(sidecar_path(src).read_text())
    return dst


def _model(folder: Path, s: dict, name: str, data: bytes | None = None, **edit) -> str:
    """The tiny model (or `data`) with an edited sidecar; other bytes drop the artifact hash so
    the check under test fires, not the hash check."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(s["onnx"].read_bytes() if data is None else data)
    meta = json.loads(sidecar_path(s["onnx"]).read_text())
    if data is not None:
        meta["hashes"].pop("artifact", None)
    for key, value in edit.items():
        if isinstance(value, dict):
            meta[key] = {**meta[key], **value}
        else:
            meta[key] = value
    sidecar_path(path).write_text(json.dumps(meta))
    return name


def _pngs(folder: Path, count: int = 2, size: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"f{i}.png"
        _, data = cv2.imencode(".png", rng.integers(0, 255, (size, size, 3), np.uint8))
        path.write_bytes(data.tobytes())
        paths.append(path)
    return paths


def _png_claiming(width: int, height: int, depth: int = 16, colour: int = 6) -> bytes:
    """A tiny PNG whose header claims width x height (16-bit RGBA by default)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- checkpoints ------------------------------------------------------------------------------


def _state(s: dict) -> dict:
    from scaseg.checkpoint import read_state_dict

    return read_state_dict(s["ckpt"])[0]


def _torch_save(path: Path, obj) -> str:
    import torch

    torch.save(obj, path)
    return path.name


class _View:
    """Pickles as a tensor view of `storage` with the given offset, size and stride."""

    def __init__(self, storage, offset: int, size: tuple, stride: tuple) -> None:
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        import torch

        storage, offset, size, stride = self.args
        return (torch._utils._rebuild_tensor_v2,
                (storage, offset, size, stride, False, collections.OrderedDict()))  # fmt: skip


def _view_past_storage(folder: Path, s: dict) -> list[str]:
    import torch

    state = dict(_state(s))
    key = "decode_head.cls_seg.bias"
    small = torch.zeros(2).untyped_storage()  # 8 bytes; the view claims 3 floats at offset 1
    state[key] = _View(torch.storage.TypedStorage(wrap_storage=small, dtype=torch.float32,
                                                  _internal=True), 1, (3,), (1,))  # fmt: skip
    return _export(_torch_save(folder / "view.pth", {"state_dict": state}))


def _stride0_classes(folder: Path, s: dict) -> list[str]:
    import torch

    state = dict(_state(s))
    w = state["decode_head.cls_seg.weight"]
    storage = torch.zeros(w.shape[1]).untyped_storage()
    typed = torch.storage.TypedStorage(wrap_storage=storage, dtype=torch.float32, _internal=True)
    n = 10_000_000
    state["decode_head.cls_seg.weight"] = _View(typed, 0, (n, w.shape[1], 1, 1), (0, 1, 1, 1))
    bias = torch.storage.TypedStorage(wrap_storage=torch.zeros(1).untyped_storage(),
                                      dtype=torch.float32, _internal=True)  # fmt: skip
    state["decode_head.cls_seg.bias"] = _View(bias, 0, (n,), (0,))
    return _export(_torch_save(folder / "stride0.pth", {"state_dict": state}))


def _zip_bomb(folder: Path, s: dict) -> list[str]:
    import torch

    plain = folder / "plain.pth"
    torch.save({"state_dict": {"w": torch.zeros(8_000_000)}}, plain)  # a 32 MB storage
    bomb = folder / "bomb.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w") as dst:
        for item in src.infolist():
            dst.writestr(item.filename, src.read(item.filename), zipfile.ZIP_DEFLATED)
    plain.unlink()
    assert bomb.stat().st_size < 1_000_000
    return _export(bomb.name)


def _huge_bytearray(folder: Path, s: dict) -> list[str]:
    # GLOBAL builtins.bytearray, LONG1 5_000_000_000, TUPLE1, REDUCE, STOP: 35 bytes asking 5 GB
    payload = (b"\x80\x02c__builtin__\nbytearray\n\x8a\x05" + (5_000_000_000).to_bytes(5, "little")
               + b"\x85R.")  # fmt: skip
    (folder / "alloc.pth").write_bytes(payload)
    return _export("alloc.pth")


def _edited_ckpt(folder: Path, s: dict, name: str, state=None, **info_edit) -> str:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(s["ckpt"]), framework="pt") as f:
        meta = f.metadata()
    info = {**json.loads(meta["scaseg"]), **info_edit}
    state = _state(s) if state is None else state
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / name),
              {**meta, "scaseg": json.dumps(info)})  # fmt: skip
    return name


def _all_nan(folder: Path, s: dict) -> list[str]:
    state = {k: v.float().fill_(float("nan")) if v.is_floating_point() else v
             for k, v in _state(s).items()}  # fmt: skip
    return _export(_edited_ckpt(folder, s, "nan.safetensors", state))


def _export(ckpt: str, *extra: str) -> list[str]:
    return ["--checkpoint", ckpt, "--out", "out", "--engines", "no", "--calib-cache", "cache",
            "--input-size", "64x64", "--precision", "fp32", "--verify-frames", "2", *extra]  # fmt: skip


# --- cases ------------------------------------------------------------------------------------


def _glob_jsonl_over_input(folder: Path, s: dict) -> list[str]:
    _pngs(folder / "in")
    return ["in/*.png", "--model", str(_copy(s["onnx"], folder / "m.onnx")), "--jsonl",
            "in/f0.png", "--force"]  # fmt: skip


def _labels_out_is_input_folder(folder: Path, s: dict) -> list[str]:
    _pngs(folder / "in")
    (folder / "in" / "notes.txt").write_text("not scaseg's\n")
    return ["in", "--model", str(_copy(s["onnx"], folder / "m.onnx")), "--labels-out", "in",
            "--force"]  # fmt: skip


def _labels_out_holds_unrelated(folder: Path, s: dict) -> list[str]:
    _pngs(folder / "in")
    (folder / "labels").mkdir()
    (folder / "labels" / "thesis.tex").write_text("years of work\n")
    return ["in", "--model", str(_copy(s["onnx"], folder / "m.onnx")), "--labels-out", "labels",
            "--force"]  # fmt: skip


def _group_wire_escape(folder: Path, s: dict) -> list[str]:
    """External data at '../secret.bin', then a group (wire type 3/4) appended: legal protobuf."""
    import onnx

    (folder / "secret.bin").write_bytes(b"\x01" * 4096)
    model = onnx.load(str(s["onnx"]))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("offset", "0")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    data = model.SerializeToString() + b"\x9b\x06\x9c\x06"  # field 99: start group, end group
    _pngs(folder / "in", 1)
    return ["in", "--model", _model(folder, s, "models/escape.onnx", data), "--out", "o.mp4"]


def _non_utf8_location(folder: Path, s: dict) -> list[str]:
    import onnx

    model = onnx.load(str(s["onnx"]))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "PLACEHOLDER"
    data = model.SerializeToString().replace(b"PLACEHOLDER", b"..\xff/secret.b")
    _pngs(folder / "in", 1)
    return ["in", "--model", _model(folder, s, "models/bad.onnx", data), "--out", "o.mp4"]


def _sidecar(edit: dict, name: str = "m.onnx") -> Callable[[Path, dict], list[str]]:
    def setup(folder: Path, s: dict) -> list[str]:
        _pngs(folder / "in", 1)
        return ["in", "--model", _model(folder, s, name, **edit), "--out", "o.mp4"]

    return setup


def _nested_sidecar(folder: Path, s: dict) -> list[str]:
    name = _model(folder, s, "m.onnx")
    text = sidecar_path(folder / name).read_text()
    deep = "[" * 100_000 + "]" * 100_000
    sidecar_path(folder / name).write_text(text[:-1].rstrip().rstrip("}") + f', "x": {deep}}}')
    _pngs(folder / "in", 1)
    return ["in", "--model", name, "--out", "o.mp4"]


def _raw_model(data: bytes) -> Callable[[Path, dict], list[str]]:
    def setup(folder: Path, s: dict) -> list[str]:
        _pngs(folder / "in", 1)
        return ["in", "--model", _model(folder, s, "m.onnx", data), "--out", "o.mp4"]

    return setup


def _custom_domain(folder: Path, s: dict) -> list[str]:
    import onnx

    model = onnx.load(str(s["onnx"]))
    model.graph.node[0].domain = "com.example.evil"
    model.opset_import.add(domain="com.example.evil", version=1)
    _pngs(folder / "in", 1)
    data = model.SerializeToString()
    return ["in", "--model", _model(folder, s, "m.onnx", data), "--out", "o.mp4"]


def _image(data: bytes, name: str = "big.png") -> Callable[[Path, dict], list[str]]:
    def setup(folder: Path, s: dict) -> list[str]:
        (folder / name).write_bytes(data)
        return [name, "--model", str(_copy(s["onnx"], folder / "m.onnx")), "--out", "o.mp4"]

    return setup


def _non_utf8_name(folder: Path, s: dict) -> list[str]:
    _pngs(folder / "in", 1)
    os.rename(folder / "in" / "f0.png", os.fsencode(folder / "in") + b"/fr\xe9me.png")
    return ["in", "--model", str(_copy(s["onnx"], folder / "m.onnx")), "--out", "o.mp4"]


def _fifo_in_folder(folder: Path, s: dict) -> list[str]:
    _pngs(folder / "in", 2)
    os.mkfifo(folder / "in" / "f1b.png")
    return ["in", "--model", str(_copy(s["onnx"], folder / "m.onnx")), "--out", "o.mp4"]


def _symlink_loop(folder: Path, s: dict) -> list[str]:
    _pngs(folder / "in", 2)
    (folder / "in" / "loop").symlink_to(folder / "in", target_is_directory=True)
    return ["in/**/*.png", "--model", str(_copy(s["onnx"], folder / "m.onnx")), "--out", "o.mp4"]


def _many_classes(folder: Path, s: dict) -> list[str]:
    (folder / "classes.txt").write_text("\n".join(f"c{i}" for i in range(150_000)) + "\n")
    return _export(str(_copy(s["ckpt"], folder / "tiny.safetensors")), "--classes", "classes.txt")


def _markup_classes(names: list[str]) -> Callable[[Path, dict], list[str]]:
    def setup(folder: Path, s: dict) -> list[str]:
        name = _edited_ckpt(folder, s, "odd.safetensors", class_names=names)
        return _export(name)

    return setup


def _bad_palette(palette) -> Callable[[Path, dict], list[str]]:
    def setup(folder: Path, s: dict) -> list[str]:
        return _export(_edited_ckpt(folder, s, "pal.safetensors", palette_rgb=palette))

    return setup


def _ckpt_flags(*flags: str) -> Callable[[Path, dict], list[str]]:
    def setup(folder: Path, s: dict) -> list[str]:
        return _export(str(_copy(s["ckpt"], folder / "tiny.safetensors")), *flags)

    return setup


def _run_flags(*flags: str) -> Callable[[Path, dict], list[str]]:
    def setup(folder: Path, s: dict) -> list[str]:
        return [str(_copy(s["video"], folder / "clip.mp4")), "--model",
                str(_copy(s["onnx"], folder / "m.onnx")), "--out", "o.mp4", *flags]  # fmt: skip

    return setup


CASES = {
    # outputs never overwrite or remove inputs
    "run-jsonl-over-an-input-of-the-glob": Hostile("run", _glob_jsonl_over_input, 2, ("f0.png",)),
    "run-labels-out-is-the-input-folder": Hostile("run", _labels_out_is_input_folder, 2, ("in",)),
    "run-labels-out-holds-unrelated-files": Hostile("run", _labels_out_holds_unrelated, 2,
                                                    ("labels",)),
    # the model folder is a wall
    "run-external-data-escape-behind-a-group": Hostile("run", _group_wire_escape, 2, (),
                                                       ("o.mp4",)),
    "run-external-data-non-utf8-location": Hostile("run", _non_utf8_location, 2, (), ("o.mp4",)),
    # checkpoints: no code, no unbounded allocation, no uninitialised memory
    "export-zip-bomb": Hostile("export", _zip_bomb, 2, ("SCASEG_MAX_ZIP_MEMBER_BYTES",), ("out",),
                               {"SCASEG_MAX_ZIP_MEMBER_BYTES": "4000000"}),
    "export-pickle-asks-5GB": Hostile("export", _huge_bytearray, 2, (), ("out",)),
    "export-view-past-its-storage": Hostile("export", _view_past_storage, 2, (), ("out",)),
    "export-stride0-classifier-10M-classes": Hostile("export", _stride0_classes, 2, (), ("out",)),
    "export-all-nan-weights": Hostile("export", _all_nan, 2, ("nan",), ("out",)),
    "export-150000-class-names": Hostile("export", _many_classes, 2, ("classes",), ("out",)),
    "export-palette-300": Hostile("export", _bad_palette([[300, 0, 0], [0, 0, 0], [1, 1, 1]]), 2,
                                  ("palette",), ("out",)),
    "export-short-palette": Hostile("export", _bad_palette([[0, 0, 0]]), (0, 2), ("palette",)),
    "export-palette-of-strings": Hostile("export", _bad_palette("red"), 2, ("palette",), ("out",)),
    "export-nan-std": Hostile("export", _ckpt_flags("--std", "nan,nan,nan"), 2, ("std",), ("out",)),
    "export-zero-std": Hostile("export", _ckpt_flags("--std", "0,1,1"), 2, ("std",), ("out",)),
    "export-input-side-past-budget": Hostile("export", _ckpt_flags("--input-size", "99968x99968"),
                                             2, ("SCASEG_MAX_INPUT_SIDE",), ("out",)),
    # sidecars and ONNX files
    "run-sidecar-16000x16000": Hostile("run", _sidecar({"preprocess": {"height": 16000,
                                                                       "width": 16000}}),
                                       2, ("16000",), ("o.mp4",)),
    "run-sidecar-nan-std": Hostile("run", _sidecar({"preprocess": {"std": [float("nan")] * 3}}),
                                   2, ("std",), ("o.mp4",)),
    "run-sidecar-palette-300": Hostile("run", _sidecar({"palette_rgb": [[300, 0, 0]] * 3}), 2,
                                       ("palette",), ("o.mp4",)),
    "run-sidecar-class-names-not-strings": Hostile("run", _sidecar({"class_names": [1, 2, 3]}), 2,
                                                   ("class",), ("o.mp4",)),
    "run-sidecar-nested-100000-deep": Hostile("run", _nested_sidecar, 2, (), ("o.mp4",)),
    "run-zero-byte-model": Hostile("run", _raw_model(b""), 2, (), ("o.mp4",)),
    "run-garbage-model": Hostile("run", _raw_model(b"\x08\x07" + os.urandom(64)), 2, (),
                                 ("o.mp4",)),
    "run-custom-domain-op": Hostile("run", _custom_domain, 2, (), ("o.mp4",)),
    # images and folders
    "run-png-claims-12000x12000-rgba16": Hostile("run", _image(_png_claiming(12000, 12000)), 2,
                                                 ("SCASEG_MAX_IMAGE_PIXELS",), ("o.mp4",)),
    "run-png-claims-60000x60000": Hostile("run", _image(_png_claiming(60000, 60000, 8, 2)), 2,
                                          ("SCASEG_MAX_IMAGE_PIXELS",), ("o.mp4",)),
    "run-non-utf8-file-name": Hostile("run", _non_utf8_name, (0, 2)),
    "run-fifo-in-image-folder": Hostile("run", _fifo_in_folder, 0),
    "run-recursive-glob-symlink-loop": Hostile("run", _symlink_loop, (0, 2)),
    # text from files is text
    "export-markup-in-class-names": Hostile("export", _markup_classes(["[/]", "[red]car", "a[b"]),
                                            0),
    "export-ansi-escape-in-class-names": Hostile("export", _markup_classes(
        ["\x1b[2J\x1b[31mroad", "car\r", "per\x07son"]), 2, ("--classes",), ("out",)),
    # flags that are numbers in name only
    "run-nan-reconnect-delay": Hostile("run", _run_flags("--reconnect-delay", "nan"), 2,
                                       ("--reconnect-delay",), ("o.mp4",)),
    "run-nan-segment-minutes": Hostile("run", _run_flags("--segment-minutes", "nan"), 2,
                                       ("--segment-minutes",), ("o.mp4",)),
    "run-two-letter-codec": Hostile("run", _run_flags("--codec", "ab"), 2, ("codec",),
                                    ("o.mp4",)),
}  # fmt: skip


def _tree(folder: Path) -> dict[bytes, str]:
    """Every regular file under `folder` (bytes names: some are not UTF-8) -> its sha256."""
    out = {}
    for root, _, files in os.walk(os.fsencode(folder)):
        for name in files:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    out[path] = hashlib.sha256(f.read()).hexdigest()
    return out


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _run(case: Hostile, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **case.env}
    env.pop("SCASEG_MODEL", None)
    return subprocess.run([sys.executable, "-m", MODULES[case.cli], *argv], cwd=cwd,
                          capture_output=True, timeout=TIMEOUT_S, env=env,
                          preexec_fn=_limit)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(name: str, shared: dict, tmp_path: Path):
    case = CASES[name]
    argv = case.setup(tmp_path, shared)
    before = _tree(tmp_path)
    done = _run(case, argv, tmp_path)
    out = (done.stdout + done.stderr).decode("utf-8", "replace")
    assert done.returncode >= 0, f"killed by signal {-done.returncode}: {out[-2000:]}"
    assert "Traceback" not in out and "internal error" not in out, out[-2000:]
    codes = case.code if isinstance(case.code, tuple) else (case.code,)
    assert done.returncode in codes, out[-2000:]
    after = _tree(tmp_path)
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    assert not changed, f"inputs changed or removed: {changed}"
    assert "\x1b" not in out, "an escape sequence from a file reached the terminal"
    if done.returncode == 0:
        return
    errors = [line for line in done.stderr.decode("utf-8", "replace").splitlines()
              if "error:" in line]  # fmt: skip
    assert len(errors) == 1, out[-2000:]
    text = errors[0].lower()
    for word in case.words:
        assert word.lower() in text, errors[0]
    assert FIX_HINT.search(text), f"no hint on how to fix it: {errors[0]}"
    for output in case.outputs:
        path = tmp_path / output
        assert not path.exists() or (path.is_dir() and not any(path.iterdir())), output
