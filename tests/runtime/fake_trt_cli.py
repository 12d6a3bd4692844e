"""`scaseg-run` with FAKE TensorRT and CUDA (tests/support/) standing in for the real.

For subprocess tests of what the CLI does around an engine on a machine without a GPU: the
sidecar provenance check, exit codes, one-line errors. The fake "device" runs TensorRT
FAKE_TRT_VERSION (default 10.3.0.30) on a GPU named FAKE_GPU_NAME (default "Fake GPU") with
compute capability 8.7. It proves nothing about real TensorRT, pycuda or cuda-python.

The fakes reach the app the way any caller's objects do: as scaseg-run's EngineApis, click's
context object (run_app's `obj`), which TrtBackend takes as its `tensorrt=`/`cuda=`. Nothing is
patched; the environment variables configure the fakes only, never the production code.

    python -m tests.runtime.fake_trt_cli clip.mp4 --model m.fp16.engine --out out.mp4
"""

from __future__ import annotations

import os

from tests.support.fake_cuda import FakeCuda
from tests.support.fake_tensorrt import FakeTrt


def main() -> None:
    from runtime.cli import EngineApis, app
    from runtime.cli_app import run_app

    cuda = FakeCuda(gpu_name=os.environ.get("FAKE_GPU_NAME", "Fake GPU"))
    trt = FakeTrt(os.environ.get("FAKE_TRT_VERSION", "10.3.0.30"), cuda=cuda)
    run_app(app, "scaseg-run", obj=EngineApis(tensorrt=trt, cuda=cuda))


if __name__ == "__main__":
    main()
