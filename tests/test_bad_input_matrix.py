"""Bad input across scaseg-export, scaseg-eval, scaseg-run, scaseg-profile and the Python API.

Every bad case must end in one line that names the file or flag and says how to fix it, exit 2
(usage/input) or 1 (runtime failure), no traceback, and nothing left at the final output paths.
"Handled" cases (odd image sizes and formats, a one-frame video) must succeed instead. CLIs run
in subprocesses so exit codes and stderr are the real ones.
"""

from __future__ import annotations

import json
import os
import pickle
import re
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
MODULES = {
    "export": "export.cli",
    "eval": "export.eval_cli",
    "run": "runtime.cli",
    "profile": "runtime.profiling.cli",
    # scaseg-run with FAKE TensorRT/CUDA: reaches the engine checks on a machine without a GPU.
    "run-fake-trt": "tests.runtime.fake_trt_cli",
}
# A folder nobody can create files in, root included (CI runs as root, which a chmod 555 folder
# does not stop; NFS with root_squash and read-only mounts behave alike for real devices).
UNWRITABLE = "/proc"
FAKE_DEVICE = {"tensorrt_version": "10.3.0.30", "gpu_name": "Fake GPU", "compute_capability": "8.7"}
EXPORT_FAST = ["--input-size", "64x64", "--verify-frames", "2", "--calib-samples", "2"]
# Words of an error that says how to fix it (or, for click's choices, what is allowed).
FIX_HINT = re.compile(
    r"\b(pass|give|choose|re-export|re-download|re-save|rebuild|use|put|keep|create|resize|copy|free|"
    r"expected|is not one of|should be|is it|raise it)\b"
)


@dataclass(frozen=True)
class Env:
    tmp: Path
    ckpt: Path  # tiny .safetensors checkpoint
    onnx: Path  # tiny ONNX + sidecar
    video: Path  # 4-frame 64x64 generated video


@dataclass(frozen=True)
class Case:
    cli: str  # "export" | "run" | "profile"
    setup: Callable[[Env], list[str]]  # -> argv (relative paths resolve in env.tmp)
    code: int
    words: tuple[str, ...]  # each must appear in the error line (case-insensitive)
    absent: tuple[str, ...] = ()  # outputs that must not exist afterwards


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Path, Path, Path]:
    from scaseg.checkpoint import save_checkpoint
    from scaseg.model import build_model
    from scenes import write_scene_video
    from scenes.classes import DEMO_CLASSES, DEMO_PALETTE_RGB

    folder = tmp_path_factory.mktemp("matrix")
    ckpt = folder / "tiny.safetensors"
    info = {
        "variant": "tiny",
        "num_classes": 8,
        "class_names": list(DEMO_CLASSES[:8]),
        "palette_rgb": [list(c) for c in DEMO_PALETTE_RGB[:8]],
    }
    save_checkpoint(build_model("tiny", 8), ckpt, info)
    onnx_path = build_tiny_model(folder / "tiny.fp32.onnx")
    video = folder / "clip.mp4"
    write_scene_video(video, 0, 64, 64, 4)
    return ckpt, onnx_path, video


@pytest.fixture
def env(shared, tmp_path) -> Env:
    return Env(tmp_path, *shared)


def _cli(cli: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "60"}
    environment.pop("SCASEG_MODEL", None)
    return subprocess.run(
        [sys.executable, "-m", MODULES[cli], *argv],
        cwd=cwd, capture_output=True, text=True, timeout=60, env=environment,
    )  # fmt: skip


# --- builders of bad inputs -------------------------------------------------------------------


def _png(path: Path, frame: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), frame)
    return path


def _state(env: Env) -> dict:
    from scaseg.checkpoint import read_state_dict

    return read_state_dict(env.ckpt)[0]


def _save_state(env: Env, state: dict, name: str = "edited.safetensors") -> str:
    """Save edited tensors with the original scaseg metadata (variant, classes)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(env.ckpt), framework="pt") as f:
        metadata = f.metadata()
    save_file({k: v.contiguous() for k, v in state.items()}, str(env.tmp / name), metadata)
    return name


def _missing_keys(env: Env) -> str:
    state = _state(env)
    return _save_state(env, dict(list(state.items())[1:]))


def _unexpected_keys(env: Env) -> str:
    import torch

    return _save_state(env, {**_state(env), "extra.weight": torch.zeros(3)})


def _misshaped_keys(env: Env) -> str:
    import torch

    state = _state(env)
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = torch.zeros(1, 1, 1, 1)
    return _save_state(env, state)


class _Exploit:
    """Unpickling this would create pwned.txt: the loader must refuse before running it."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def _malicious(env: Env) -> str:
    (env.tmp / "evil.pth").write_bytes(
        pickle.dumps(_Exploit(str(env.tmp / "pwned.txt")), protocol=2)
    )
    return "evil.pth"


