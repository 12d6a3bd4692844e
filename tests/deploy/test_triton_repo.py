"""Generated Triton repositories: every config.pbtxt parses with Triton's own schema
(tritonclient's model_config_pb2), round-trips, and matches the artifact's sidecar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export.triton_config import TritonBatchingWarning, TritonConfigError
from export.triton_model import FrameServer
from export.triton_repo import write_triton_repo
from runtime.meta import read_meta
from runtime.segmenter import Segmenter
from tests.support.deploy_models import ORIN_ENGINE, build_model

TYPES = {"float32": "TYPE_FP32", "uint8": "TYPE_UINT8", "int32": "TYPE_INT32"}


def parse_config(model_dir: Path) -> model_config_pb2.ModelConfig:
    text = (model_dir / "config.pbtxt").read_text()
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    again = text_format.Parse(text_format.MessageToString(config), model_config_pb2.ModelConfig())
    assert again == config  # round-trips through Triton's schema
    return config


def expected_dims(shape: tuple, batched: bool) -> list[int]:
    return [-1 if isinstance(d, str) else d for d in (shape[1:] if batched else shape)]


def check_native(config, artifact: Path) -> None:
    """Inputs/outputs, dtypes, dims and max_batch_size agree with the sidecar."""
    meta = read_meta(artifact)
    batched = config.max_batch_size > 0
    for tensors, spec in ((config.input, meta.input), (config.output, meta.output)):
        (t,) = tensors
        assert t.name == spec.name
        assert model_config_pb2.DataType.Name(t.data_type) == TYPES[spec.dtype]
        assert list(t.dims) == expected_dims(spec.shape, batched)
    if meta.input.dynamic:
        assert config.max_batch_size == meta.input.profile[2][0]  # the profile's max batch
        assert config.HasField("dynamic_batching")
    else:
        # Batch fixed by the artifact: Triton must not batch (the "dim 0 between 1 and 1" bug).
        assert config.max_batch_size == 0
        assert not config.HasField("dynamic_batching")


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_onnx_repository_matches_sidecar(tmp_path, fused, dynamic):
    onnx = build_model(tmp_path / "tiny.fp32.onnx", fused=fused, dynamic=dynamic)
    repo = write_triton_repo([onnx], tmp_path / "repo", model_name="seg")
    native = parse_config(repo / "seg_onnx")
    assert native.backend == "onnxruntime"
    assert (repo / "seg_onnx" / "1" / "model.onnx").read_bytes() == onnx.read_bytes()
    check_native(native, onnx)

    py = parse_config(repo / "seg")
    assert py.backend == "python" and py.max_batch_size == 8
    assert [(t.name, list(t.dims)) for t in py.input] == [("image", [-1, -1, 3])]
    assert [(t.name, list(t.dims)) for t in py.output] == [("labels", [-1, -1])]
    assert model_config_pb2.DataType.Name(py.output[0].data_type) == "TYPE_UINT8"
    assert py.parameters["artifact"].string_value == onnx.name
    version = repo / "seg" / "1"
    for name in ("model.py", onnx.name, f"{onnx.name}.json", "runtime/preprocess.py"):
        assert (version / name).is_file(), name
    assert not (version / "runtime" / "models").exists()  # scaseg-run's demo model stays out


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_engine_repository_matches_sidecar(tmp_path, dynamic):
    engine = build_model(
        tmp_path / "tiny.int8.engine", dynamic=dynamic, precision="int8", engine=ORIN_ENGINE
    )
    repo = write_triton_repo([engine], tmp_path / "repo", python_backend=False)
    model = repo / "tiny_int8_trt"
    config = parse_config(model)
    assert config.backend == "tensorrt"
    assert (
        model_config_pb2.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind) == "KIND_GPU"
    )
    assert (model / "1" / "model.plan").is_file() and not config.cc_model_filenames
    check_native(config, engine)


def test_engines_for_several_gpus_get_cc_model_filenames(tmp_path):
    engines = [
        build_model(tmp_path / f"tiny.fp16.sm{cc}.engine", dynamic=True, precision="fp16",
                    engine={**ORIN_ENGINE, "compute_capability": cc, "dla_core": 0})
        for cc in ("8.7", "8.9")
    ]  # fmt: skip
    repo = write_triton_repo(engines, tmp_path / "repo", model_name="seg", python_backend=False)
    config = parse_config(repo / "seg_trt")
    assert dict(config.cc_model_filenames) == {"8.7": "model_sm87.plan", "8.9": "model_sm89.plan"}
    for filename in config.cc_model_filenames.values():
        assert (repo / "seg_trt" / "1" / filename).is_file()
    (device,) = config.instance_group[0].secondary_devices  # DLA core 0 from the sidecar
    assert device.device_id == 0
    check_native(config, engines[0])


def test_batch_beyond_the_profile_is_refused(tmp_path):
    onnx = build_model(tmp_path / "tiny.fp32.onnx", dynamic=True, batch_range=(1, 1, 2))
    with pytest.raises(TritonConfigError, match="dim 0 between 1 and 2"):
        write_triton_repo([onnx], tmp_path / "repo", max_batch_size=8, python_backend=False)
    static = build_model(tmp_path / "static.fp32.onnx")
    with pytest.raises(TritonConfigError, match="re-export it with a dynamic batch"):
        write_triton_repo([static], tmp_path / "repo", max_batch_size=4, python_backend=False)
    assert not (tmp_path / "repo").exists()  # refused before anything was written


def test_fixed_batch_warns_when_the_python_model_batches_instead(tmp_path):
    static = build_model(tmp_path / "static.fp32.onnx")
    with pytest.warns(TritonBatchingWarning, match="Python-backend model batches it"):
        repo = write_triton_repo([static], tmp_path / "repo", model_name="m", max_batch_size=4)
    assert parse_config(repo / "m").max_batch_size == 4
    assert parse_config(repo / "m_onnx").max_batch_size == 0


def test_existing_model_is_replaced_only_with_force(tmp_path):
    onnx = build_model(tmp_path / "tiny.fp32.onnx")
    repo = write_triton_repo([onnx], tmp_path / "repo", model_name="seg")
    (repo / "seg" / "stale.txt").write_text("old")
    with pytest.raises(FileExistsError, match="force=True"):
        write_triton_repo([onnx], repo, model_name="seg")
    write_triton_repo([onnx], repo, model_name="seg", force=True)
    assert (repo / "seg" / "stale.txt").read_text() == "old"  # not scaseg's: carried over
    assert sorted(p.name for p in repo.iterdir()) == ["seg", "seg_onnx"]  # no temp leftovers


def test_a_model_folder_scaseg_did_not_write_is_never_replaced(tmp_path):
    from runtime.errors import UnsafePathError

    onnx = build_model(tmp_path / "tiny.fp32.onnx")
    (tmp_path / "repo" / "seg" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "seg" / "config.pbtxt").write_text("a user's model")
    with pytest.raises(UnsafePathError, match=r"no \.scaseg-output marker"):
        write_triton_repo([onnx], tmp_path / "repo", model_name="seg", force=True)
    assert (tmp_path / "repo" / "seg" / "config.pbtxt").read_text() == "a user's model"
    ours = write_triton_repo([onnx], tmp_path / "ours", model_name="seg")
    inside = build_model(ours / "seg" / "tiny.fp32.onnx")  # an artifact kept in the model folder
    with pytest.raises(UnsafePathError, match="holds the artifact"):
        write_triton_repo([inside], ours, model_name="seg", force=True)
    assert inside.is_file()


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
@pytest.mark.parametrize("batch", [(1, 1, 1), (1, 2, 3), (2, 2, 4)], ids=["b1", "max3", "min2"])
def test_frame_server_equals_local_inference(tmp_path, fused, batch):
    """The Python model's batching (split, pad) gives the labels Segmenter gives frame by frame."""
    dynamic = batch != (1, 1, 1)
    onnx = build_model(tmp_path / "m.fp32.onnx", fused=fused, dynamic=dynamic, batch_range=batch)
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (h, w, 3), np.uint8) for h, w in [(48, 80)] * 4 + [(64, 64)]]
    with Segmenter(onnx, provider="cpu") as seg:
        expected = [seg(f) for f in frames]
        got = FrameServer(seg).segment(frames)
    for e, g in zip(expected, got):
        assert g.dtype == np.uint8 and g.shape == e.shape
        np.testing.assert_array_equal(g, e)


