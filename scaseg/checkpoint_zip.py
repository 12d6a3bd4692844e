"""Members of a torch.save zip archive, read within their budgets.

torch.save stores every member uncompressed; a deflated member is still read (zip tools
recompress archives), but its size after inflation is what the header declares and is checked
before any of it is inflated: a 2 MB member can inflate to 4 GB. zipfile stops a member at its
declared size and checks its CRC at the end; the read below stops there too, in chunks, so a
lying header costs at most one chunk. Errors of the zip layer (bad CRC, corrupt deflate data,
a truncated file) become pickle.UnpicklingError, which the caller reports as an unreadable file.
"""

from __future__ import annotations

import pickle
import zipfile
import zlib

from runtime.budgets import check

CHUNK_BYTES = 1 << 20
METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
SMALL_MEMBER_BYTES = 64  # byteorder, .format_version: a word each


def open_archive(f, what: str) -> zipfile.ZipFile:
    """The archive in `f`, after checking its entry count and unpacked size against budgets."""
    # ZipFile parses the whole central directory on open (about half a kB per entry); the end
    # record says how many entries there are. _EndRecData is private but unchanged since 2.6.
    end = zipfile._EndRecData(f)
    if end is None:
        raise zipfile.BadZipFile("no zip end record: truncated, or not a zip file")
    check("zip_entries", end[zipfile._ECD_ENTRIES_TOTAL], f"{what}: its zip directory")
    archive = zipfile.ZipFile(f)
    total = sum(info.file_size for info in archive.infolist())
    check("checkpoint_bytes", total, f"{what}: its zip members unpacked")
    return archive


def read_member(
    archive: zipfile.ZipFile, name: str, what: str, limit: int | None = None
) -> bytearray:
    """The bytes of member `name`, checked against `zip_member_bytes` (or `limit`) first."""
    try:
        info = archive.getinfo(name)
    except KeyError as err:
        raise pickle.UnpicklingError(f"{name} is missing from the archive") from err
    if info.compress_type not in METHODS or info.flag_bits & 0x1:
        raise pickle.UnpicklingError(
            f"{name} is encrypted or uses zip compression method {info.compress_type}; "
            "torch.save stores members uncompressed"
        )
    if limit is not None and info.file_size > limit:
        raise pickle.UnpicklingError(f"{name} holds {info.file_size:,} bytes, expected a few")
    check("zip_member_bytes", info.file_size, f"{what}: zip member {name}")
    data = bytearray(info.file_size)
    try:
        filled = _fill(archive, info, memoryview(data))
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise pickle.UnpicklingError(f"{name} cannot be read: {err}") from err
    if filled != info.file_size:
        raise pickle.UnpicklingError(
            f"{name} holds {filled:,} of the {info.file_size:,} bytes its header declares"
        )
    return data


def _fill(archive: zipfile.ZipFile, info: zipfile.ZipInfo, view: memoryview) -> int:
    filled = 0
    with archive.open(info) as member:
        while chunk := member.read(CHUNK_BYTES):
            if filled + len(chunk) > len(view):
                raise pickle.UnpicklingError(
                    f"{info.filename} inflates past the {len(view):,} bytes its header declares"
                )
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    return filled
