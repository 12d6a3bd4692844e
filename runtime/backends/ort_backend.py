"""ONNX Runtime backend: TensorRT EP, CUDA EP or CPU EP, with a check of what really loaded.

onnxruntime-gpu lists CUDAExecutionProvider in get_available_providers() even where CUDA or cuDNN
cannot be loaded, then quietly runs on the CPU. So the session itself is asked which providers it
registered, and a provider the user asked for that is missing there is an error.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from runtime.backends import BackendOptions, ProviderFallbackWarning
from runtime.deps import require
from runtime.errors import RunError
from runtime.meta import MetaError, ModelMeta, check_graph_io
from runtime.onnx_guard import check_external_data
from runtime.text import printable

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
PROVIDER_NAMES = {"tensorrt": TRT_EP, "cuda": CUDA_EP, "cpu": CPU_EP}


def requested_providers(provider: str, available: list[str]) -> list[str]:
    """Provider names to hand to the session, best first."""
    if provider == "auto":
        return [p for p in (TRT_EP, CUDA_EP) if p in available] + [CPU_EP]
    if provider == "tensorrt":
        # CUDA and CPU stay behind TensorRT for the nodes TensorRT does not take.
        return [TRT_EP, CUDA_EP, CPU_EP]
    if provider == "cuda":
        return [CUDA_EP, CPU_EP]
    return [CPU_EP]


def provider_options(name: str, meta: ModelMeta, options: BackendOptions) -> dict:
    if name == TRT_EP:
        opts = {
            "device_id": options.cuda_device,
            # Precision lives in the ONNX (FP16 casts, INT8 Q/DQ); these flags only let TensorRT
            # use the matching kernels for it. INT8 keeps FP16 for the layers left unquantized.
            "trt_fp16_enable": meta.precision in ("fp16", "int8"),
            "trt_int8_enable": meta.precision == "int8",
        }
        if options.trt_cache_dir:
            opts.update(
                trt_engine_cache_enable=True,
                trt_engine_cache_path=str(options.trt_cache_dir),
                trt_timing_cache_enable=True,
                trt_timing_cache_path=str(options.trt_cache_dir),
            )
        return opts
    if name == CUDA_EP:
        return {"device_id": options.cuda_device}
    return {}


def check_loaded(provider: str, wanted: list[str], loaded: list[str], path: Path) -> None:
    """Error if an explicitly requested provider did not load; warn if auto lost one."""
    if provider != "auto":
        name = PROVIDER_NAMES[provider]
        if not loaded or loaded[0] != name:
            raise RunError(
                f"provider='{provider}' was requested but {name} did not load for {path.name} "
                f"(session runs {', '.join(loaded) or 'nothing'}); install onnxruntime-gpu with a "
                "matching CUDA/cuDNN/TensorRT, or use provider='cpu'"
            )
        return
    lost = [p for p in wanted if p not in loaded]
    if lost:
        warnings.warn(
            f"{', '.join(lost)} listed as available but did not load (missing CUDA/cuDNN/TensorRT "
            f"libraries?); running on {loaded[0]}",
            ProviderFallbackWarning,
            stacklevel=3,
        )


class OrtBackend:
    """An ONNX Runtime session for one artifact; see `runtime.backends.Backend`."""

    choice: str | None = None  # set by open_backend when --backend auto picked it

    def __init__(self, path: str | os.PathLike, meta: ModelMeta, options: BackendOptions):
        ort = require("onnxruntime", "to run .onnx models")
        self.path = Path(path)
        self.meta = meta
        wanted = requested_providers(options.provider, ort.get_available_providers())
        providers = [(p, provider_options(p, meta, options)) for p in wanted]
        so = ort.SessionOptions()
        if options.intra_op_threads:
            so.intra_op_num_threads = options.intra_op_threads
        so.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if options.allow_spinning else "0"
        )
        # Fatal only: every load failure ONNX Runtime raises is reported as one line below
        # (its own error log repeats it, in colour), and provider fallbacks are checked below.
        so.log_severity_level = 4
        with warnings.catch_warnings():
            # ORT warns "Specified provider ... is not in available provider names"; the
            # check below turns that into a specific error instead.
            warnings.simplefilter("ignore")
            self._session = _load_session(ort, self.path, so, providers)
        self.providers = list(self._session.get_providers())
        check_loaded(options.provider, wanted, self.providers, self.path)
        self._check_io()
        self.description = f"onnxruntime {ort.__version__} {self.providers[0]}"

    def _check_io(self) -> None:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        check_graph_io(
            self.path,
            self.meta,
            [i.name for i in inputs],
            [o.name for o in outputs],
            next((i.shape for i in inputs if i.name == self.meta.input.name), None),
            next((o.shape for o in outputs if o.name == self.meta.output.name), None),
        )

    def infer(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self._session.run([self.meta.output.name], {self.meta.input.name: batch})
        return out

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> OrtBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load_session(ort, path: Path, so, providers: list):
    """An InferenceSession; a file ONNX Runtime cannot load is bad input (MetaError), a provider
    that fails on a file the CPU loads is a failure of this machine's setup (RunError)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    check_external_data(path)  # ONNX Runtime before 1.27 follows some external-data paths
    # Raised for the file itself: unparseable, invalid graph, unknown op, bad initializer.
    not_a_model = (state.InvalidProtobuf, state.InvalidGraph, state.InvalidArgument,
                   state.NoSuchFile, state.NotImplemented, state.NoModel)  # fmt: skip
    try:
        return ort.InferenceSession(str(path), so, providers=providers)
    except not_a_model as err:
        raise _unloadable(path, err) from err
    except UnicodeDecodeError as err:
        # The binding decodes strings the model holds (names, metadata) as UTF-8 and raises this
        # for bytes that are not: the file's content, not this machine.
        raise _unloadable(path, err) from err
    except (state.Fail, state.RuntimeException, state.EPFail, state.EngineError) as err:
        # Either the file or an accelerator's setup: a CPU-only session tells them apart.
        if [name for name, _ in providers] == [CPU_EP]:
            raise _unloadable(path, err) from err
        try:
            ort.InferenceSession(str(path), so, providers=[CPU_EP])
        except (*not_a_model, state.Fail, state.RuntimeException) as cpu_err:
            raise _unloadable(path, cpu_err) from err
        raise RunError(
            f"{providers[0][0]} failed to load {path.name} ({_first_line(err, path)}), which "
            "loads on the CPU: check the CUDA/cuDNN/TensorRT installation, or use provider='cpu'"
        ) from err


def _first_line(err: BaseException, path: Path) -> str:
    """ONNX Runtime's message, first line only, without the path we already name."""
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return printable(" ".join(lines[0].split()).replace(str(path), path.name), markup=False)


def _unloadable(path: Path, err: BaseException) -> MetaError:
    return MetaError(
        f"cannot load {path}: not a valid ONNX model for ONNX Runtime ({_first_line(err, path)}); "
        "is it truncated, mislabelled or made with custom operators? Re-export it with "
        "scaseg-export"
    )
