"""Sources as a user names them: files, image folders and globs, and the errors for bad ones."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from runtime.errors import BudgetError, RunError, UserInputError
from runtime.io.capture import Reconnect, SourceLostError, csi_pipeline, has_gstreamer
from runtime.io.source_types import SourceError
from runtime.io.sources import open_source
from tests.support.hostile_files import lying_mkv, make_fifo, non_utf8_path, write_png


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
    with pytest.raises(SourceError, match=r"cannot decode image .*bad\.png: it is not a PNG"):
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


def test_fifos_in_an_image_folder_are_skipped_with_a_warning(tmp_path):
    """open() on a FIFO blocks until a writer comes: one in a folder hung the run."""
    folder = _images(tmp_path / "imgs", ["a.png", "c.png"])
    make_fifo(folder / "b.png")
    with pytest.warns(UserWarning, match=r"skipped 1 entry that is not a regular file: .*b\.png "
                      r"\(a FIFO \(named pipe\)\)"):  # fmt: skip
        src = open_source(str(folder))
    assert [f.name for f in src.frames()] == ["a", "c"]
    with pytest.raises(SourceError, match=r"b\.png is a FIFO \(named pipe\), not a regular file"):
        open_source(str(folder / "b.png"))


def test_a_recursive_glob_survives_a_symlink_cycle(tmp_path):
    folder = _images(tmp_path / "imgs", ["a.png"])
    _images(folder / "sub", ["b.png"])
    (folder / "sub" / "up").symlink_to(folder)
    (folder / "sub" / "again").symlink_to(folder)
    src = open_source(str(folder / "**" / "*.png"))
    assert [f.name for f in src.frames()] == ["a", "b"]


def test_image_names_that_are_not_utf8_are_read(tmp_path):
    path = write_png(non_utf8_path(tmp_path, ".png"), np.full((8, 8, 3), 9, np.uint8))
    assert [int(f.frame_bgr[0, 0, 0]) for f in open_source(str(tmp_path)).frames()] == [9]
    assert len(list(open_source(str(path)).frames())) == 1


def test_a_video_name_that_is_not_utf8_is_refused_before_opencv_sees_it(tmp_path, small_video):
    """cv2.VideoCapture segfaults on such a name (OpenCV 5.1)."""
    path = non_utf8_path(tmp_path, ".mp4")
    path.write_bytes(small_video.read_bytes())
    with pytest.raises(SourceError, match=r"video .*fr\\xe9me\.mp4: .*not valid UTF-8.*rename"):
        open_source(str(path))


def test_a_frame_count_the_file_cannot_hold_is_not_believed(tmp_path):
    """A 1 kB .mkv claiming 60 million frames: no progress total, no "truncated" warning."""
    video = lying_mkv(tmp_path / "lie.mkv", frames=3, claimed=60_000_000)
    with pytest.warns(UserWarning, match=r"lie\.mkv: its header claims 60,000,000 frames, more "
                      r"than its \d+ bytes can hold; its length is treated as unknown"):  # fmt: skip
        src = open_source(str(video))
    assert src.info.frame_count is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(src.frames())) == 3


def test_video_frame_sizes_are_checked_before_decoding(small_video, monkeypatch):
    monkeypatch.setenv("SCASEG_MAX_IMAGE_PIXELS", "4000")
    with pytest.raises(BudgetError, match=r"video .*clip\.mp4: 80x60 frames needs 4,800 pixels"):
        open_source(str(small_video))


def test_bad_flags_and_spec_values_are_bad_input():
    """Typed as bad input (exit 2), not bare ValueErrors (reported as internal errors)."""
    with pytest.raises(SourceError, match=r"csi://0\?width=wide: width, height and fps must be"):
        csi_pipeline("csi://0?width=wide")
    with pytest.raises(UserInputError, match="--stream-timeout must be a number of seconds"):
        open_source("rtsp://camera", stream_timeout_s=float("nan"))
    with pytest.raises(UserInputError, match="--reconnect must be >= 0"):
        Reconnect(attempts=-1)
    assert issubclass(SourceLostError, RunError)  # the camera failed, not the input: exit 1
