"""Members of a torch.save zip archive, read within their budgets.

torch.save stores every member uncompressed; a deflated member is still read (zip tools
recompress archives), but what its header declares is checked before any of it is inflated: its
size against `zip_member_bytes`, all members together against `checkpoint_bytes`, a storage's
size against the element count its pickle records, and a stored member against the bytes the
file really has. A header can still lie about a deflated member: zipfile stops it at the declared
size and checks its CRC, and the reads below go in chunks and hold only what was really inflated.
Errors of the zip layer (bad CRC, corrupt deflate data, a truncated file) become
pickle.UnpicklingError, which the caller reports as an unreadable file.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import zipfile
import zlib
from collections.abc import Iterator

from runtime.budgets import check

CHUNK_BYTES = 1 << 20
METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
SMALL_MEMBER_BYTES = 64  # byteorder, .format_version: a word each
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError)


class TorchArchive:
    """A torch.save zip archive whose directory has been checked against its budgets."""

    def __init__(self, f, what: str) -> None:
        self.what = what
        self.size = f.seek(0, io.SEEK_END)
        f.seek(0)
        # ZipFile parses the whole central directory on open (about half a kB per entry); the
        # end record says how many entries there are. _EndRecData is private but unchanged
        # since Python 2.6.
        end = zipfile._EndRecData(f)
        if end is None:
            raise zipfile.BadZipFile("no zip end record: truncated, or not a zip file")
        check("zip_entries", end[zipfile._ECD_ENTRIES_TOTAL], f"{what}: its zip directory")
        self.zip = zipfile.ZipFile(f)
        self.names = self.zip.namelist()
        total = sum(info.file_size for info in self.zip.infolist())
        check("checkpoint_bytes", total, f"{what}: its zip members unpacked")

    def close(self) -> None:
        self.zip.close()

    def read(self, name: str, expected: int | None = None, limit: int | None = None) -> bytearray:
        """The bytes of member `name`; `expected`: the size it must have (a storage's element
        count x element size), `limit`: at most this many bytes (a one-word member)."""
        info = self._info(name)
        if expected is not None and info.file_size != expected:
            raise pickle.UnpicklingError(
                f"{name} holds {info.file_size:,} bytes, but its record says {expected:,}"
            )
        if limit is not None and info.file_size > limit:
            raise pickle.UnpicklingError(f"{name} holds {info.file_size:,} bytes, expected a few")
        if info.compress_type == zipfile.ZIP_STORED:  # torch.save: the size is real, read once
            data = bytearray(info.file_size)
            filled = self._fill(info, memoryview(data))
        else:
            data = bytearray()
            with self.stream(name) as member:
                while chunk := member.read(CHUNK_BYTES):
                    data += chunk
            filled = len(data)
        if filled != info.file_size:
            raise pickle.UnpicklingError(
                f"{name} holds {filled:,} of the {info.file_size:,} bytes its header declares"
            )
        return data

    @contextlib.contextmanager
    def stream(self, name: str) -> Iterator[io.BufferedIOBase]:
        """Member `name` as a file, read as it inflates; zip errors become UnpicklingError."""
        info = self._info(name)
        try:
            with self.zip.open(info) as member:
                yield member
        except ZIP_ERRORS as err:
            raise pickle.UnpicklingError(f"{name} cannot be read: {err}") from err

    def _info(self, name: str) -> zipfile.ZipInfo:
        try:
            info = self.zip.getinfo(name)
        except KeyError as err:
            raise pickle.UnpicklingError(f"{name} is missing from the archive") from err
        if info.compress_type not in METHODS or info.flag_bits & 0x1:
            raise pickle.UnpicklingError(
                f"{name} is encrypted or uses zip compression method {info.compress_type}; "
                "torch.save stores members uncompressed"
            )
        check("zip_member_bytes", info.file_size, f"{self.what}: zip member {name}")
        stored = info.compress_type == zipfile.ZIP_STORED
        if info.compress_size > self.size or (stored and info.compress_size != info.file_size):
            raise pickle.UnpicklingError(
                f"{name} claims {info.compress_size:,} bytes in a file of {self.size:,} "
                "(truncated or edited?)"
            )
        return info

    def _fill(self, info: zipfile.ZipInfo, view: memoryview) -> int:
        filled = 0
        with self.stream(info.filename) as member:
            while chunk := member.read(min(CHUNK_BYTES, len(view) - filled + 1)):
                if filled + len(chunk) > len(view):
                    raise pickle.UnpicklingError(
                        f"{info.filename} holds more than the {len(view):,} bytes its header "
                        "declares"
                    )
                view[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
        return filled