def _truncated(src: Path, dst: Path) -> str:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst.name


def _model_copy(env: Env, name: str, data: bytes | None = None, **meta_edit) -> str:
    """A copy of the tiny model (or `data` as its bytes) with a possibly edited sidecar."""
    path = env.tmp / name
    path.write_bytes(env.onnx.read_bytes() if data is None else data)
    meta = json.loads(sidecar_path(env.onnx).read_text())
    if data is not None:  # other bytes: let the check under test fire, not the hash check
        meta["hashes"].pop("artifact", None)
    meta.update(meta_edit)
    sidecar_path(path).write_text(json.dumps(meta))
    return name


def _escaping_external_data(env: Env) -> str:
    """The tiny model with its first weight moved to '../secret.bin' (outside its folder)."""
    import onnx

    (env.tmp / "secret.bin").write_bytes(b"\0" * 4096)
    (env.tmp / "models").mkdir()
    model = onnx.load(str(env.onnx))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("offset", "0")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return _model_copy(env, "models/escape.onnx", model.SerializeToString())


def _renamed_input(env: Env) -> str:
    import onnx

    model = onnx.load(str(env.onnx))
    model.graph.input[0].name = "pixels"
    for node in model.graph.node:
        node.input[:] = ["pixels" if i == "input" else i for i in node.input]
    return _model_copy(env, "other.fp32.onnx", model.SerializeToString())


def _wrong_shape(env: Env) -> str:
    meta = json.loads(sidecar_path(env.onnx).read_text())
    meta["input"]["shape"] = [1, 3, 128, 128]
    return _model_copy(env, "shape.fp32.onnx", input=meta["input"])


def _engine(env: Env, sidecar: bool) -> str:
    engine = {"tensorrt_version": "8.5.2", "gpu": "Orin (sm_87)", "cuda": "11.4"}
    path = build_tiny_model(env.tmp / "model.fp16.engine", engine=engine)
    if not sidecar:
        sidecar_path(path).unlink()
    return path.name


def _engine_for(env: Env, **provenance) -> str:
    """A placeholder .engine (not loadable) whose sidecar records `provenance`."""
    engine = {
        **FAKE_DEVICE,
        "build_command": "scaseg-export build-engine tiny.fp32.onnx",
        **provenance,
    }
    return build_tiny_model(env.tmp / "tiny.fp16.engine", engine=engine).name


def _img_dir(env: Env, files: dict[str, bytes]) -> str:
    folder = env.tmp / "imgs"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder.name


def _under_file(env: Env, name: str) -> str:
    (env.tmp / "file.txt").write_text("a regular file, not a folder")
    return f"file.txt/{name}"


def _header_only_video(env: Env) -> str:
    """An .mp4 written with no frames: OpenCV refuses to open it."""
    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
    cv2.VideoWriter(str(env.tmp / "header.mp4"), fourcc, 25, (64, 64)).release()
    return "header.mp4"


def _zero_frame_video(env: Env) -> str:
    """A PNG signature and no chunks: OpenCV opens it as a video, then decodes 0 frames."""
    (env.tmp / "zero.mp4").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    return "zero.mp4"


def _png_bytes() -> bytes:
    return cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()


# --- scaseg-export ----------------------------------------------------------------------------


def _own_checkpoint(env: Env) -> str:
    """The tiny model as an mmengine checkpoint (what mmseg 1.x training writes)."""
    from scaseg.model import build_model
    from scenes.classes import DEMO_CLASSES, DEMO_PALETTE_RGB
    from tests.support.checkpoints import save_mmengine_checkpoint

    save_mmengine_checkpoint(build_model("tiny", 8), env.tmp / "mine.pth", DEMO_CLASSES,
                             [list(c) for c in DEMO_PALETTE_RGB])  # fmt: skip
    return "mine.pth"


def _export_own(env: Env, *extra: str) -> list[str]:
    args = ["--checkpoint", _own_checkpoint(env), "--out", "out", "--calib-cache", "cache",
            "--engines", "no", "--input-size", "64x64", "--verify-frames", "2"]  # fmt: skip
    return [*args, *extra]


