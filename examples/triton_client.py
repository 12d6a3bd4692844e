"""Stream a video through a Triton server and write the label overlay.

    python examples/triton_client.py clip.mp4 --model scaseg_t_int8 \
        --url 127.0.0.1:8001 --sidecar repo/scaseg_t_int8/1/scaseg_t.int8.onnx.json \
        --out overlay.mp4

Two kinds of model, told apart by the server's metadata:
- the Python-backend model (`<name>`, from `scaseg-export --triton-repo`): frames go as they are
  ((1,H,W,3) uint8 BGR) and label maps come back at the frame's size;
- a native model (`<name>_onnx`, `<name>_trt`): the frame is prepared and the output turned into
  labels here, by `runtime.Segmenter` around a Triton "backend", the same functions local
  inference uses. It needs the artifact's sidecar (`--sidecar`).
Several requests stay in flight (`--in-flight`) so the server's dynamic batcher has work to
combine; frames are written in order.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from runtime.io.overlay import blend, palette_for
from runtime.io.sources import open_source
from runtime.io.video import VideoOutput
from runtime.meta import ModelMeta
from runtime.segmenter import Segmenter
from scenes.classes import DEMO_PALETTE_RGB

NP_TO_TRITON = {"float32": "FP32", "float16": "FP16", "uint8": "UINT8", "int32": "INT32"}


class TritonBackend:
    """A `runtime.backends.Backend` whose inference runs on a Triton server (native models)."""

    def __init__(self, client_lib, url: str, model: str, meta: ModelMeta):
        self._lib, self._url, self.model, self.meta = client_lib, url, model, meta
        self.description = f"Triton model {model} at {url}"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return infer(self._lib, self._url, self.model, self.meta.input.name, batch,
                     self.meta.output.name)  # fmt: skip

    def close(self) -> None:
        pass

    def __enter__(self) -> TritonBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _metadata(lib, url: str, model: str) -> dict:
    client = lib.InferenceServerClient(url)
    try:
        config = client.get_model_config(model)
        if not isinstance(config, dict):  # gRPC returns a protobuf message
            from google.protobuf import json_format

            config = json_format.MessageToDict(config, preserving_proto_field_name=True)
        return config.get("config", config)
    finally:
        client.close()


def infer(lib, url: str, model: str, in_name: str, batch: np.ndarray, out_name: str):
    # One client per call: tritonclient's clients are not safe to share across threads.
    client = lib.InferenceServerClient(url)
    try:
        inp = lib.InferInput(in_name, list(batch.shape), NP_TO_TRITON[batch.dtype.name])
        inp.set_data_from_numpy(batch)
        result = client.infer(model, [inp], outputs=[lib.InferRequestedOutput(out_name)])
        return result.as_numpy(out_name)
    finally:
        client.close()


def load_meta(sidecar: Path | None) -> ModelMeta | None:
    if sidecar is None:
        return None
    return ModelMeta.from_dict(json.loads(sidecar.read_text()), source=str(sidecar))


def make_segment(args, lib):
    """frame_bgr -> labels at the frame's size, through the server."""
    config = _metadata(lib, args.url, args.model)
    inputs = [i["name"] for i in config.get("input", [])]
    meta = load_meta(args.sidecar)
    if config.get("backend") == "python" and inputs == ["image"]:
        return lambda frame: infer(lib, args.url, args.model, "image", frame[None], "labels")[0]
    if meta is None:
        raise SystemExit(f"{args.model} is a native model: pass --sidecar with its artifact's JSON")
    return Segmenter(TritonBackend(lib, args.url, args.model, meta))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", help="video file, camera index, RTSP URL (runtime.io.sources)")
    parser.add_argument("--model", required=True, help="model name in the Triton repository")
    parser.add_argument("--url", default="127.0.0.1:8001", help="host:port of the server")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument(
        "--sidecar", type=Path, help="the artifact's .json (palette, native models)"
    )
    parser.add_argument("--out", type=Path, default=Path("overlay.mp4"))
    parser.add_argument("--alpha", type=float, default=0.5, help="label colour weight (0..1)")
    parser.add_argument("--in-flight", type=int, default=4, help="requests sent concurrently")
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args(argv)
    if args.protocol == "grpc":
        import tritonclient.grpc as lib
    else:
        import tritonclient.http as lib

    segment = make_segment(args, lib)
    meta = load_meta(args.sidecar)
    palette = palette_for(meta.palette_rgb if meta else DEMO_PALETTE_RGB, 256)
    source = open_source(args.source)
    out: VideoOutput | None = None
    pending: collections.deque[tuple[np.ndarray, Future]] = collections.deque()

    def drain(keep: int) -> None:
        nonlocal out
        while len(pending) > keep:
            frame, future = pending.popleft()
            labels = future.result()
            if out is None:
                fps = source.info.fps or 25.0
                out = VideoOutput(args.out, fps, (frame.shape[1], frame.shape[0]), overwrite=True)
            out.write(blend(frame, labels, palette, args.alpha))

    try:
        with ThreadPoolExecutor(max_workers=args.in_flight) as pool:
            for frame in source.frames():
                if args.max_frames is not None and frame.index >= args.max_frames:
                    break
                pending.append((frame.frame_bgr, pool.submit(segment, frame.frame_bgr)))
                drain(args.in_flight)
            drain(0)
    except BaseException:
        if out is not None:
            out.abort()  # no half-written video at --out
        raise
    finally:
        source.close()
    if out is not None:
        out.close()
    frames = out.frames if out is not None else 0
    print(f"{frames} frames -> {args.out}")
    return 0 if frames else 1


if __name__ == "__main__":
    sys.exit(main())
