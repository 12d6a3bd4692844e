"""OpenVINO backend on real OpenVINO (CPU): results equal to ONNX Runtime, the same sidecar
checks, the precision that really ran, per-layer counters, and how --backend auto chooses."""

from __future__ import annotations

import dataclasses
import platform
import warnings

import numpy as np
import onnx
import pytest

ov = pytest.importorskip("openvino")
from export.int8.quantize import quantize_int8  # noqa: E402  (tests may build INT8 with the exporter)
from runtime.backends import (  # noqa: E402
    Backend,
    BackendOptions,
    choose_onnx_backend,
    open_backend,
    parse_device,
)
from runtime.backends.openvino_backend import (  # noqa: E402
    OvBackend,
    OvPrecisionWarning,
    check_device,
    precision_hint,
)
from runtime.errors import UserInputError  # noqa: E402
from runtime.meta import MetaError, read_meta, sha256_file, write_meta  # noqa: E402
from runtime.profiling.envinfo import capture_environment  # noqa: E402
from runtime.profiling.layer_profile import profile_layers  # noqa: E402
from tests.support.tiny_onnx import (  # noqa: E402
    build_tiny_model,
    custom_domain,
    edited_tiny_model,
    point_at_external_data,
    short_weight,
)

CPU_CAPS = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
OV = BackendOptions(device="CPU")


def _batch(seed: int = 0, n: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, 3, 64, 64)).astype(np.float32)


def _with_meta(path, **changes):
    write_meta(path, dataclasses.replace(read_meta(path), **changes))
    return path


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    """The tiny model quantized by the exporter's own Q/DQ pass (symmetric int8, per channel)."""
    folder = tmp_path_factory.mktemp("ov_int8")
    fp32 = build_tiny_model(folder / "tiny.fp32.onnx")
    int8 = folder / "tiny.int8.onnx"
    quantize_int8(fp32, int8, {"input": (-3.0, 3.0)}, "minmax")
    meta = dataclasses.replace(
        read_meta(fp32), precision="int8", hashes={"artifact": sha256_file(int8)}
    )
    write_meta(int8, meta)
    return int8


def test_fp32_matches_onnx_runtime(plain_model):
    batch = _batch()
    with (
        open_backend(plain_model, "openvino", OV) as ovb,
        open_backend(plain_model, "onnxruntime") as ort,
    ):
        assert isinstance(ovb, Backend) and isinstance(ovb, OvBackend)
        got, want = ovb.infer(batch), ort.infer(batch)
    assert got.shape == want.shape == (1, 4, 16, 16) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert (got.argmax(1) == want.argmax(1)).mean() == 1.0


def test_fp32_runs_f32_and_says_so(plain_model):
    backend = open_backend(plain_model, "openvino", OV)
    assert backend.inference_precision == "f32" and backend.device == "CPU"
    assert backend.int8_layers is None
    assert (
        backend.description
        == f"openvino {ov.__version__.split('-')[0]} CPU (inference precision f32)"
    )


def test_outputs_are_not_overwritten_by_the_next_frame(plain_model):
    """The pipeline postprocesses frame N while frame N+1 runs: outputs must be copies."""
    backend = open_backend(plain_model, "openvino", OV)
    first = backend.infer(_batch(1))
    kept = first.copy()
    backend.infer(_batch(2))
    np.testing.assert_array_equal(first, kept)


def test_fused_dynamic_model_runs_other_sizes_and_batches(make_model, tmp_path):
    path = make_model(
        tmp_path / "fused.onnx", fused_preprocess=True, fused_argmax=True, dynamic=True
    )
    frames = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    got = open_backend(path, "openvino", OV).infer(frames)
    want = open_backend(path, "onnxruntime").infer(frames)
    assert got.shape == (2, 32, 32) and got.dtype == np.uint8
    assert (got == want).mean() > 0.99


@pytest.mark.parametrize("hint", ["f32", "bf16", "f16"])
def test_override_is_compiled_and_read_back(plain_model, hint):
    if hint != "f32" and {"bf16": "BF16", "f16": "FP16"}[hint] not in CPU_CAPS:
        with pytest.raises(
            ValueError, match=f"ov_precision='{hint}': OpenVINO device CPU cannot run"
        ):
            open_backend(plain_model, "openvino", BackendOptions(device="CPU", ov_precision=hint))
        return
    backend = open_backend(plain_model, "openvino", BackendOptions(ov_precision=hint))
    assert backend.inference_precision == hint
    assert f"inference precision {hint}" in backend.description
    assert (
        backend.infer(_batch()).argmax(1)
        == open_backend(plain_model, "onnxruntime").infer(_batch()).argmax(1)
    ).mean() > 0.95