# --- slide inference and keep-ratio resizing ----------------------------------------------------


def _recording(seg: Segmenter) -> list[tuple]:
    """Record the shape of every batch the segmenter's backend is given."""
    calls: list[tuple] = []
    infer = seg.backend.infer

    def record(batch):
        calls.append(batch.shape)
        return infer(batch)

    seg.backend.infer = record
    return calls


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
def test_frame_server_runs_slide_frames_one_call_each(tmp_path, fused):
    """Each frame's windows are one call (8 for 90x150, 4 for 30x300); labels as Segmenter's."""
    from tests.support.deploy_models import build_slide_model

    onnx = build_slide_model(tmp_path / "slide.fp32.onnx", fused=fused)
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (*hw, 3), np.uint8) for hw in [(90, 150)] * 2 + [(30, 300)]]
    with Segmenter(onnx, provider="cpu") as seg:
        expected = [seg(f) for f in frames]
        calls = _recording(seg)
        got = FrameServer(seg).segment(frames)
    assert [c[0] for c in calls] == [8, 8, 4]
    for e, g in zip(expected, got):
        assert g.shape == e.shape
        np.testing.assert_array_equal(g, e)


def test_frame_server_pads_slide_windows_to_the_profile_minimum(tmp_path):
    from tests.support.deploy_models import build_slide_model

    onnx = build_slide_model(tmp_path / "slide.fp32.onnx", batch_range=(6, 8, 16))
    frame = np.random.default_rng(3).integers(0, 256, (30, 300, 3), np.uint8)  # 4 windows
    with Segmenter(onnx, provider="cpu") as seg:
        batch = seg.prepare(frame)
        expected = seg.postprocess(seg.infer(batch), frame.shape[:2])
        calls = _recording(seg)
        (got,) = FrameServer(seg).segment([frame])
    assert calls == [(6, *batch.shape[1:])]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
