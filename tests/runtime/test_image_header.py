"""Image sizes read from the first bytes, as the pixel budget needs them before decoding."""

from __future__ import annotations

import io
import struct

import cv2
import numpy as np
import pytest

from runtime.io.image_header import HeaderError, ImageHeader, read_header
from tests.support.hostile_files import png_claiming

FRAME = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)


@pytest.mark.parametrize(
    ("ext", "image", "params", "fmt"),
    [
        (".png", FRAME, [], "PNG"),
        (".png", np.zeros((37, 53), np.uint16), [], "PNG"),
        (".jpg", FRAME, [], "JPEG"),
        (".jpg", FRAME, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], "JPEG"),
        (".bmp", FRAME, [], "BMP"),
        (".webp", FRAME, [], "WebP"),  # lossy: VP8
        (".webp", FRAME, [cv2.IMWRITE_WEBP_QUALITY, 101], "WebP"),  # lossless: VP8L
        (".tif", np.zeros((37, 53, 4), np.uint16), [], "TIFF"),
        (".ppm", FRAME, [], "PNM"),
        (".ppm", FRAME, [cv2.IMWRITE_PXM_BINARY, 0], "PNM"),  # ASCII
        (".pgm", FRAME[:, :, 0], [], "PNM"),
    ],
)
def test_sizes_of_what_opencv_writes(ext, image, params, fmt):
    ok, data = cv2.imencode(ext, image, params)
    assert ok
    assert read_header(data.tobytes()) == ImageHeader(fmt, 53, 37)


def test_webp_extended_and_bmp_top_down():
    image = pytest.importorskip("PIL.Image")
    rgba = image.fromarray(np.zeros((37, 53, 4), np.uint8), "RGBA")
    out = io.BytesIO()
    rgba.save(out, "WEBP", quality=80)  # lossy with alpha: a VP8X chunk first
    assert out.getvalue()[12:16] == b"VP8X"
    assert read_header(out.getvalue()) == ImageHeader("WebP", 53, 37)
    _, bmp = cv2.imencode(".bmp", FRAME)
    top_down = bytearray(bmp.tobytes())
    top_down[22:26] = struct.pack("<i", -37)
    assert read_header(bytes(top_down)) == ImageHeader("BMP", 53, 37)


def _tiff(order: str, big: bool, width: int, height: int, tags=(256, 257)) -> bytes:
    """A TIFF header with one directory giving the size (LONG width, SHORT height; a value
    shorter than its field sits at the field's start in either byte order)."""
    mark = b"II" if order == "<" else b"MM"
    if big:
        head = mark + struct.pack(order + "HHHQ", 43, 8, 0, 16)
        entries = struct.pack(order + "HHQI4x", tags[0], 4, 1, width)
        entries += struct.pack(order + "HHQH6x", tags[1], 3, 1, height)
        return head + struct.pack(order + "Q", 2) + entries
    head = mark + struct.pack(order + "HI", 42, 8)
    entries = struct.pack(order + "HHII", tags[0], 4, 1, width)
    entries += struct.pack(order + "HHIH2x", tags[1], 3, 1, height)
    return head + struct.pack(order + "H", 2) + entries


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("big", [False, True])
def test_tiff_either_byte_order_and_bigtiff(order, big):
    assert read_header(_tiff(order, big, 70000, 300)) == ImageHeader("TIFF", 70000, 300)


def test_claimed_sizes_are_read_without_decoding():
    assert read_header(png_claiming(60000, 60000)) == ImageHeader("PNG", 60000, 60000)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"not an image at all", "is not a PNG, JPEG, BMP, WebP, TIFF or PPM/PGM/PBM file"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "is not a PNG"),  # JPEG 2000: size unknown here
        (b"#?RADIANCE\n", "is not a PNG"),  # Radiance HDR
        (png_claiming(8, 8)[:20], "cut short"),
        (png_claiming(0, 8), "size of 0x8"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "cut short"),
        (b"\xff\xd8\xff\xda\x00\x08", "no frame header"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "cut short"),
        (b"P6\n# only a comment\n", "no width and height"),
        (_tiff("<", False, 10, 10)[:-12], "cut short"),
        (_tiff(">", False, 10, 10, tags=(258, 259)), "no width and height"),
    ],
)
def test_bad_headers_say_why(data, match):
    with pytest.raises(HeaderError, match=match):
        read_header(data)


def test_crafted_marker_floods_end_quickly():
    """Millions of fill bytes or empty segments before a JPEG frame header: each is a loop
    step, so the scan stops after a bound real files never reach."""
    flood = b"\xff\xd8" + b"\xff" * 5_000_000 + b"\xc0\x00\x11\x08\x00\x10\x00\x10"
    with pytest.raises(HeaderError, match="no frame header in its first 65,536 markers"):
        read_header(flood)
    segments = b"\xff\xd8" + b"\xff\xfe\x00\x02" * 1_000_000  # empty comments
    with pytest.raises(HeaderError, match="no frame header in its first"):
        read_header(segments)