def _class_file(env: Env, count: int) -> str:
    (env.tmp / "classes.txt").write_text("".join(f"c{i}\n" for i in range(count)))
    return "classes.txt"


def _backbone_only(env: Env) -> str:
    from scaseg.model import build_model
    from tests.support.checkpoints import save_backbone_checkpoint

    save_backbone_checkpoint(build_model("tiny", 8), env.tmp / "backbone.pth")
    return "backbone.pth"


def _payload_in_meta(env: Env) -> str:
    from scaseg.model import build_model
    from tests.support.checkpoints import payloads, save_payload_checkpoint

    payload = payloads(env.tmp / "pwned.txt")["posix.system"]
    save_payload_checkpoint(build_model("tiny", 8), env.tmp / "payload.pth", payload, "meta")
    return "payload.pth"


def _dataset(env: Env, kind: str) -> str:
    from tests.support.datasets import Faults, make_ade20k, make_mmseg

    root = env.tmp / "ds"
    if kind == "ade20k":
        make_ade20k(root)
    elif kind == "colour":
        make_mmseg(root, faults=Faults(colour_mask=True))
    else:
        data = make_mmseg(root)
        if kind == "no-pairs":
            for _, mask in data.pairs:
                mask.rename(mask.with_name(f"x{mask.name}"))
    return "ds"


def _export(env: Env, *extra: str, ckpt: str | None = None) -> list[str]:
    return ["--checkpoint", ckpt or str(env.ckpt), "--out", "out", "--calib-cache", "cache",
            "--engines", "no", *EXPORT_FAST, *extra]  # fmt: skip


def _export_ckpt(make: Callable[[Env], str]) -> Callable[[Env], list[str]]:
    return lambda env: _export(env, ckpt=make(env))


def _empty(name: str) -> Callable[[Env], str]:
    def make(env: Env) -> str:
        (env.tmp / name).write_bytes(b"")
        return name

    return make


