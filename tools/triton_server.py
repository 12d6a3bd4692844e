"""A real Triton Inference Server for tests and benchmarks, from the `nvidia-pytriton` wheel.

The wheel ships a working `tritonserver` binary (CPU-capable), its shared libraries and the
Python backend, with one `triton_python_backend_stub` per Python version. It is downloaded with
pip (`--no-deps`: its metadata pins numpy<2, which must not touch our environment) and unpacked
into a cache folder; nothing is installed.

    dist = fetch_triton()                      # .cache/triton/, downloaded once
    with TritonServer(dist, repo) as server:   # loopback, free ports, stopped on exit
        server.http_url, server.grpc_url

Hard-won details, for tritonserver 2.51 from nvidia-pytriton 0.7.0:
- the binary needs LD_LIBRARY_PATH on the wheel's `nvidia_pytriton.libs`;
- the Python backend wants the stub for the running Python next to `libtriton_python.so`; the
  stub links `libpython3.X.so`, so this interpreter's LIBDIR goes first on LD_LIBRARY_PATH;
- the stub ignores PYTHONPATH; it finds its site-packages from the first `python3` on PATH;
- the stub is built against numpy 1.x: under numpy 2 every tensor crossing it reads as zeros or
  comes back empty (no error anywhere). So it gets its own venv (`stub-env-py3.X`, numpy<2, OpenCV,
  ONNX Runtime), made from this interpreter, whose bin folder goes first on PATH. Our `runtime`
  package travels inside the generated repository (write_triton_repo's bundle_runtime).

CLI: `python -m tools.triton_server fetch` downloads and prepares; `... serve REPO` runs a server
in the foreground (Ctrl-C stops it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

PYTRITON_VERSION = "0.7.0"  # tritonserver 2.51.0
# What model.py imports inside the stub; numpy<2 for the stub's ABI (see above). OpenCV 4.12 and
# later require numpy 2. OpenVINO (numpy >= 1.16.6 supported) serves models asking for it.
STUB_REQUIREMENTS = (
    "numpy>=1.24,<2",
    "opencv-python-headless>=4.8,<4.12",
    "onnxruntime>=1.17",
    "onnx>=1.16",  # runtime.onnx_guard parses every model before a runtime opens it
    "openvino>=2024.4",
)
DEFAULT_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "triton"


class TritonDownloadError(RuntimeError):
    """pip could not fetch the wheel or the stub's packages; `network` says whether pip's output
    shows the package index unreachable (tests skip only then)."""

    def __init__(self, message: str, pip_output: str):
        lines = [ln for ln in pip_output.splitlines() if _NETWORK_ERRORS.search(ln)]
        self.network = bool(lines)
        super().__init__(f"{message}; network: {lines[0].strip()}" if lines else message)


_NETWORK_ERRORS = re.compile(
    r"NewConnectionError|Network is unreachable|Temporary failure in name resolution|"
    r"Name or service not known|No route to host|Max retries exceeded|ConnectTimeout|"
    r"ReadTimeout|Connection refused|ProxyError"
)


class TritonStartError(RuntimeError):
    """tritonserver started but did not become ready; the message carries its log's tail."""


@dataclass(frozen=True)
class TritonDist:
    binary: Path
    libs: Path  # the wheel's bundled shared libraries
    backends: Path  # backend folder with the stub for this Python version
    python_env: Path  # the venv the stub runs model.py in
    version: str


def _download_wheel(cache: Path) -> Path:
    wheels = cache / "wheels"
    found = sorted(wheels.glob(f"nvidia_pytriton-{PYTRITON_VERSION}-*.whl"))
    if found:
        return found[-1]
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    cmd += ["--dest", str(wheels), f"nvidia-pytriton=={PYTRITON_VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    found = sorted(wheels.glob(f"nvidia_pytriton-{PYTRITON_VERSION}-*.whl"))
    if proc.returncode != 0 or not found:
        output = proc.stderr + proc.stdout
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise TritonDownloadError(
            f"pip could not download nvidia-pytriton=={PYTRITON_VERSION} ({tail or 'no output'})",
            output,
        )
    return found[-1]


def _unpack(wheel: Path, cache: Path) -> Path:
    dest = cache / f"pytriton-{PYTRITON_VERSION}"
    if (dest / ".complete").is_file():
        return dest
    tmp = Path(tempfile.mkdtemp(prefix=".unpack.", dir=cache))
    try:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                path = Path(zf.extract(info, tmp))
                mode = info.external_attr >> 16  # zipfile drops the executable bits
                if mode:
                    path.chmod(mode & 0o777)
        (tmp / ".complete").touch()
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)  # a crash mid-unpack never leaves a "complete" folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def fetch_triton(cache: Path = DEFAULT_CACHE) -> TritonDist:
    """Download (once) and unpack the wheel; prepare the backend folder for this Python."""
    cache.mkdir(parents=True, exist_ok=True)
    root = _unpack(_download_wheel(cache), cache)
    server = root / "pytriton" / "tritonserver"
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server / "python_backend_stubs" / py / "triton_python_backend_stub"
    if not stub.is_file():
        shipped = sorted(p.name for p in (server / "python_backend_stubs").iterdir())
        raise RuntimeError(
            f"nvidia-pytriton {PYTRITON_VERSION} ships Python backend stubs for {shipped}, not "
            f"for Python {py}; run the tests with one of those Python versions"
        )
    backends = cache / f"backends-py{py}"
    if not (backends / "python" / "triton_python_backend_stub").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=".backends.", dir=cache))
        shutil.copytree(server / "backends" / "python", tmp / "python")
        shutil.copy2(stub, tmp / "python" / "triton_python_backend_stub")
        shutil.rmtree(backends, ignore_errors=True)
        os.replace(tmp, backends)
    return TritonDist(
        binary=server / "bin" / "tritonserver",
        libs=root / "nvidia_pytriton.libs",
        backends=backends,
        python_env=_stub_env(cache / f"stub-env-py{py}"),
        version=PYTRITON_VERSION,
    )


