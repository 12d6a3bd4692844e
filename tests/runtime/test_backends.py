"""Backend selection and ONNX Runtime provider checks, on real CPU sessions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx as onnx_pb
import onnxruntime as ort
import pytest

from runtime.backends import (
    Backend,
    BackendOptions,
    ProviderFallbackWarning,
    backend_kind,
    open_backend,
)
from runtime.backends.ort_backend import (
    CPU_EP,
    CUDA_EP,
    TRT_EP,
    check_loaded,
    provider_options,
    requested_providers,
)
from runtime.errors import RunError
from runtime.meta import MetaError, read_meta, sidecar_path, write_meta
from tests.support.tiny_onnx import build_tiny_model, custom_domain, edited_tiny_model, short_weight

REPO = Path(__file__).resolve().parents[2]


def test_kind_follows_the_file_type():
    assert backend_kind("m.int8.onnx") == "onnxruntime"
    assert backend_kind("m.fp16.engine") == "tensorrt"
    with pytest.raises(ValueError, match=r"unknown model type '.pt'"):
        backend_kind("m.pt")


def test_onnx_opens_on_cpu_and_says_so(plain_model):
    with open_backend(plain_model, options=BackendOptions(provider="cpu")) as backend:
        assert isinstance(backend, Backend)
        assert backend.description.endswith("CPUExecutionProvider")
        out = backend.infer(np.zeros((1, 3, 64, 64), np.float32))
        assert out.shape == (1, 4, 16, 16) and out.dtype == np.float32


def test_auto_on_a_cpu_build_runs_cpu_without_warnings(plain_model):
    if set(ort.get_available_providers()) & {CUDA_EP, TRT_EP}:
        pytest.skip("onnxruntime-gpu is installed here")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend = open_backend(plain_model)
    assert backend.providers == [CPU_EP]


def test_requested_cuda_that_did_not_load_is_an_error(plain_model):
    if CUDA_EP in ort.get_available_providers():
        pytest.skip("CUDA EP may load here; this checks the CPU-only build")
    with pytest.raises(
        RuntimeError, match="provider='cuda' was requested but CUDAExecutionProvider did not load"
    ):
        open_backend(plain_model, options=BackendOptions(provider="cuda"))


def test_requested_tensorrt_that_did_not_load_is_an_error(plain_model):
    if TRT_EP in ort.get_available_providers():
        pytest.skip("TensorRT EP may load here")
    with pytest.raises(RuntimeError, match="TensorrtExecutionProvider did not load"):
        open_backend(plain_model, options=BackendOptions(provider="tensorrt"))


def test_auto_warns_when_a_listed_accelerator_did_not_load(tmp_path):
    # The onnxruntime-gpu case: CUDA listed as available, but the session fell back to CPU.
    with pytest.warns(
        ProviderFallbackWarning, match="CUDAExecutionProvider listed as available but did not load"
    ):
        check_loaded("auto", [CUDA_EP, CPU_EP], [CPU_EP], tmp_path / "m.onnx")


def test_provider_order_and_trt_options(plain_model, tmp_path):
    assert requested_providers("auto", [CUDA_EP, CPU_EP]) == [CUDA_EP, CPU_EP]
    assert requested_providers("tensorrt", [CPU_EP]) == [TRT_EP, CUDA_EP, CPU_EP]
    meta = read_meta(plain_model)
    int8 = type(meta)(**{**meta.__dict__, "precision": "int8"})
    opts = provider_options(TRT_EP, int8, BackendOptions(trt_cache_dir=str(tmp_path)))
    assert opts["trt_int8_enable"] and opts["trt_fp16_enable"]
    assert opts["trt_engine_cache_enable"] and opts["trt_engine_cache_path"] == str(tmp_path)
    fp32 = provider_options(TRT_EP, meta, BackendOptions())
    assert not fp32["trt_fp16_enable"] and "trt_engine_cache_path" not in fp32


def test_missing_sidecar_and_missing_model(tmp_path, plain_model):
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(plain_model, lonely)
    with pytest.raises(MetaError, match="has no sidecar"):
        open_backend(lonely)
    with pytest.raises(FileNotFoundError, match=r"give the path of an \.onnx or \.engine file"):
        open_backend(tmp_path / "absent.onnx")


def test_sidecar_of_another_model_is_refused(tmp_path, plain_model, fused_model):
    target = tmp_path / "mixed.onnx"
    shutil.copy(plain_model, target)
    write_meta(target, read_meta(fused_model))
    with pytest.raises(MetaError, match=r"sidecar names input 'image'.*belongs to another model"):
        open_backend(target)


def test_forced_kind_must_match_the_file(plain_model):
    with pytest.raises(ValueError, match="is a onnxruntime artifact, not tensorrt"):
        open_backend(plain_model, kind="tensorrt")


def test_provider_flag_is_refused_for_engines(tmp_path, plain_model):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    sidecar_path(engine).write_text(sidecar_path(plain_model).read_text())
    with pytest.raises(ValueError, match=r"provider='cuda' applies to .onnx models"):
        open_backend(engine, options=BackendOptions(provider="cuda"))


def test_flags_for_the_other_backend_are_refused(plain_model, tmp_path):
    with pytest.raises(ValueError, match="cuda_graph=True applies to TensorRT engines"):
        open_backend(plain_model, options=BackendOptions(cuda_graph=True))
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    sidecar_path(engine).write_text(sidecar_path(plain_model).read_text())
    with pytest.raises(ValueError, match=r"trt_cache_dir=.* applies to .onnx models"):
        open_backend(engine, options=BackendOptions(trt_cache_dir=str(tmp_path)))


def test_options_are_validated():
    with pytest.raises(ValueError, match="provider must be one of"):
        BackendOptions(provider="gpu")


@pytest.mark.parametrize("fused_preprocess", [False, True])
@pytest.mark.parametrize("fused_argmax", [False, True])
@pytest.mark.parametrize("dynamic", [False, True])
def test_every_artifact_variant_opens_from_its_sidecar(
    make_model, tmp_path, fused_preprocess, fused_argmax, dynamic
):
    path = make_model(
        tmp_path / "v.onnx", fused_preprocess=fused_preprocess, fused_argmax=fused_argmax,
        dynamic=dynamic, labels_dtype="int32" if dynamic else "uint8",
    )  # fmt: skip
    backend = open_backend(path, options=BackendOptions(provider="cpu"))
    meta = backend.meta
    x = (
        np.zeros((1, 64, 64, 3), np.uint8)
        if fused_preprocess
        else np.zeros((1, 3, 64, 64), np.float32)
    )
    out = backend.infer(x)
    assert out.shape == ((1, 64, 64) if fused_argmax else (1, 4, 16, 16))
    assert out.dtype == np.dtype(meta.output.dtype)


def _claims_huge_weight(model) -> None:
    model.graph.initializer[0].dims[:] = [1 << 40, 3, 4, 4]  # 16 TB claimed, 768 bytes present


def _type_clash(model) -> None:
    model.graph.input[0].type.tensor_type.elem_type = onnx_pb.TensorProto.INT64


@pytest.mark.parametrize(
    "edit",
    [custom_domain, _claims_huge_weight, short_weight, _type_clash],
    ids=lambda e: e.__name__,
)
def test_a_model_onnx_runtime_cannot_load_is_one_meta_error(tmp_path, edit):
    path = edited_tiny_model(tmp_path / "bad.onnx", edit)
    with pytest.raises(MetaError, match=r"cannot load .*bad\.onnx: not a valid ONNX model") as err:
        open_backend(path, options=BackendOptions(provider="cpu"))
    assert "\n" not in str(err.value)


def test_graph_output_channels_other_than_the_sidecar_classes_are_refused(tmp_path):
    path = build_tiny_model(tmp_path / "m.onnx", num_classes=4)
    three = read_meta(build_tiny_model(tmp_path / "three.onnx", num_classes=3))
    write_meta(path, three)  # consistent in itself: 3 names, 3 output channels; the graph has 4
    with pytest.raises(MetaError, match=r"sidecar output shape \[1, 3, 16, 16\] does not match"):
        open_backend(path, options=BackendOptions(provider="cpu"))


def test_an_accelerator_that_fails_on_a_model_the_cpu_loads_is_a_run_error(
    plain_model, monkeypatch
):
    """A FAKE failing CUDA session (this machine has no GPU): the CPU retry loads the model, so
    the failure is the setup's (exit 1), not the file's."""
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail

    real = ort.InferenceSession

    def fake_session(path, so, providers):
        if providers[0] != CPU_EP:
            raise Fail("[ONNXRuntimeError] : 1 : FAIL : CUDA failure 999: unknown error")
        return real(path, so, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    with pytest.raises(RunError, match=r"CUDAExecutionProvider failed to load .*loads on the CPU"):
        open_backend(plain_model, options=BackendOptions(provider="cuda"))


def test_a_requested_provider_that_did_not_load_is_a_run_error(plain_model):
    if CUDA_EP in ort.get_available_providers():
        pytest.skip("CUDA EP may load here")
    with pytest.raises(RunError, match="provider='cuda' was requested"):
        open_backend(plain_model, options=BackendOptions(provider="cuda"))


def test_scaseg_run_on_a_custom_operator_model_is_one_line(tmp_path):
    import cv2

    path = edited_tiny_model(tmp_path / "bad.onnx", custom_domain)
    cv2.imwrite(str(tmp_path / "frame.png"), np.zeros((32, 32, 3), np.uint8))
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-m", "runtime.cli", str(tmp_path / "frame.png"), "--model", str(path),
         "--out", str(tmp_path / "out.png")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "com.example.evil" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "\x1b" not in result.stderr
    assert not (tmp_path / "out.png").exists()