def test_frame_server_batches_keep_ratio_frames_of_one_size(tmp_path, fused):
    """Keep-ratio inputs change size with the frame: frames of one size share a call (up to the
    profile's max of 4), a frame of another size gets its own."""
    from tests.support.deploy_models import build_keep_ratio_model

    onnx = build_keep_ratio_model(tmp_path / "keep.fp32.onnx", fused=fused)
    rng = np.random.default_rng(4)
    sizes = [(48, 80)] * 5 + [(60, 60), (48, 80)]
    frames = [rng.integers(0, 256, (*hw, 3), np.uint8) for hw in sizes]
    with Segmenter(onnx, provider="cpu") as seg:
        expected = [seg(f) for f in frames]
        calls = _recording(seg)
        got = FrameServer(seg).segment(frames)
    # 48x80 -> 64x107, padded to 64x128; 60x60 -> 64x64
    assert [c[0] for c in calls] == [4, 1, 1, 1]
    for e, g in zip(expected, got):
        assert g.shape == e.shape
        np.testing.assert_array_equal(g, e)


def test_slide_repository_batches_frames_in_python_and_windows_natively(tmp_path):
    """--max-batch-size counts frames (the Python model); the native model's batch is one
    frame's windows, so it keeps the profile's window range and says so in its notes."""
    from tests.support.deploy_models import build_slide_model

    onnx = build_slide_model(tmp_path / "slide.fp32.onnx")
    repo = write_triton_repo([onnx], tmp_path / "repo", model_name="s", max_batch_size=32)
    assert parse_config(repo / "s").max_batch_size == 32
    native = parse_config(repo / "s_onnx")
    assert native.max_batch_size == 16
    check_native(native, onnx)
    text = (repo / "s_onnx" / "config.pbtxt").read_text()
    assert "Slide inference (slide crop 64x64 stride 48x48)" in text
    assert "send frames to the 's' model" in text
    with pytest.raises(TritonConfigError, match=r"exceeds the batch range 1\.\.16"):
        write_triton_repo([onnx], tmp_path / "r2", max_batch_size=32, python_backend=False)


def test_keep_ratio_repository_notes_what_the_native_model_takes(tmp_path):
    from tests.support.deploy_models import build_keep_ratio_model

    onnx = build_keep_ratio_model(tmp_path / "keep.fp32.onnx")
    repo = write_triton_repo([onnx], tmp_path / "repo", model_name="k")
    check_native(parse_config(repo / "k_onnx"), onnx)
    assert "Keep-ratio resize to (128, 64)" in (repo / "k_onnx" / "config.pbtxt").read_text()
    assert "Keep-ratio" not in (repo / "k" / "config.pbtxt").read_text()