def _stub_env(env: Path) -> Path:
    """A venv of this interpreter with STUB_REQUIREMENTS (made once; `.complete` marks it and
    lists the requirements it was made with, so a changed list makes it again)."""
    marker = env / ".complete"
    wanted = "\n".join(STUB_REQUIREMENTS)
    if marker.is_file() and marker.read_text() == wanted:
        return env
    shutil.rmtree(env, ignore_errors=True)
    # Made from the base interpreter, so the venv's python3 matches the libpython the stub loads.
    base = (
        Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    )
    python = base if base.is_file() else Path(sys.executable)
    subprocess.run([str(python), "-m", "venv", str(env)], check=True, capture_output=True)
    cmd = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    cmd += ["--disable-pip-version-check", *STUB_REQUIREMENTS]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        output = proc.stderr + proc.stdout
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise TritonDownloadError(
            f"pip could not install the Python backend's environment {list(STUB_REQUIREMENTS)} "
            f"into {env} ({tail or 'no output'})",
            output,
        )
    marker.write_text(wanted)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(dist: TritonDist) -> dict[str, str]:
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ld = [libdir, str(dist.libs), env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = ":".join(p for p in ld if p)
    env["PATH"] = f"{dist.python_env / 'bin'}:{env.get('PATH', '')}"
    env.pop("PYTHONHOME", None)  # would override the venv the stub finds on PATH
    return env


class TritonServer:
    """tritonserver on 127.0.0.1 serving `repo`; a context manager that always stops it."""

    def __init__(self, dist: TritonDist, repo: Path, *, log_dir: Path | None = None):
        self.dist, self.repo = dist, Path(repo)
        self.http_port, self.grpc_port = _free_port(), _free_port()
        self.http_url = f"127.0.0.1:{self.http_port}"
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        self.log_path = Path(log_dir or tempfile.mkdtemp(prefix="triton-log.")) / "tritonserver.log"
        self._proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [
            str(self.dist.binary),
            f"--model-repository={self.repo}",
            f"--backend-directory={self.dist.backends}",
            "--http-address=127.0.0.1",
            f"--http-port={self.http_port}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            "--allow-metrics=false",
            "--strict-model-config=true",  # serve the generated config as written
            "--exit-timeout-secs=5",
        ]

    def start(self, timeout_s: float = 120.0) -> TritonServer:
        log = open(self.log_path, "wb")  # noqa: SIM115 (the server process owns it until stop)
        self._proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=server_env(self.dist)
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise TritonStartError(f"tritonserver exited with code {code}:\n{self.log_tail()}")
            if self._ready():
                return self
            time.sleep(0.25)
        self.stop()
        raise TritonStartError(
            f"tritonserver not ready after {timeout_s:.0f} s:\n{self.log_tail()}"
        )

    def _ready(self) -> bool:
        url = f"http://{self.http_url}/v2/health/ready"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
        return False

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM: Triton unloads models and stops its stub processes
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> TritonServer:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fetch", help="download and unpack the wheel into .cache/triton/")
    serve = sub.add_parser("serve", help="serve a model repository on 127.0.0.1 until Ctrl-C")
    serve.add_argument("repo", type=Path)
    args = parser.parse_args(argv)
    dist = fetch_triton()
    if args.cmd == "fetch":
        print(f"tritonserver ready: {dist.binary}")
        return 0
    with TritonServer(dist, args.repo) as server:
        print(f"serving {args.repo}: HTTP {server.http_url}, gRPC {server.grpc_url}; Ctrl-C stops")
        with contextlib.suppress(KeyboardInterrupt):
            while server._proc is not None and server._proc.poll() is None:
                time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
