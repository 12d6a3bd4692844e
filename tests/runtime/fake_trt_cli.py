"""`scaseg-run` with FAKE TensorRT and CUDA (tests/support/) standing in for the real.

For subprocess tests of what the CLI does around an engine on a machine without a GPU: the
sidecar provenance check, exit codes, one-line errors. The fake "device" runs TensorRT
FAKE_TRT_VERSION (default 10.3.0.30) on a GPU named FAKE_GPU_NAME (default "Fake GPU") with
compute capability 8.7. It proves nothing about real TensorRT, pycuda or cuda-python.

    python -m tests.runtime.fake_trt_cli clip.mp4 --model m.fp16.engine --out out.mp4
"""

from __future__ import annotations

import os
import sys

from tests.support.fake_cuda import FakeCuda
from tests.support.fake_tensorrt import FakeTrt


def main() -> None:
    cuda = FakeCuda(gpu_name=os.environ.get("FAKE_GPU_NAME", "Fake GPU"))
    version = os.environ.get("FAKE_TRT_VERSION", "10.3.0.30")
    sys.modules["tensorrt"] = FakeTrt(version, cuda=cuda)
    from runtime.backends import trt_backend
    from runtime.cli import main as run_main

    # open_backend (and so the CLI) has no way to pass a CudaApi down to TrtBackend yet.
    trt_backend.open_cuda = lambda device=0, need_graphs=False: cuda
    run_main()


if __name__ == "__main__":
    main()