def test_precision_follows_the_artifact_under_auto(plain_model):
    meta = read_meta(plain_model)
    assert precision_hint(meta, "auto") == "f32"
    assert precision_hint(dataclasses.replace(meta, precision="fp16"), "auto") is None
    # INT8's float remainder in f32, as on ONNX Runtime and in the export gate
    assert precision_hint(dataclasses.replace(meta, precision="int8"), "auto") == "f32"
    assert precision_hint(dataclasses.replace(meta, precision="int8"), "bf16") == "bf16"


def test_fp16_artifact_runs_at_the_device_default(tmp_path):
    path = _with_meta(build_tiny_model(tmp_path / "tiny.fp16.onnx"), precision="fp16")
    default = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        backend = open_backend(path, "openvino", OV)
    assert backend.inference_precision == default
    f32_warned = any(issubclass(w.category, OvPrecisionWarning) for w in seen)
    assert f32_warned == (default == "f32")  # fp16 that runs as f32 is said out loud


def test_int8_runs_int8_layers_and_counts_them(int8_model, plain_model):
    backend = open_backend(int8_model, "openvino", OV)
    assert backend.int8_layers and backend.int8_layers >= 1  # the quantized Conv
    assert f"{backend.int8_layers} int8 layer" in backend.description
    agree = (
        backend.infer(_batch()).argmax(1)
        == open_backend(plain_model, "onnxruntime").infer(_batch()).argmax(1)
    ).mean()
    assert agree > 0.9


def test_int8_artifact_without_int8_layers_warns(tmp_path):
    path = _with_meta(build_tiny_model(tmp_path / "tiny.onnx"), precision="int8")  # no Q/DQ
    with pytest.warns(OvPrecisionWarning, match="runs no layer in int8"):
        backend = open_backend(path, "openvino", OV)
    assert backend.int8_layers == 0


def test_hash_mismatch_is_refused(tmp_path):
    path = build_tiny_model(tmp_path / "tiny.onnx")
    _with_meta(path, hashes={"artifact": "0" * 64})
    with pytest.raises(MetaError, match="does not match its sidecar"):
        open_backend(path, "openvino", OV)


def test_sidecar_of_another_model_is_refused(tmp_path):
    path = build_tiny_model(tmp_path / "tiny.onnx")
    meta = read_meta(path)
    _with_meta(path, input=dataclasses.replace(meta.input, name="image"))
    with pytest.raises(MetaError, match="sidecar belongs to another model"):
        open_backend(path, "openvino", OV)
    _with_meta(path, input=dataclasses.replace(meta.input, shape=(1, 3, 128, 128)))
    with pytest.raises(MetaError, match=r"sidecar input shape \[1, 3, 128, 128\]"):
        open_backend(path, "openvino", OV)


def test_invalid_onnx_bytes_are_one_meta_error(tmp_path):
    path = build_tiny_model(tmp_path / "tiny.onnx")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(MetaError, match="not a valid ONNX model") as err:
        open_backend(path, "openvino", OV)
    assert "\n" not in str(err.value)


def test_external_data_outside_the_folder_is_refused(tmp_path):
    (tmp_path / "m").mkdir()
    path = build_tiny_model(tmp_path / "m" / "tiny.onnx")
    model = onnx.load(str(path))
    point_at_external_data(model.graph.initializer[0], "../secret.bin")
    path.write_bytes(model.SerializeToString())
    with pytest.raises(MetaError, match="refusing to load"):
        open_backend(path, "openvino", OV)


def _dangling_input(model) -> None:
    model.graph.node[0].input[1] = "nowhere"


@pytest.mark.parametrize(
    "edit", [custom_domain, short_weight, _dangling_input], ids=lambda e: e.__name__
)
def test_a_model_openvino_cannot_read_is_one_meta_error(tmp_path, edit):
    """OpenVINO's frontend raises its own failure types and plain RuntimeErrors: all bad input."""
    with pytest.raises(MetaError, match=r"cannot load .*bad\.onnx: not a valid ONNX model") as err:
        open_backend(edited_tiny_model(tmp_path / "bad.onnx", edit), "openvino", OV)
    assert "\n" not in str(err.value)


def test_an_empty_file_is_refused_before_openvino_reads_it(tmp_path):
    """OpenVINO 2026 "converts" a zero-byte .onnx into an empty model; the guard refuses it."""
    path = build_tiny_model(tmp_path / "empty.onnx")
    path.write_bytes(b"")
    with pytest.raises(MetaError, match="the file is empty"):
        open_backend(path, "openvino", OV)


def test_engine_is_refused(make_model, tmp_path):
    engine = make_model(tmp_path / "tiny.engine")
    with pytest.raises(ValueError, match=r"kind='openvino' runs \.onnx models"):
        open_backend(engine, "openvino")