EXPORT_CASES = [
    pytest.param(Case("export", _export_ckpt(lambda e: "nope.safetensors"), 2,
                      ("nope.safetensors", "does not exist"), ("out",)), id="export-missing-ckpt"),
    pytest.param(Case("export", _export_ckpt(_empty("empty.safetensors")), 2,
                      ("empty.safetensors", "empty"), ("out",)), id="export-empty-ckpt"),
    pytest.param(Case("export", _export_ckpt(lambda e: _truncated(e.ckpt, e.tmp / "half.safetensors")), 2,
                      ("half.safetensors",), ("out",)), id="export-truncated-ckpt"),
    pytest.param(Case("export", _export_ckpt(lambda e: (e.tmp / "pic.safetensors").write_bytes(_png_bytes()) and "pic.safetensors"), 2,
                      ("pic.safetensors",), ("out",)), id="export-png-named-safetensors"),
    pytest.param(Case("export", _export_ckpt(_missing_keys), 2,
                      ("edited.safetensors", "missing"), ("out",)), id="export-ckpt-missing-keys"),
    pytest.param(Case("export", _export_ckpt(_unexpected_keys), 2,
                      ("edited.safetensors", "unexpected", "extra.weight"), ("out",)), id="export-ckpt-unexpected-keys"),
    pytest.param(Case("export", _export_ckpt(_misshaped_keys), 2,
                      ("edited.safetensors", "shape"), ("out",)), id="export-ckpt-misshaped-keys"),
    pytest.param(Case("export", _export_ckpt(_malicious), 2,
                      ("evil.pth", "refusing"), ("out", "pwned.txt")), id="export-malicious-pickle"),
    pytest.param(Case("export", lambda e: _export(e, "--input-size", "500x500"), 2,
                      ("--input-size", "512x512"), ("out",)), id="export-size-not-multiple-of-32"),
    pytest.param(Case("export", lambda e: _export(e, "--input-size", "-64x64"), 2,
                      ("--input-size", "512x512"), ("out",)), id="export-negative-size"),
    pytest.param(Case("export", lambda e: _export(e, "--precision", "int9"), 2,
                      ("--precision", "did you mean 'int8'"), ("out",)), id="export-unknown-precision"),
    pytest.param(Case("export", lambda e: _export(e, "--precision", "int8", "--calib-data", _img_dir(e, {})), 2,
                      ("imgs",), ("out",)), id="export-empty-calib-folder"),
    pytest.param(Case("export", lambda e: _export(e, "--precision", "int8", "--calib-data",
                                                  _img_dir(e, {"notes.txt": b"hello", "a.csv": b"1,2"})), 2,
                      ("imgs",), ("out",)), id="export-calib-folder-no-images"),
    pytest.param(Case("export", lambda e: _export(e, "--out", _under_file(e, "out")), 2,
                      ("file.txt",), ("out",)), id="export-out-under-a-file"),
    pytest.param(Case("export", lambda e: _export(e, "--out", f"{UNWRITABLE}/scaseg-out"), 2,
                      ("--out", "cannot write in /proc"), ("out",)), id="export-out-unwritable"),
    pytest.param(Case("export", lambda e: ["build-engine", "nope.onnx"], 2,
                      ("nope.onnx", "does not exist")), id="build-engine-missing-onnx"),
    # refused before TensorRT is looked for: the ONNX guard parses every model first
    pytest.param(Case("export", lambda e: ["build-engine", _model_copy(e, "text.onnx", b"not onnx\n")], 2,
                      ("text.onnx", "not a valid onnx"), ("text.engine",)), id="build-engine-text-named-onnx"),
    # A user's own checkpoint: what the export cannot guess or must not do.
    pytest.param(Case("export", lambda e: _export_own(e, "--precision", "int8"), 2,
                      ("--calib-data", "mine.pth"), ("out",)), id="export-int8-without-calib-data"),
    pytest.param(Case("export", lambda e: _export_own(e, "--classes", "kitti"), 2,
                      ("--classes", "cityscapes"), ("out",)), id="export-unknown-class-preset"),
    pytest.param(Case("export", lambda e: _export_own(e, "--classes", _class_file(e, 3)), 2,
                      ("classes.txt", "3 classes", "8 outputs"), ("out",)), id="export-class-file-count"),
    pytest.param(Case("export", lambda e: _export_own(e, "--variant", "s"), 2,
                      ("variant", "tiny", "'s'"), ("out",)), id="export-variant-contradiction"),
    pytest.param(Case("export", _export_ckpt(_backbone_only), 2,
                      ("backbone.pth", "decoder", "--allow-random-decoder"), ("out",)), id="export-backbone-only"),
    pytest.param(Case("export", _export_ckpt(_payload_in_meta), 2,
                      ("payload.pth", "posix.system"), ("out", "pwned.txt")), id="export-payload-in-mmengine-meta"),
    pytest.param(Case("export", lambda e: _export_own(e, "--val-data", _img_dir(e, {})), 2,
                      ("imgs", "layout"), ("out",)), id="export-val-data-unknown-layout"),
    pytest.param(Case("export", lambda e: _export_own(e, "--val-data", _dataset(e, "ade20k")), 2,
                      ("class-count mismatch", "8 classes"), ("out",)), id="export-val-data-class-mismatch"),
    pytest.param(Case("export", lambda e: _export_own(e, "--val-masks", "."), 2,
                      ("--val-masks", "--val-data"), ("out",)), id="export-val-masks-alone"),
    pytest.param(Case("export", lambda e: _export(e, "--precision", "int8", "--calib-data", "generated", "--int8-max-float-nodes", "-2"), 2,
                      ("--int8-max-float-nodes -2", ">= 0"), ("out",)), id="export-negative-int8-max-float-nodes"),
    pytest.param(Case("export", lambda e: _export(e, "--sensitivity-report", "rep"), 2,
                      ("--sensitivity-report", "--precision int8"), ("out", "rep")), id="export-sensitivity-report-without-int8"),
    pytest.param(Case("export", lambda e: _export(e, "--precision", "int8", "--calib-data", "generated", "--sensitivity-report", f"{UNWRITABLE}/rep"), 2,
                      ("--sensitivity-report", "cannot write"), ("out",)), id="export-sensitivity-report-unwritable"),
]  # fmt: skip


# --- scaseg-eval ------------------------------------------------------------------------------


def _eval(env: Env, val_data: str, *extra: str) -> list[str]:
    return [str(env.onnx), "--val-data", val_data, "--json", "eval.json", *extra]


