"""An image's format and size read from its first bytes, so the pixel budget is checked before
a decoder allocates anything: a 1 MB PNG can decode to 12000x12000 16-bit RGBA (1.1 GB).

Formats are recognised by content, never by the file name, exactly as cv2.imdecode picks its
decoder. Only the formats below are read: for any other (JPEG 2000, OpenEXR, Radiance HDR, GIF,
AVIF, PAM, Sun raster...) the size cannot be checked before decoding, and OpenCV's own limit
(OPENCV_IO_MAX_IMAGE_PIXELS, 2^30 pixels) is read once when cv2 loads, so it cannot be lowered
from here; those files are refused with the list of what is read.
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

SUPPORTED = "PNG, JPEG, BMP, WebP, TIFF or PPM/PGM/PBM"
_PNG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8, CC are not.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers (or fill bytes) looked at before a JPEG's frame header: real files have a few dozen
# (APPn metadata, tables); a crafted one could have millions, each a Python loop step.
_MAX_STEPS = 65536
_PNM_TOKEN = re.compile(rb"(?:\s|#[^\n\r]*)*(\d+)")


class HeaderError(ValueError):
    """The first bytes are not a supported image header, or the header is cut short; the
    readers turn it into their own error naming the file."""


class ImageHeader(NamedTuple):
    format: str  # PNG | JPEG | BMP | WebP | TIFF | PNM
    width: int
    height: int


def read_header(data: bytes) -> ImageHeader:
    """Format and size of the encoded image `data`; HeaderError when neither can be read."""
    try:
        for sniff, parse in _FORMATS:
            if sniff(data):
                header = parse(data)
                break
        else:
            raise HeaderError(f"it is not a {SUPPORTED} file (by its first bytes)")
    except (struct.error, IndexError) as err:
        raise HeaderError("its header is cut short") from err
    if header.width <= 0 or header.height <= 0:
        raise HeaderError(
            f"its {header.format} header gives a size of {header.width}x{header.height}"
        )
    return header


def _png(data: bytes) -> ImageHeader:
    if data[12:16] != b"IHDR":
        raise HeaderError("its PNG header has no IHDR chunk first")
    width, height = struct.unpack(">II", data[16:24])
    return ImageHeader("PNG", width, height)


def _jpeg(data: bytes) -> ImageHeader:
    pos = 2
    for _ in range(_MAX_STEPS):
        if data[pos] != 0xFF:
            raise HeaderError("its JPEG markers are corrupt before the frame header")
        marker = data[pos + 1]
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 1 if marker == 0xFF else 2  # a fill byte; markers without a length
            continue
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return ImageHeader("JPEG", width, height)
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header came first
            raise HeaderError("its JPEG data has no frame header")
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            raise HeaderError("its JPEG markers are corrupt before the frame header")
        pos += 2 + length
    raise HeaderError(f"its JPEG data has no frame header in its first {_MAX_STEPS:,} markers")


def _bmp(data: bytes) -> ImageHeader:
    (info_size,) = struct.unpack("<I", data[14:18])
    if info_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return ImageHeader("BMP", width, abs(height))  # a negative height means top-down rows


def _webp(data: bytes) -> ImageHeader:
    if len(data) < 30:
        raise HeaderError("its header is cut short")
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the frame tag and start code
        if data[23:26] != b"\x9d\x01\x2a":
            raise HeaderError("its WebP VP8 frame header is corrupt")
        width, height = struct.unpack("<HH", data[26:30])
        return ImageHeader("WebP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":  # lossless: 14-bit (size - 1) fields after the 0x2f signature
        (bits,) = struct.unpack("<I", data[21:25])
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":  # extended: 24-bit (canvas size - 1) fields
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageHeader("WebP", width, height)
    raise HeaderError("its WebP data has no VP8, VP8L or VP8X chunk first")


def _tiff(data: bytes) -> ImageHeader:
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(order + "H", data[2:4])[0] == 43  # BigTIFF: 64-bit offsets and counts
    head, entry, count_fmt, offset_fmt = (16, 20, "Q", "Q") if big else (8, 12, "H", "I")
    (ifd,) = struct.unpack(order + offset_fmt, data[head - struct.calcsize(offset_fmt) : head])
    (count,) = struct.unpack(order + count_fmt, data[ifd : ifd + struct.calcsize(count_fmt)])
    first = ifd + struct.calcsize(count_fmt)
    sizes = {}
    for i in range(min(count, 4096)):
        at = first + i * entry
        tag, kind = struct.unpack(order + "HH", data[at : at + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or LONG8
            value_at = at + (12 if big else 8)
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                raise HeaderError(f"its TIFF size tag {tag} has type {kind}")
            (sizes[tag],) = struct.unpack(
                order + fmt, data[value_at : value_at + struct.calcsize(fmt)]
            )
        if len(sizes) == 2:
            return ImageHeader("TIFF", sizes[256], sizes[257])
    raise HeaderError("its first TIFF directory gives no width and height")


def _pnm(data: bytes) -> ImageHeader:
    pos, numbers = 2, []
    for _ in range(2):
        match = _PNM_TOKEN.match(data, pos, min(len(data), 4096))
        if match is None or len(match.group(1)) > 9:
            raise HeaderError("its PNM header has no width and height")
        numbers.append(int(match.group(1)))
        pos = match.end()
    return ImageHeader("PNM", *numbers)


_FORMATS = (
    (lambda d: d[:8] == _PNG, _png),
    (lambda d: d[:3] == b"\xff\xd8\xff", _jpeg),
    (lambda d: d[:2] == b"BM", _bmp),
    (lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", _webp),
    (lambda d: d[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), _tiff),
    (lambda d: len(d) > 2 and d[:1] == b"P" and d[1:2] in b"123456" and d[2:3].isspace(), _pnm),
)