def test_device_names_and_indices_are_checked_per_backend(plain_model):
    assert (
        parse_device("gpu.1") == "GPU.1" and parse_device("1") == 1 and parse_device(None) is None
    )
    check_device("CPU", ["CPU", "GPU.0", "GPU.1"])
    check_device("GPU", ["CPU", "GPU.0", "GPU.1"])
    check_device("AUTO:GPU.1,CPU", ["CPU", "GPU.0", "GPU.1"])
    with pytest.raises(UserInputError, match=r"no device NPU here; available: CPU, GPU.0"):
        check_device("NPU", ["CPU", "GPU.0"])
    with pytest.raises(ValueError, match="is a CUDA GPU index; OpenVINO takes a device name"):
        open_backend(plain_model, "openvino", BackendOptions(device=1))
    with pytest.raises(ValueError, match="names an OpenVINO device; ONNX Runtime and TensorRT"):
        open_backend(plain_model, "onnxruntime", BackendOptions(device="CPU"))
    with pytest.raises(ValueError, match="neither a CUDA index"):
        BackendOptions(device="cpu; rm")


def test_auto_device_runs(plain_model):
    backend = open_backend(plain_model, "openvino", BackendOptions(device="AUTO"))
    assert "CPU" in backend.device
    assert backend.infer(_batch()).shape == (1, 4, 16, 16)


def test_per_layer_counters_and_environment(plain_model):
    backend = open_backend(plain_model, "openvino", OV)
    layers = profile_layers(backend, OV, _batch(), runs=3)
    assert layers.runs == 3 and layers.total_ms > 0
    assert "Convolution" in {t.op_type for t in layers.op_types}
    assert "PERF_COUNT" in layers.source
    env = capture_environment(backend, None, OV)
    assert (
        env["versions"]["openvino"] == ov.__version__.split("-")[0] or env["versions"]["openvino"]
    )
    assert env["backend"]["inference_precision"] == "f32" and env["backend"]["device"] == "CPU"


# ---------------------------------------------------------------------------------------------
# --backend auto for .onnx


def _gate(meta, passed=True, agreement=0.999):
    gate = {
        "openvino": {
            "passed": passed,
            "agreement": agreement,
            "inference_precision": "bf16",
            "latency_ms": 50.0,
        }
    }
    return dataclasses.replace(meta, extra={"gate": gate})


@pytest.fixture(scope="module")
def meta(tmp_path_factory):
    return read_meta(build_tiny_model(tmp_path_factory.mktemp("m") / "tiny.onnx"))


@pytest.mark.parametrize(
    ("provider", "providers", "installed", "machine", "gated", "kind", "why"),
    [
        ("cpu", [], True, "x86_64", True, "onnxruntime", "provider='cpu' given"),
        ("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], True, "x86_64", True, "onnxruntime", "NVIDIA GPU"),
        ("auto", ["CPUExecutionProvider"], True, "x86_64", True, "openvino", "verified on OpenVINO at export"),
        ("auto", ["CPUExecutionProvider"], True, "AMD64", True, "openvino", "argmax agreement 99.90%"),
        ("auto", ["CPUExecutionProvider"], False, "x86_64", True, "onnxruntime", "OpenVINO is not installed"),
        ("auto", ["CPUExecutionProvider"], True, "aarch64", True, "onnxruntime", "x86 CPUs only; this is aarch64"),
        ("auto", ["CPUExecutionProvider"], True, "x86_64", None, "onnxruntime", "re-export with OpenVINO installed"),
        ("auto", ["CPUExecutionProvider"], True, "x86_64", False, "onnxruntime", "failed the OpenVINO check"),
    ],
)  # fmt: skip
def test_auto_choice(meta, provider, providers, installed, machine, gated, kind, why):
    m = meta if gated is None else _gate(meta, passed=gated)
    choice = choose_onnx_backend(m, provider, providers, installed, machine)
    assert choice.kind == kind and why in choice.reason


def test_the_sidecars_reason_for_a_failed_check_is_shown_as_text(meta):
    m = dataclasses.replace(
        meta, extra={"gate": {"openvino": {"passed": False, "error": "\x1b[2J\rboom"}}}
    )
    choice = choose_onnx_backend(m, "auto", ["CPUExecutionProvider"], True, "x86_64")
    assert "(\\x1b[2J\\rboom)" in choice.reason and "\x1b" not in choice.reason


def test_auto_opens_openvino_for_a_verified_artifact_on_x86(tmp_path):
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("OpenVINO is picked on x86 only")
    path = build_tiny_model(tmp_path / "tiny.onnx")
    write_meta(path, _gate(read_meta(path)))
    backend = open_backend(path)
    assert isinstance(backend, OvBackend) and "verified on OpenVINO at export" in backend.choice
    # An explicit backend or provider keeps ONNX Runtime, as before.
    assert type(open_backend(path, "onnxruntime")).__name__ == "OrtBackend"
    assert (
        open_backend(path, options=BackendOptions(provider="cpu")).choice == "provider='cpu' given"
    )