EVAL_CASES = [
    pytest.param(Case("eval", lambda e: _eval(e, _img_dir(e, {})), 2,
                      ("imgs", "layout"), ("eval.json",)), id="eval-unknown-layout"),
    pytest.param(Case("eval", lambda e: _eval(e, _dataset(e, "no-pairs")), 2,
                      ("no image/mask pairs",), ("eval.json",)), id="eval-no-pairs"),
    pytest.param(Case("eval", lambda e: _eval(e, _dataset(e, "ade20k")), 2,
                      ("class-count mismatch", "4 classes"), ("eval.json",)), id="eval-class-count-mismatch"),
    pytest.param(Case("eval", lambda e: _eval(e, _dataset(e, "mmseg"), "--val-split", "test"), 2,
                      ("no split 'test'", "val"), ("eval.json",)), id="eval-missing-split"),
    pytest.param(Case("eval", lambda e: _eval(e, _dataset(e, "colour")), 2,
                      ("single-channel",), ("eval.json",)), id="eval-colour-mask"),
    pytest.param(Case("eval", lambda e: [str(e.ckpt), "--val-data", "generated", "--input-size", "70x64"], 2,
                      ("multiple of 32",), ()), id="eval-checkpoint-bad-size"),
]  # fmt: skip


# --- scaseg-run -------------------------------------------------------------------------------


def _run(source: str, model: str, *extra: str) -> list[str]:
    return [source, "--model", model, "--out", "out.mp4", *extra]


def _run_model(make: Callable[[Env], str]) -> Callable[[Env], list[str]]:
    return lambda env: _run(str(env.video), make(env))


# OpenVINO cases skip themselves where openvino is not installed (see test_bad_input_cli's guard).
_OPENVINO = ("--backend", "openvino")


def _run_ov_model(make: Callable[[Env], str]) -> Callable[[Env], list[str]]:
    return lambda env: _run(str(env.video), make(env), *_OPENVINO)


