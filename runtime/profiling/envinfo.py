"""What a latency number was measured on, and how much memory it took.

Every report carries the CPU, GPU and compute capability, library versions, the provider that
really ran, and on Jetson the board, L4T release, nvpmodel power mode and clocks: a latency
without them cannot be compared with another. Every probe is best effort: a
file, command or library that is absent gives None, never an error, and nothing heavy is imported
(versions come from package metadata, or from modules the backend already loaded).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

# CPU features that decide which kernels ONNX Runtime can use (int8 dot products above all).
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16",
             "asimd", "asimddp", "sve", "i8mm", "bf16")  # fmt: skip
SMI_GPU_FIELDS = (
    "name",
    "compute_cap",
    "driver_version",
    "memory.total",
    "clocks.sm",
    "clocks.mem",
    "clocks.max.sm",
    "pstate",
    "power.draw",
    "power.limit",
)


def read_text(path: str | os.PathLike) -> str | None:
    """A small text file's content without NULs and surrounding whitespace, or None."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def run_quiet(args: list[str], timeout_s: float = 5.0) -> str | None:
    """stdout of a command if it exists and succeeds within the timeout, else None."""
    if shutil.which(args[0]) is None:
        return None
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def package_version(*names: str) -> str | None:
    """Installed version of the first distribution found, else of an already imported module."""
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(name)
    for name in names:
        module = sys.modules.get(name.replace("-", "_").split("_gpu")[0])
        if module is not None and hasattr(module, "__version__"):
            return str(module.__version__)
    return None


# ---------------------------------------------------------------------------------------------
# CPU, GPU, Jetson


def cpu_info() -> dict:
    text = read_text("/proc/cpuinfo") or ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    found = re.search(r"^(flags|Features)\s*:\s*(.+)$", text, re.M)  # x86 | arm64
    flags = set(found.group(2).split()) if found else set()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    freqs = [
        int(v) / 1e3
        for f in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")
        if (v := read_text(f)) and v.isdigit()
    ]
    return {
        "model": model.group(1).strip() if model else (platform.processor() or None),
        "arch": platform.machine(),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "governor": read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cur_mhz_mean": round(sum(freqs) / len(freqs)) if freqs else None,
        "max_mhz": _mhz(read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"), 1e3),
    }


def _mhz(value: str | None, divisor: float) -> float | None:
    return round(int(value) / divisor) if value and value.isdigit() else None


def nvidia_smi_gpus() -> list[dict]:
    """One dict per GPU from nvidia-smi (desktop/server GPUs; Jetson has none or a partial one).

    Drivers that do not know a field (compute_cap is recent) refuse the whole query, so it is
    asked again without that field. GPUs come in nvidia-smi's order, which is the CUDA device
    order only without CUDA_VISIBLE_DEVICES / CUDA_DEVICE_ORDER remapping."""
    for fields in (SMI_GPU_FIELDS, tuple(f for f in SMI_GPU_FIELDS if f != "compute_cap")):
        out = run_quiet(
            ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]
        )
        if out:
            return _smi_rows(out, fields)
    return []


def _smi_rows(out: str, fields: tuple[str, ...]) -> list[dict]:
    gpus = []
    for line in out.splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) == len(fields):
            gpus.append(
                {
                    k.replace(".", "_"): (None if v in ("[N/A]", "N/A") else v)
                    for k, v in zip(fields, values)
                }
            )
    return gpus


def gpu_info(cuda: object | None = None, device: int = 0) -> dict | None:
    """GPU name, compute capability, driver, clocks: from the CUDA API the backend holds (if any)
    and from nvidia-smi; None on a machine without either."""
    info: dict = {}
    smi = nvidia_smi_gpus()
    if len(smi) > device:
        info.update(smi[device], source="nvidia-smi")
    if cuda is not None:
        with contextlib.suppress(Exception):
            dev = cuda.device_info()
            info.update(
                name=dev.name,
                compute_capability=dev.compute_capability,
                cuda_version=dev.cuda_version,
                source=f"{info.get('source', '')} {cuda.name}".strip(),
            )
    if "compute_cap" in info:
        info.setdefault("compute_capability", info.pop("compute_cap"))
    return info or None


