"""A real tritonserver (from the nvidia-pytriton wheel, on loopback, started and stopped here)
serves a generated Python-backend repository; concurrent HTTP and gRPC clients must get the label
maps that local inference gives for the same artifact, and Triton must have batched them."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from export.triton_repo import write_triton_repo
from runtime.segmenter import Segmenter
from tests.support.deploy_models import build_model
from tools.triton_server import TritonDownloadError, TritonServer, fetch_triton

pytestmark = pytest.mark.slow
MODELS = ("plain", "fused")  # plain static graph; fused uint8-in/labels-out with dynamic batch
SIZES = ((48, 80), (64, 64))  # frame (H,W); the model input is 64x64


@pytest.fixture(scope="module")
def triton_dist():
    try:
        return fetch_triton()
    except TritonDownloadError as err:
        if not err.network:  # only a missing network is a reason to skip; anything else fails
            raise
        pytest.skip(f"no network to the package index for tritonserver: {err}")


@pytest.fixture(scope="module")
def served(triton_dist, tmp_path_factory):
    root = tmp_path_factory.mktemp("triton")
    artifacts = {
        "plain": build_model(root / "plain.fp32.onnx"),
        "fused": build_model(root / "fused.fp32.onnx", fused=True, dynamic=True),
    }
    repo = root / "repo"
    for name, artifact in artifacts.items():
        # intra_op_threads is left to ONNX Runtime; one instance per model keeps this light.
        write_triton_repo([artifact], repo, model_name=name, native=False, max_batch_size=8)
    # The plain artifact once more, served through OpenVINO on the CPU.
    write_triton_repo([artifacts["plain"]], repo, model_name="plain_ov", native=False,
                      max_batch_size=8, openvino_device="CPU")  # fmt: skip
    with TritonServer(triton_dist, repo, log_dir=root) as server:
        yield server, artifacts


def frames_for(client_id: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(client_id)
    h, w = SIZES[client_id % len(SIZES)]
    return [rng.integers(0, 256, (h, w, 3), np.uint8) for _ in range(count)]


def infer(protocol: str, url: str, model: str, batch: np.ndarray) -> np.ndarray:
    lib = httpclient if protocol == "http" else grpcclient
    client = lib.InferenceServerClient(url)
    try:
        inp = lib.InferInput("image", list(batch.shape), "UINT8")
        inp.set_data_from_numpy(batch)
        result = client.infer(model, [inp], outputs=[lib.InferRequestedOutput("labels")])
        return result.as_numpy("labels")
    finally:
        client.close()


@pytest.mark.parametrize("model", MODELS)
def test_concurrent_http_and_grpc_clients_get_local_labels(served, model):
    server, artifacts = served
    clients = [(i, "http" if i % 2 else "grpc") for i in range(8)]
    requests_per_client = 6
    results: dict[int, list[np.ndarray]] = {}
    errors: list[BaseException] = []

    def run(client_id: int, protocol: str) -> None:
        url = server.http_url if protocol == "http" else server.grpc_url
        try:
            frames = frames_for(client_id, requests_per_client + 1)
            out = [infer(protocol, url, model, f[None]) for f in frames[:-2]]
            out.append(infer(protocol, url, model, np.stack(frames[-2:])))  # a 2-frame request
            results[client_id] = [o for batch in out for o in batch]
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=c) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, f"{errors[0]!r}\nserver log:\n{server.log_tail()}"

    with Segmenter(artifacts[model], provider="cpu") as seg:
        for client_id, _ in clients:
            frames = frames_for(client_id, requests_per_client + 1)
            assert len(results[client_id]) == len(frames)
            for frame, served_labels in zip(frames, results[client_id]):
                assert served_labels.dtype == np.uint8
                np.testing.assert_array_equal(served_labels, seg(frame))

    stats = grpcclient.InferenceServerClient(server.grpc_url).get_inference_statistics(model)
    (model_stats,) = stats.model_stats
    # Fewer executions than inferences: the dynamic batcher put concurrent requests together.
    assert model_stats.execution_count < model_stats.inference_count, model_stats


def test_server_logs_what_it_serves(served):
    server, _ = served
    log = server.log_tail(400)
    for name in MODELS:
        assert f"scaseg: serving {name}.fp32.onnx with onnxruntime" in log, log
    assert "scaseg: serving plain.fp32.onnx with openvino" in log, log


def test_openvino_served_model_gives_local_openvino_labels(served):
    """The Python-backend model with backend=openvino in a real tritonserver: the label maps
    OpenVINO gives locally for the same artifact (f32 for an FP32 artifact)."""
    server, artifacts = served
    frames = frames_for(0, 3)
    served_labels = [infer("grpc", server.grpc_url, "plain_ov", f[None])[0] for f in frames]
    with Segmenter(artifacts["plain"], backend="openvino") as seg:
        for frame, got in zip(frames, served_labels):
            np.testing.assert_array_equal(got, seg(frame))


def test_example_client_streams_a_video(served, tmp_path):
    import cv2

    from examples.triton_client import main

    server, _ = served
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (80, 48))
    for i in range(6):
        writer.write(np.full((48, 80, 3), 40 * i, np.uint8))
    writer.release()
    out = tmp_path / "overlay.avi"
    argv = [str(video), "--model", "fused", "--url", server.grpc_url, "--out", str(out)]
    assert main(argv) == 0
    cap = cv2.VideoCapture(str(out))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 6