RUN_CASES = [
    pytest.param(Case("run", lambda e: _run("nope.mp4", str(e.onnx)), 2,
                      ("nope.mp4",), ("out.mp4",)), id="run-missing-source"),
    pytest.param(Case("run", lambda e: _run(_empty("empty.mp4")(e), str(e.onnx)), 2,
                      ("empty.mp4",), ("out.mp4",)), id="run-empty-video"),
    pytest.param(Case("run", lambda e: _run(_truncated(e.video, e.tmp / "half.mp4"), str(e.onnx)), 2,
                      ("half.mp4",), ("out.mp4",)), id="run-truncated-video"),
    pytest.param(Case("run", lambda e: _run(_header_only_video(e), str(e.onnx)), 2,
                      ("header.mp4",), ("out.mp4",)), id="run-header-only-video"),
    pytest.param(Case("run", lambda e: _run(_zero_frame_video(e), str(e.onnx)), 2,
                      ("zero.mp4", "no frames"), ("out.mp4",)), id="run-zero-frame-video"),
    pytest.param(Case("run", lambda e: _run(_img_dir(e, {}), str(e.onnx)), 2,
                      ("imgs",), ("out.mp4",)), id="run-empty-image-folder"),
    pytest.param(Case("run", _run_model(lambda e: "nope.onnx"), 2,
                      ("nope.onnx",), ("out.mp4",)), id="run-missing-model"),
    pytest.param(Case("run", _run_model(lambda e: _model_copy(e, "text.onnx", b"just some text\n")), 2,
                      ("text.onnx",), ("out.mp4",)), id="run-text-named-onnx"),
    pytest.param(Case("run", _run_model(lambda e: _model_copy(e, "cut.onnx", e.onnx.read_bytes()[:200])), 2,
                      ("cut.onnx",), ("out.mp4",)), id="run-corrupt-onnx"),
    pytest.param(Case("run", _run_model(_renamed_input), 2,
                      ("other.fp32.onnx", "input"), ("out.mp4",)), id="run-onnx-input-name-differs"),
    pytest.param(Case("run", _run_model(_wrong_shape), 2,
                      ("shape.fp32.onnx",), ("out.mp4",)), id="run-onnx-shape-differs"),
    pytest.param(Case("run", _run_model(lambda e: _engine(e, sidecar=False)), 2,
                      ("model.fp16.engine.json",), ("out.mp4",)), id="run-engine-without-sidecar"),
    pytest.param(Case("run", _run_model(lambda e: _engine(e, sidecar=True)), 1,
                      ("tensorrt", "install"), ("out.mp4",)), id="run-engine-without-tensorrt"),
    pytest.param(Case("run-fake-trt", _run_model(lambda e: _engine_for(e, tensorrt_version="8.6.2")), 2,
                      ("tiny.fp16.engine", "TensorRT 8.6.2 (this device runs 10.3.0.30)", "rebuild on this device", "build-engine"),
                      ("out.mp4",)), id="run-engine-other-tensorrt-version"),
    pytest.param(Case("run-fake-trt", _run_model(lambda e: _engine_for(e, gpu_name="Orin", compute_capability="8.6")), 2,
                      ("tiny.fp16.engine", "compute capability 8.6", "GPU 'Orin'", "rebuild on this device"),
                      ("out.mp4",)), id="run-engine-other-gpu"),
    pytest.param(Case("run-fake-trt", _run_model(lambda e: _engine_for(e)), 2,
                      ("tiny.fp16.engine", "could not load", "rebuild on this device"),
                      ("out.mp4",)), id="run-engine-unreadable"),
    pytest.param(Case("run", _run_model(lambda e: _model_copy(e, "future.onnx", schema_version=99)), 2,
                      ("future.onnx.json", "schema_version", "re-export"), ("out.mp4",)), id="run-unknown-schema-version"),
    pytest.param(Case("run", _run_model(lambda e: _model_copy(e, "swapped.onnx", hashes={"artifact": "0" * 64})), 2,
                      ("swapped.onnx", "does not match its sidecar", "re-export"), ("out.mp4",)), id="run-onnx-replaced-after-export"),
    pytest.param(Case("run", _run_model(_escaping_external_data), 2,
                      ("escape.onnx", "../secret.bin", "climbs out", "own folder"), ("out.mp4",)), id="run-onnx-external-data-escapes"),
    pytest.param(Case("run", lambda e: _run(str(e.video), str(e.onnx), "--reconnect", "-1"), 2,
                      ("--reconnect",), ("out.mp4",)), id="run-reconnect-negative"),
    pytest.param(Case("run", lambda e: [str(e.video), "--model", str(e.onnx), "--out", str(e.video), "--force"], 2,
                      ("clip.mp4", "is the input")), id="run-output-is-input"),
    pytest.param(Case("run", lambda e: [str(e.video), "--model", str(e.onnx), "--out", _under_file(e, "out.mp4")], 2,
                      ("file.txt",), ("out.mp4",)), id="run-output-under-a-file"),
    pytest.param(Case("run", lambda e: [str(e.video), "--model", str(e.onnx), "--out", f"{UNWRITABLE}/out.mp4"], 2,
                      ("/proc/out.mp4", "cannot write in /proc")), id="run-output-folder-unwritable"),
    pytest.param(Case("run", lambda e: _run(str(e.video), str(e.onnx), "--min-free-mb", "-1"), 2,
                      ("--min-free-mb",), ("out.mp4",)), id="run-min-free-negative"),
    pytest.param(Case("run", lambda e: _run(str(e.video), str(e.onnx), "--min-free-mb", "1e12"), 1,
                      ("free on the disk of", "--min-free-mb"), ("out.mp4",)), id="run-output-disk-below-margin"),
    pytest.param(Case("run", lambda e: _run(str(e.video), str(e.onnx), "--alpha", "2"), 2,
                      ("--alpha",), ("out.mp4",)), id="run-alpha-2"),
    pytest.param(Case("run", lambda e: _run(str(e.video), str(e.onnx), "--max-frames", "0"), 2,
                      ("--max-frames",), ("out.mp4",)), id="run-max-frames-0"),
    pytest.param(Case("run", lambda e: _run(str(e.video), str(e.onnx), "--provider", "tpu"), 2,
                      ("--provider", "cuda"), ("out.mp4",)), id="run-unknown-provider"),
    pytest.param(Case("run", lambda e: _run(str(e.video), str(e.onnx), *_OPENVINO, "--device", "NPU.7"), 2,
                      ("--device NPU.7", "no device NPU.7", "available: CPU"), ("out.mp4",)), id="run-openvino-device-missing"),
    pytest.param(Case("run", _run_ov_model(lambda e: _engine(e, sidecar=True)), 2,
                      ("--backend openvino", "model.fp16.engine", ".onnx"), ("out.mp4",)), id="run-openvino-on-engine"),
    pytest.param(Case("run", lambda e: _run(str(e.video), str(e.onnx), "--ov-precision", "bf16", "--provider", "cpu"), 2,
                      ("--ov-precision", "openvino"), ("out.mp4",)), id="run-ov-precision-on-onnx-runtime"),
    pytest.param(Case("run", _run_ov_model(lambda e: _model_copy(e, "cut.onnx", e.onnx.read_bytes()[:200])), 2,
                      ("cut.onnx", "not a valid onnx model"), ("out.mp4",)), id="run-openvino-corrupt-onnx"),
    pytest.param(Case("run", lambda e: _run(str(e.video), str(e.onnx), "--device", "CPU", "--backend", "onnxruntime"), 2,
                      ("--device CPU", "openvino device", "--device 0"), ("out.mp4",)), id="run-openvino-device-on-onnx-runtime"),
]  # fmt: skip


