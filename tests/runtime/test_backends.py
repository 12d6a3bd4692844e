"""Backend selection and ONNX Runtime provider checks, on real CPU sessions."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
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
from runtime.meta import MetaError, read_meta, sidecar_path, write_meta


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
