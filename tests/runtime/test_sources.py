"""Sources as a user names them: files, image folders and globs, and the errors for bad ones."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.io.capture import csi_pipeline, has_gstreamer
from runtime.io.source_types import SourceError
from runtime.io.sources import open_source


def _images(folder, names, shape=(20, 30, 3)):
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full(shape, i * 10, np.uint8))
    return folder


def test_video_file_gives_every_frame(small_video):
    src = open_source(str(small_video))
    assert (src.info.kind, src.info.live, src.info.frame_count) == ("video", False, 10)
    assert src.info.size_wh == (80, 60) and src.info.fps == pytest.approx(25.0)
    frames = list(src.frames())
    src.close()
    assert [f.index for f in frames] == list(range(10))
    assert frames[0].frame_bgr.shape == (60, 80, 3) and frames[0].frame_bgr.dtype == np.uint8


def test_loop_restarts_a_file(small_video):
    src = open_source(str(small_video), loop=True)
    assert src.info.frame_count is None  # endless
    frames = []
    for frame in src.frames():
        frames.append(frame)
        if len(frames) == 25:
            break
    src.close()
    assert [f.index for f in frames] == list(range(25))


def test_folder_is_read_in_natural_order(tmp_path):
    folder = _images(tmp_path / "imgs", ["f10.png", "f2.png", "f1.jpg"])
    (folder / "notes.txt").write_text("not an image")
    src = open_source(str(folder))
    names = [f.name for f in src.frames()]
    assert names == ["f1", "f2", "f10"] and src.info.frame_count == 3


def test_glob_and_single_image(tmp_path):
    _images(tmp_path / "imgs", ["a.png", "b.png", "c.jpg"])
    assert [f.name for f in open_source(str(tmp_path / "imgs" / "*.png")).frames()] == ["a", "b"]
    single = open_source(str(tmp_path / "imgs" / "c.jpg"))
    assert single.info.frame_count == 1 and len(list(single.frames())) == 1


def test_gray_bgra_and_16bit_images_become_bgr8(tmp_path):
    cv2.imwrite(str(tmp_path / "1gray.png"), np.full((9, 11), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "2bgra.png"), np.full((9, 11, 4), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "3deep.png"), np.full((9, 11), 40000, np.uint16))
    for frame in open_source(str(tmp_path)).frames():
        assert frame.frame_bgr.shape == (9, 11, 3) and frame.frame_bgr.dtype == np.uint8


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("missing.mp4", "source missing.mp4 not found; give a video file"),
        ("nothing/*.png", "glob 'nothing/\\*.png' holds no images"),
        ("/dev/video99", "camera /dev/video99 does not exist"),
        ("csi://x", "csi://N"),
    ],
)
def test_bad_sources_say_what_to_give(tmp_path, monkeypatch, spec, match):
    monkeypatch.chdir(tmp_path)
    if spec.startswith("csi") and not has_gstreamer():
        match = "needs OpenCV built with GStreamer"
    with pytest.raises(SourceError, match=match):
        open_source(spec)


def test_empty_folder_and_undecodable_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path / "empty"))
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_bytes(b"definitely not a video")
    with pytest.raises(SourceError, match="cannot open video"):
        open_source(str(bad_video))
    bad_image = tmp_path / "bad.png"
    bad_image.write_bytes(b"not a png")
    with pytest.raises(SourceError, match="cannot read image"):
        open_source(str(bad_image))


@pytest.mark.skipif(has_gstreamer(), reason="this OpenCV has GStreamer")
def test_gstreamer_specs_need_gstreamer():
    for spec in ("csi://0", "videotestsrc ! videoconvert ! appsink"):
        with pytest.raises(
            SourceError, match=r"needs OpenCV built with GStreamer.*pip's opencv-python"
        ):
            open_source(spec)


def test_csi_pipeline_is_a_jetson_argus_pipeline():
    pipeline = csi_pipeline("csi://1?width=1920&height=1080&fps=60")
    assert pipeline.startswith("nvarguscamerasrc sensor-id=1 ")
    assert "width=1920, height=1080, framerate=60/1" in pipeline and pipeline.endswith(
        "max-buffers=1"
    )
