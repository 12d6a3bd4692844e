"""Image files read with their budgets checked before decoding, for every reader that uses them
(runtime.preprocess.read_image: scaseg-run's image sources, calibration, validation images)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.errors import BudgetError
from runtime.io.image_file import ImageFileError, read_image_file
from runtime.preprocess import read_image
from tests.support.hostile_files import make_fifo, non_utf8_path, png_claiming, write_png

RNG = np.random.default_rng(1)


@pytest.mark.parametrize(
    ("ext", "image"),
    [
        (".png", RNG.integers(0, 255, (24, 40, 3), np.uint8)),
        (".png", RNG.integers(0, 65535, (24, 40), np.uint16)),  # 16-bit gray
        (".png", RNG.integers(0, 255, (24, 40, 4), np.uint8)),  # BGRA
        (".jpg", RNG.integers(0, 255, (24, 40, 3), np.uint8)),
        (".bmp", RNG.integers(0, 255, (24, 40, 3), np.uint8)),
        (".webp", RNG.integers(0, 255, (24, 40, 3), np.uint8)),
        (".tif", RNG.integers(0, 65535, (24, 40, 3), np.uint16)),
        (".pgm", RNG.integers(0, 255, (24, 40), np.uint8)),
        (".ppm", RNG.integers(0, 255, (24, 40, 3), np.uint8)),
    ],
)
def test_pixels_are_what_cv2_imread_gives(tmp_path, ext, image):
    path = tmp_path / f"frame{ext}"
    assert cv2.imwrite(str(path), image)
    want = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    got = read_image_file(path)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert read_image(path).shape == (24, 40, 3) and read_image(path).dtype == np.uint8


def test_a_name_that_is_not_utf8_is_read(tmp_path):
    """cv2.imread(str(path)) segfaults on such a name (OpenCV 5.1); the bytes are read by
    Python and decoded in memory."""
    path = write_png(non_utf8_path(tmp_path, ".png"), np.full((8, 8, 3), 7, np.uint8))
    assert read_image(path)[0, 0, 0] == 7
    path.write_bytes(b"broken")
    with pytest.raises(ImageFileError, match=r"cannot decode image .*fr\\xe9me\.png: it is not"):
        read_image(path)


def test_pixels_claimed_by_the_header_are_checked_before_decoding(tmp_path):
    """60000x60000 is past OpenCV's own limit (cv2.error), 12000x12000 16-bit RGBA within it
    (1.1 GB decoded from a small file): both are refused before any decoding."""
    (tmp_path / "huge.png").write_bytes(png_claiming(60000, 60000))
    with pytest.raises(BudgetError, match=r"image .*huge\.png: a 60000x60000 PNG image needs "
                       r"3,600,000,000 pixels, over the limit of 64,000,000 pixels; .*"
                       r"SCASEG_MAX_IMAGE_PIXELS="):  # fmt: skip
        read_image(tmp_path / "huge.png")
    (tmp_path / "deep.png").write_bytes(png_claiming(12000, 12000, 16, 6))
    with pytest.raises(BudgetError, match=r"deep\.png: a 12000x12000 PNG image"):
        read_image(tmp_path / "deep.png")


def test_a_lowered_pixel_budget_applies_to_real_images(tmp_path, monkeypatch):
    write_png(tmp_path / "f.png", np.zeros((64, 64, 3), np.uint8))
    monkeypatch.setenv("SCASEG_MAX_IMAGE_PIXELS", "4095")
    with pytest.raises(BudgetError, match=r"f\.png: a 64x64 PNG image needs 4,096 pixels"):
        read_image(tmp_path / "f.png")
    monkeypatch.setenv("SCASEG_MAX_IMAGE_BYTES", "10")
    with pytest.raises(BudgetError, match=r"image .*f\.png needs \d+ bytes.*IMAGE_BYTES"):
        read_image(tmp_path / "f.png")


def test_opencv_failures_are_bad_input_naming_the_file(tmp_path, monkeypatch):
    """With the budget raised past OpenCV's own limit, OpenCV's cv2.error is translated."""
    (tmp_path / "huge.png").write_bytes(png_claiming(60000, 60000))
    monkeypatch.setenv("SCASEG_MAX_IMAGE_PIXELS", "4000000000")
    with pytest.raises(ImageFileError, match=r"cannot decode image .*huge\.png: OpenCV failed "
                       r"on this PNG file \(.*\); re-save it"):  # fmt: skip
        read_image(tmp_path / "huge.png")
    (tmp_path / "cut.png").write_bytes(png_claiming(64, 64))
    with pytest.raises(ImageFileError, match=r"cut\.png: this PNG file is corrupt or truncated"):
        read_image(tmp_path / "cut.png")


def test_callers_get_their_own_error_kind(tmp_path):
    class CallerError(ImageFileError):
        pass

    make_fifo(tmp_path / "pipe.png")
    with pytest.raises(CallerError, match=r"image .*pipe\.png is a FIFO \(named pipe\)"):
        read_image(tmp_path / "pipe.png", CallerError)
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(CallerError, match=r"cannot decode image .*x\.jpg"):
        read_image(tmp_path / "x.jpg", CallerError)
