"""Frames/s of the Triton Python-backend model with 1, 4 and 8 concurrent clients, on CPU.

    python -m benchmarks.triton_throughput                      # SCASeg-T, random weights, 256x256
    python -m benchmarks.triton_throughput --model m.int8.onnx  # any artifact with its sidecar

Starts a real tritonserver (tools/triton_server.py: the nvidia-pytriton wheel, loopback) on a
repository from `write_triton_repo`, sends 480x640 generated street frames, and prints a
Markdown table for BENCHMARKS.md with the in-process `Segmenter` measured in the same run as the
baseline (ratio = served / local, one client at a time locally).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import cpu_name
from export.triton_repo import write_triton_repo
from runtime.meta import ModelMeta, write_meta
from runtime.preprocess import Preprocess
from runtime.segmenter import Segmenter
from scenes import render_scene
from tools.triton_server import TritonServer, fetch_triton

FRAME_HW = (480, 640)


def export_demo_model(folder: Path, size: int, max_batch: int) -> Path:
    """SCASeg-T with random weights (speed does not depend on them), dynamic batch 1..max."""
    from export.onnx_export import ExportOptions, ShapeRange, export_onnx
    from scaseg.model import build_model
    from scenes.classes import DEMO_CLASSES, DEMO_PALETTE_RGB

    pp = Preprocess(size, size)
    sizes = (size, size, size)
    options = ExportOptions(size, size, dynamic=ShapeRange((1, 1, max_batch), sizes, sizes))
    data, io = export_onnx(build_model("t", len(DEMO_CLASSES)), pp, options)
    path = folder / "scaseg_t_random.fp32.onnx"
    path.write_bytes(data)
    meta = ModelMeta(
        variant="t (random weights, benchmark)",
        precision="fp32",
        class_names=DEMO_CLASSES,
        palette_rgb=DEMO_PALETTE_RGB,
        input=io.input,
        output=io.output,
        output_kind=io.output_kind,
        output_stride=io.output_stride,
        preprocess=pp,
    )
    write_meta(path, meta)
    return path


def client_loop(lib, url: str, model: str, frames: list, stop: float, lat: list) -> None:
    client = lib.InferenceServerClient(url)
    try:
        i = 0
        while time.perf_counter() < stop:
            batch = frames[i % len(frames)][None]
            inp = lib.InferInput("image", list(batch.shape), "UINT8")
            inp.set_data_from_numpy(batch)
            t0 = time.perf_counter()
            client.infer(model, [inp], outputs=[lib.InferRequestedOutput("labels")])
            lat.append(time.perf_counter() - t0)
            i += 1
    finally:
        client.close()


def measure(lib, url: str, model: str, frames: list, clients: int, seconds: float):
    """(frames/s, p50 latency ms) with `clients` threads sending one frame per request."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds
    threads = [
        threading.Thread(target=client_loop, args=(lib, url, model, frames, stop, latencies[c]))
        for c in range(clients)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    flat = [x for lat in latencies for x in lat]
    return len(flat) / elapsed, statistics.median(flat) * 1e3


def local_fps(artifact: Path, frames: list, seconds: float) -> float:
    with Segmenter(artifact, provider="cpu") as seg:
        seg(frames[0])  # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            seg(frames[n % len(frames)])
            n += 1
        return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="artifact (with sidecar); default SCASeg-T")
    parser.add_argument("--size", type=int, default=256, help="input size of the default model")
    parser.add_argument("--seconds", type=float, default=10.0, help="per concurrency level")
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    args = parser.parse_args(argv)
    if args.protocol == "grpc":
        import tritonclient.grpc as lib
    else:
        import tritonclient.http as lib

    work = Path(tempfile.mkdtemp(prefix="triton-bench."))
    artifact = args.model or export_demo_model(work, args.size, args.max_batch)
    repo = write_triton_repo(
        [artifact], work / "repo", model_name="seg", native=False, max_batch_size=args.max_batch
    )
    frames = [render_scene(2_000_000 + i, *FRAME_HW, t=0.1 * i)[0] for i in range(16)]
    baseline = local_fps(artifact, frames, args.seconds / 2)
    rows = []
    with TritonServer(fetch_triton(), repo, log_dir=work) as server:
        url = server.grpc_url if args.protocol == "grpc" else server.http_url
        measure(lib, url, "seg", frames, 1, 2.0)  # warm-up: first requests load sessions
        for clients in (int(c) for c in args.clients.split(",")):
            fps, p50 = measure(lib, url, "seg", frames, clients, args.seconds)
            rows.append((clients, fps, p50))
    shutil.rmtree(work, ignore_errors=True)
    from importlib.metadata import version

    import onnxruntime

    print(
        f"Triton Python-backend model `{artifact.name}` on CPU: {cpu_name()}, "
        f"{os.cpu_count()} cores; tritonserver 2.51 (nvidia-pytriton wheel), onnxruntime "
        f"{onnxruntime.__version__}, tritonclient {version('tritonclient')} ({args.protocol}); "
        f"{FRAME_HW[1]}x{FRAME_HW[0]} BGR frames, one per request, max_batch_size "
        f"{args.max_batch}, 1 instance; {args.seconds:.0f} s per row.\n"
    )
    print("| concurrent clients | frames/s | p50 latency (ms) | vs. local Segmenter |")
    print("|---:|---:|---:|---:|")
    for clients, fps, p50 in rows:
        print(f"| {clients} | {fps:.1f} | {p50:.1f} | {fps / baseline:.2f}x |")
    print(
        f"\nLocal in-process `Segmenter` (same artifact, 1 thread of calls): {baseline:.1f} frames/s."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