def jetson_info() -> dict | None:
    """Board, L4T release, power mode and clocks on a Jetson; None elsewhere."""
    release = read_text("/etc/nv_tegra_release")
    model = read_text("/proc/device-tree/model")
    if release is None and not (model and "jetson" in model.lower()):
        return None
    power = run_quiet(["nvpmodel", "-q"])
    mode = re.search(r"NV Power Mode:\s*(.+)", power or "")
    return {
        "model": model,
        "l4t_release": release.splitlines()[0] if release else None,
        "jetpack": run_quiet(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"]),
        "power_mode": mode.group(1).strip() if mode else None,
        "power_mode_id": (power.splitlines()[-1].strip() if power else None),
        "gpu_cur_mhz": _jetson_gpu_mhz("cur_freq"),
        "gpu_max_mhz": _jetson_gpu_mhz("max_freq"),
        "emc_mhz": _mhz(read_text("/sys/kernel/debug/bpmp/debug/clk/emc/rate"), 1e6),
    }


def _jetson_gpu_mhz(field: str) -> float | None:
    # The integrated GPU's devfreq node: 17000000.ga10b (Orin), 17000000.gv11b (Xavier), gpu.0.
    for node in (
        "/sys/class/devfreq/*.ga10b",
        "/sys/class/devfreq/*.gv11b",
        "/sys/class/devfreq/*gpu*",
    ):
        for path in glob.glob(f"{node}/{field}"):
            if (mhz := _mhz(read_text(path), 1e6)) is not None:
                return mhz
    return None


def cuda_toolkit_version() -> str | None:
    data = read_text("/usr/local/cuda/version.json")
    if data:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return str(json.loads(data)["cuda"]["version"])
    text = read_text("/usr/local/cuda/version.txt")
    found = re.search(r"(\d+\.\d+(\.\d+)?)", text or "")
    return found.group(1) if found else None


def versions() -> dict:
    return {
        "python": platform.python_version(),
        "numpy": package_version("numpy"),
        "opencv": package_version(
            "opencv-python", "opencv-python-headless", "opencv-contrib-python", "cv2"
        ),
        "onnxruntime": package_version("onnxruntime", "onnxruntime-gpu"),
        "tensorrt": package_version(
            "tensorrt",
            "tensorrt-cu12",
            "tensorrt-cu13",
            "tensorrt-cu12-bindings",
            "tensorrt-cu13-bindings",
        ),
        "cuda_toolkit": cuda_toolkit_version(),
        "pycuda": package_version("pycuda"),
        "cuda_python": package_version("cuda-python", "cuda-bindings"),
        "openvino": package_version("openvino"),
    }


def backend_info(backend: object | None, options: object | None = None) -> dict | None:
    """What really ran: backend type, its own description and (ONNX Runtime) loaded providers."""
    if backend is None:
        return None
    meta = getattr(backend, "meta", None)
    return {
        "type": type(backend).__name__,
        "description": getattr(backend, "description", None),
        "providers_loaded": list(getattr(backend, "providers", []) or []) or None,
        "precision": getattr(meta, "precision", None),
        "intra_op_threads": getattr(options, "intra_op_threads", None),
        # OpenVINO: the device(s) that executed and the inference precision read back after
        # compiling (bf16 on CPUs that have it, unless f32 was asked for); None elsewhere.
        "device": getattr(backend, "device", None),
        "inference_precision": getattr(backend, "inference_precision", None),
        "int8_layers": getattr(backend, "int8_layers", None),
        "choice": getattr(backend, "choice", None),
    }


def capture_environment(
    backend: object | None = None, cuda: object | None = None, options: object | None = None
) -> dict:
    """Everything above in one JSON-ready dict (keys are stable; values may be None)."""
    device = getattr(options, "device", 0)
    device = device if isinstance(device, int) else 0  # an OpenVINO name is not a CUDA index
    return {
        "os": platform.platform(),
        "cpu": cpu_info(),
        "memory_total_mb": _mem_total_mb(),
        "gpu": gpu_info(cuda, device),
        "jetson": jetson_info(),
        "versions": versions(),
        "backend": backend_info(backend, options),
    }


def _mem_total_mb() -> float | None:
    found = re.search(r"MemTotal:\s+(\d+) kB", read_text("/proc/meminfo") or "")
    return round(int(found.group(1)) / 1024) if found else None


# ---------------------------------------------------------------------------------------------
# Memory


@dataclass(frozen=True)
class MemoryUsage:
    rss_peak_mb: float | None  # whole process lifetime, model load included
    rss_peak_source: str | None
    rss_now_mb: float | None
    gpu_used_mb: float | None
    gpu_source: str | None  # what gpu_used_mb counts (this process, or the whole device)
    engine_device_memory_mb: float | None  # TensorRT: activations/scratch per execution context
    model_file_mb: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def rss_peak_mb() -> tuple[float | None, str | None]:
    """Peak resident set size of this process: VmHWM (Linux), else getrusage's ru_maxrss."""
    found = re.search(r"VmHWM:\s+(\d+) kB", read_text("/proc/self/status") or "")
    if found:
        return int(found.group(1)) / 1024, "/proc/self/status VmHWM"
    try:
        import resource
    except ImportError:  # Windows
        return None, None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    return (peak / 1024**2 if sys.platform == "darwin" else peak / 1024), "getrusage ru_maxrss"


def rss_now_mb() -> float | None:
    with contextlib.suppress(ImportError):
        import psutil

        return psutil.Process().memory_info().rss / 1024**2
    found = re.search(r"VmRSS:\s+(\d+) kB", read_text("/proc/self/status") or "")
    return int(found.group(1)) / 1024 if found else None


def gpu_used_mb(is_gpu_backend: bool) -> tuple[float | None, str | None]:
    """GPU memory used by this process (nvidia-smi), or a note where it cannot be separated."""
    if not is_gpu_backend:
        return None, None
    if jetson_info() is not None:
        return None, "Jetson unified memory: GPU allocations are part of the process RSS"
    out = run_quiet(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
    )
    for line in (out or "").splitlines():
        pid, _, used = (v.strip() for v in line.partition(","))
        if pid == str(os.getpid()) and used.isdigit():
            return float(used), "nvidia-smi (this process)"
    return None, "not readable (no nvidia-smi entry for this process; containers hide PIDs)"


def engine_device_memory_mb(backend: object | None) -> float | None:
    """TensorRT engine's per-context device memory; None for other backends."""
    # TrtBackend exposes no public engine handle; these two attributes are its own.
    trt, engine = getattr(backend, "_trt", None), getattr(backend, "_engine", None)
    if trt is None or engine is None:
        return None
    from runtime import trt_compat

    with contextlib.suppress(AttributeError, TypeError, ValueError):
        return trt_compat.device_memory_bytes(trt, engine) / 1024**2
    return None


def measure_memory(backend: object | None = None) -> MemoryUsage:
    peak, source = rss_peak_mb()
    is_gpu = backend is not None and (
        hasattr(backend, "set_layer_profiler")
        or any(p != "CPUExecutionProvider" for p in getattr(backend, "providers", []) or [])
    )
    gpu, gpu_source = gpu_used_mb(is_gpu)
    path = getattr(backend, "path", None)
    size = Path(path).stat().st_size / 1024**2 if path and Path(path).is_file() else None
    return MemoryUsage(
        rss_peak_mb=peak,
        rss_peak_source=source,
        rss_now_mb=rss_now_mb(),
        gpu_used_mb=gpu,
        gpu_source=gpu_source,
        engine_device_memory_mb=engine_device_memory_mb(backend),
        model_file_mb=size,
    )
