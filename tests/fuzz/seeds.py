"""The real files the fuzzer starts from, written the way users' tools write them: mmengine and
mmsegmentation checkpoints, legacy torch.save streams, our safetensors, a tiny ONNX model with
its sidecar (and one that keeps weights in an external file), images and masks as OpenCV
encodes them, MJPEG/MP4 clips, class files and an image list.

`SEEDS` maps a seed's name to (file name, format); the format picks the mutations that know it.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

SEEDS: dict[str, tuple[str, str]] = {
    "mmengine_mini": ("mmengine_mini.pth", "zip"),
    "mmengine_tiny": ("mmengine_tiny.pth", "zip"),
    "legacy_mini": ("legacy_mini.pth", "pickle"),
    "mmseg0x_mini": ("mmseg0x_mini.pth", "zip"),
    "tiny_safetensors": ("tiny.safetensors", "safetensors"),
    "tiny_onnx": ("model.onnx", "protobuf"),
    "sidecar_json": ("model.onnx.json", "json"),
    "external_onnx": ("external.onnx", "protobuf"),
    "weights_bin": ("weights.bin", "bytes"),
    "image_png": ("image.png", "png"),
    "image_jpg": ("image.jpg", "jpeg"),
    "image_bmp": ("image.bmp", "bmp"),
    "image_png16": ("image16.png", "png"),
    "image_tiff": ("image.tiff", "bytes"),
    "image_webp": ("image.webp", "bytes"),
    "mask_png": ("mask.png", "png"),
    "mask_palette_png": ("mask_palette.png", "png"),
    "mask16_png": ("mask16.png", "png"),
    "video_avi": ("clip.avi", "riff"),
    "video_mp4": ("clip.mp4", "mp4"),
    "classes_json": ("classes.json", "json"),
    "classes_dict_json": ("classes_palette.json", "json"),
    "classes_txt": ("classes.txt", "text"),
    "calib_list_txt": ("list.txt", "text"),
}
H, W = 48, 64  # every image, mask and frame; masks match the images so pairs read


def make_seeds(folder: Path) -> dict[str, Path]:
    """Write every seed into `folder` (skipping those already there); name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / file for name, (file, _) in SEEDS.items()}
    if all(p.is_file() for p in paths.values()):
        return paths
    _checkpoints(folder)
    _onnx(folder)
    _images(folder)
    _videos(folder)
    _texts(folder)
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise RuntimeError(f"seeds not written: {missing}")
    return paths


def _mini_model():
    """A few layers named as SCASeg's: a real mmengine checkpoint of it stays a few kB."""
    from torch import nn

    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.patch_embed1 = nn.Module()
    model.backbone.patch_embed1.proj = nn.Conv2d(3, 4, 3)
    model.backbone.norm1 = nn.LayerNorm(4)
    model.decode_head = nn.Module()
    model.decode_head.cls_seg = nn.Conv2d(4, 3, 1)
    return model


def _checkpoints(folder: Path) -> None:
    import torch

    from scaseg.checkpoint import save_checkpoint
    from scaseg.model import build_model
    from tests.support.checkpoints import (
        CLASSES,
        PALETTE,
        save_mmengine_checkpoint,
        save_mmseg0x_checkpoint,
    )

    torch.manual_seed(0)
    mini = _mini_model()
    save_mmengine_checkpoint(mini, folder / "mmengine_mini.pth")
    save_mmengine_checkpoint(mini, folder / "legacy_mini.pth", legacy_format=True)
    save_mmseg0x_checkpoint(mini, folder / "mmseg0x_mini.pth")
    tiny = build_model("tiny", 3).eval()
    with torch.no_grad():  # zeros: regression files made from these compress to nothing
        for value in tiny.state_dict().values():
            value.zero_()
    save_mmengine_checkpoint(tiny, folder / "mmengine_tiny.pth")
    info = {"variant": "tiny", "class_names": list(CLASSES), "palette_rgb": PALETTE}
    save_checkpoint(tiny, folder / "tiny.safetensors", info)


def _onnx(folder: Path) -> None:
    import onnx

    from tests.support.tiny_onnx import build_tiny_model, point_at_external_data

    build_tiny_model(folder / "model.onnx")
    model = onnx.load(str(folder / "model.onnx"))
    bias = next(t for t in model.graph.initializer if t.name == "conv_b")
    (folder / "weights.bin").write_bytes(onnx.numpy_helper.to_array(bias).tobytes()[:16])
    point_at_external_data(bias, "weights.bin")
    (folder / "external.onnx").write_bytes(model.SerializeToString())


def _encode(path: Path, image: np.ndarray, *params: int) -> None:
    ok, data = cv2.imencode(path.suffix, image, list(params))
    if not ok:
        raise RuntimeError(f"OpenCV cannot encode {path.suffix}")
    path.write_bytes(data.tobytes())


def _images(folder: Path) -> None:
    from runtime.io.video import encode_label_png

    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (H, W, 3), np.uint8)
    _encode(folder / "image.png", bgr)
    _encode(folder / "image.jpg", bgr, cv2.IMWRITE_JPEG_QUALITY, 80)
    _encode(folder / "image.bmp", bgr)
    _encode(folder / "image.tiff", bgr)
    _encode(folder / "image.webp", bgr, cv2.IMWRITE_WEBP_QUALITY, 80)
    bgra16 = rng.integers(0, 65536, (H, W, 4), np.uint16)
    _encode(folder / "image16.png", bgra16)
    labels = rng.integers(0, 4, (H, W), np.uint8)
    labels[:4] = 255  # the ignore index
    _encode(folder / "mask.png", labels)
    _encode(folder / "mask16.png", labels.astype(np.uint16) * 300)
    table = [(128, 64, 128), (0, 0, 142), (220, 20, 60), (70, 70, 70)]
    (folder / "mask_palette.png").write_bytes(encode_label_png(labels % 4, np.array(table)))


def _videos(folder: Path) -> None:
    for name, fourcc in (("clip.avi", "MJPG"), ("clip.mp4", "mp4v")):
        writer = cv2.VideoWriter(str(folder / name), cv2.VideoWriter_fourcc(*fourcc), 10.0, (W, H))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {name} ({fourcc})")
        for i in range(6):
            writer.write(np.full((H, W, 3), (i * 40) % 256, np.uint8))
        writer.release()


def _texts(folder: Path) -> None:
    names = ["road", "car", "person", "sky"]
    palette = [[128, 64, 128], [0, 0, 142], [220, 20, 60], [70, 130, 180]]
    (folder / "classes.json").write_text(json.dumps(names))
    (folder / "classes_palette.json").write_text(json.dumps({"classes": names, "palette": palette}))
    lines = [f"{n} {','.join(map(str, c))}" for n, c in zip(names, palette)]
    (folder / "classes.txt").write_text("# name r,g,b\n" + "\n".join(lines) + "\n")
    (folder / "list.txt").write_text("# calibration frames\nframes/a.png\nframes/b.jpg\n")