# --- scaseg-profile ---------------------------------------------------------------------------


def _profile(model: str, *extra: str) -> list[str]:
    return [model, "--frames", "2", "--warmup", "0", "--out", "prof", "--no-png", *extra]


def _bad_json(env: Env) -> str:
    (env.tmp / "bad.json").write_text("{not json")
    return "bad.json"


PROFILE_CASES = [
    pytest.param(Case("profile", lambda e: _profile("nope.onnx"), 2,
                      ("nope.onnx",), ("prof",)), id="profile-missing-model"),
    pytest.param(Case("profile", lambda e: _profile(_model_copy(e, "text.onnx", b"text\n")), 2,
                      ("text.onnx",), ("prof",)), id="profile-text-named-onnx"),
    pytest.param(Case("profile", lambda e: _profile(str(e.onnx), "--frames", "0"), 2,
                      ("--frames",), ("prof",)), id="profile-frames-0"),
    pytest.param(Case("profile", lambda e: _profile(str(e.onnx), "--source", "nope.mp4"), 2,
                      ("nope.mp4",), ("prof",)), id="profile-missing-source"),
    pytest.param(Case("profile", lambda e: _profile(str(e.onnx), "--source", _empty("empty.mp4")(e)), 2,
                      ("empty.mp4",), ("prof",)), id="profile-empty-video-source"),
    pytest.param(Case("profile", lambda e: ["--compare", "a.json", "b.json"], 2,
                      ("a.json",)), id="profile-compare-missing"),
    pytest.param(Case("profile", lambda e: ["--compare", _bad_json(e), _bad_json(e)], 2,
                      ("bad.json",)), id="profile-compare-corrupt-json"),
    pytest.param(Case("profile", lambda e: _profile(str(e.onnx), "--out", f"{UNWRITABLE}/prof"), 2,
                      ("--out", "cannot write in /proc")), id="profile-out-unwritable"),
    pytest.param(Case("profile", lambda e: _profile(str(e.onnx), "--out", _under_file(e, "prof")), 2,
                      ("file.txt",), ("prof",)), id="profile-out-under-a-file"),
]  # fmt: skip


@pytest.mark.parametrize("case", EXPORT_CASES + EVAL_CASES + RUN_CASES + PROFILE_CASES)
def test_bad_input_cli(case: Case, env: Env):
    argv = case.setup(env)
    if "openvino" in argv:
        pytest.importorskip("openvino")
    result = _cli(case.cli, argv, env.tmp)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == case.code, output
    # Every error, usage errors included, is one "<prog>: error: <message>" line.
    error = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error) == 1, result.stderr  # one line says what went wrong
    text = error[0].lower()
    for word in case.words:
        assert word.lower() in text, error[0]
    assert FIX_HINT.search(text), f"no hint on how to fix it: {error[0]}"
    for name in case.absent:
        path = env.tmp / name
        assert not path.exists() or (path.is_dir() and not any(path.iterdir())), name


# --- handled: unusual but valid sources must succeed ------------------------------------------


def _image(frame: np.ndarray) -> Callable[[Env], str]:
    return lambda env: str(_png(env.tmp / "frame.png", frame))


def _one_frame_video(env: Env) -> str:
    from scenes import write_scene_video

    write_scene_video(env.tmp / "one.mp4", 1, 64, 64, 1)
    return "one.mp4"


def _video_4k(env: Env) -> str:
    from scenes import write_scene_video

    write_scene_video(env.tmp / "uhd.mp4", 1, 2160, 3840, 2)
    return "uhd.mp4"


HANDLED = [
    pytest.param(_image(np.full((1, 1, 3), 200, np.uint8)), id="run-image-1x1"),
    pytest.param(_image(np.full((2160, 3840, 3), 90, np.uint8)), id="run-image-4k"),
    pytest.param(_video_4k, id="run-video-4k"),
    pytest.param(_image(np.full((7, 13, 3), 90, np.uint8)), id="run-image-7x13"),
    pytest.param(_image(np.full((40, 48), 128, np.uint8)), id="run-image-grayscale"),
    pytest.param(_image(np.full((40, 48, 4), 128, np.uint8)), id="run-image-rgba"),
    pytest.param(_image(np.full((40, 48, 3), 40000, np.uint16)), id="run-image-16bit"),
    pytest.param(_one_frame_video, id="run-one-frame-video"),
    # OpenCV's video reader decodes a lone image as a one-frame video: a PNG named .mp4 works.
    pytest.param(
        lambda e: (e.tmp / "pic.mp4").write_bytes(_png_bytes()) and "pic.mp4",
        id="run-png-named-mp4",
    ),
]


@pytest.mark.parametrize("make_source", HANDLED)
def test_handled_source(make_source, env: Env):
    source = make_source(env)
    argv = [source, "--model", str(env.onnx), "--out", "out.mp4", "--labels-out", "labels"]
    result = _cli("run", argv, env.tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert (env.tmp / "out.mp4").stat().st_size > 0
    assert len(list((env.tmp / "labels").glob("*.png"))) >= 1


def test_calibration_folder_of_odd_images_is_handled(tmp_path):
    """1x1, 7x13, grayscale, RGBA, 16-bit and 4K images calibrate like any others: every one
    becomes a (H,W,3) uint8 BGR frame and a model input of the model's size."""
    from calibration.sources import load_calibration_data, model_inputs
    from runtime.preprocess import Preprocess

    odd = {
        "a_1x1.png": np.full((1, 1, 3), 200, np.uint8),
        "b_7x13.png": np.full((7, 13, 3), 90, np.uint8),
        "c_gray.png": np.full((40, 48), 128, np.uint8),
        "d_rgba.png": np.full((40, 48, 4), 128, np.uint8),
        "e_16bit.png": np.full((40, 48, 3), 40000, np.uint16),
        "f_4k.png": np.full((2160, 3840, 3), 60, np.uint8),
    }
    for name, image in odd.items():
        _png(tmp_path / name, image)
    data = load_calibration_data(tmp_path, len(odd), 64, 64)
    assert data.samples == len(odd)
    assert all(f.ndim == 3 and f.shape[2] == 3 and f.dtype == np.uint8 for f in data.frames)
    assert [f.shape[:2] for f in data.frames] == [
        (1, 1),
        (7, 13),
        (40, 48),
        (40, 48),
        (40, 48),
        (2160, 3840),
    ]
    assert data.frames[4].max() == 40000 >> 8  # 16-bit scaled to 8-bit, not clipped
    inputs = list(model_inputs(data, Preprocess(64, 64), fused=False))
    assert all(x.shape == (1, 3, 64, 64) and x.dtype == np.float32 for x in inputs)


# --- Python API -------------------------------------------------------------------------------


def _api_load(make: Callable[[Env], str]) -> Callable[[Env], None]:
    from scaseg.checkpoint import load_model

    return lambda env: load_model(env.tmp / make(env))


def _api_segment(make: Callable[[Env], str]) -> Callable[[Env], None]:
    from runtime import Segmenter

    return lambda env: Segmenter(env.tmp / make(env))


API_CASES = [
    pytest.param(_api_load(_malicious), ("evil.pth", "refusing"), id="api-load-malicious-pickle"),
    pytest.param(
        _api_load(_missing_keys), ("edited.safetensors", "missing"), id="api-load-missing-keys"
    ),
    pytest.param(_api_load(_empty("empty.pth")), ("empty.pth", "empty"), id="api-load-empty"),
    pytest.param(_api_segment(lambda e: "nope.onnx"), ("nope.onnx",), id="api-segmenter-missing"),
    pytest.param(
        _api_segment(lambda e: _model_copy(e, "text.onnx", b"text\n")),
        ("text.onnx",),
        id="api-segmenter-text-named-onnx",
    ),
    pytest.param(
        _api_segment(lambda e: _model_copy(e, "future.onnx", schema_version=99)),
        ("future.onnx.json", "schema_version"),
        id="api-segmenter-unknown-schema",
    ),
]


@pytest.mark.parametrize(("call", "words"), API_CASES)
def test_bad_input_api(call, words, env: Env):
    with pytest.raises((ValueError, OSError)) as info:
        call(env)
    message = str(info.value)
    assert "\n" not in message.strip(), message
    for word in words:
        assert word.lower() in message.lower(), message
    assert not (env.tmp / "pwned.txt").exists()


def test_malicious_pickle_is_live(tmp_path):
    """The exploit really runs when unpickled naively, so its refusal above means something."""
    env = Env(tmp_path, tmp_path, tmp_path, tmp_path)
    pickle.loads((tmp_path / _malicious(env)).read_bytes()).close()  # runs open(..., "w")
    assert (tmp_path / "pwned.txt").exists()
