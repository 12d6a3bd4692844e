"""Reading a user's files and folders: names that are not UTF-8, FIFOs and other non-files,
symlink cycles, and the budgets on bytes and folder entries."""

from __future__ import annotations

import glob
import os
import socket
from pathlib import Path

import pytest

from runtime.errors import BudgetError, UserInputError
from runtime.io.files import glob_files, list_files, opencv_path, read_bytes
from runtime.text import shown
from tests.support.hostile_files import NON_UTF8, make_fifo, non_utf8_path


def test_shown_escapes_undecodable_bytes_and_control_characters():
    assert shown("frames/f01.png") == "frames/f01.png"
    assert shown(os.fsdecode(b"d/" + NON_UTF8 + b".png")) == "d/fr\\xe9me.png"
    assert shown("a\nb\x1b[31m.png") == "a\\nb\\x1b[31m.png"
    assert shown("fréme.png") == "fréme.png"  # valid UTF-8 stays as it is
    shown(os.fsdecode(b"\xff\xfe")).encode("ascii")  # printable on any stream


def test_opencv_never_gets_a_name_that_is_not_utf8(tmp_path):
    assert opencv_path(tmp_path / "fréme.mp4", "video", UserInputError).endswith("fréme.mp4")
    with pytest.raises(UserInputError, match=r"video .*fr\\xe9me\.mp4: .*not valid UTF-8.*rename"):
        opencv_path(non_utf8_path(tmp_path, ".mp4"), "video", UserInputError)


def test_read_bytes_refuses_what_is_not_a_regular_file(tmp_path):
    fifo = make_fifo(tmp_path / "pipe.png")
    with pytest.raises(UserInputError, match=r"pipe\.png is a FIFO \(named pipe\), not a regular"):
        read_bytes(fifo, "image_bytes", "image", UserInputError)
    with pytest.raises(UserInputError, match="is a folder"):
        read_bytes(tmp_path, "image_bytes", "image", UserInputError)
    (tmp_path / "real.png").write_bytes(b"12345")
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")
    assert read_bytes(tmp_path / "link.png", "image_bytes", "image", UserInputError) == b"12345"


def test_read_bytes_checks_the_size_before_reading(tmp_path, monkeypatch):
    (tmp_path / "big.png").write_bytes(b"x" * 101)
    monkeypatch.setenv("SCASEG_MAX_IMAGE_BYTES", "100")
    with pytest.raises(
        BudgetError, match=r"image .*big\.png needs 101 bytes.*SCASEG_MAX_IMAGE_BYTES"
    ):
        read_bytes(tmp_path / "big.png", "image_bytes", "image", UserInputError)


def _tree(tmp_path: Path) -> Path:
    """root/{a.png, .hidden.png, notes.txt, sub/{b.png, deeper/c.png}, .git/d.png}"""
    root = tmp_path / "root"
    for rel in ("a.png", ".hidden.png", "notes.txt", "sub/b.png", "sub/deeper/c.png", ".git/d.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    return root


def test_list_files_skips_fifos_sockets_and_broken_links_with_one_warning(tmp_path):
    root = _tree(tmp_path)
    make_fifo(root / "pipe.png")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock.png"))
    (root / "broken.png").symlink_to(root / "gone.png")
    (root / "link.png").symlink_to(root / "a.png")
    try:
        listing = list_files(root, "folder", keep=lambda name: name.endswith(".png"))
    finally:
        server.close()
    assert sorted(p.name for p in listing.files) == [".hidden.png", "a.png", "link.png"]
    assert listing.warning() == (
        f"skipped 3 entries that are not regular files: {root}/broken.png (a broken link), "
        f"{root}/pipe.png (a FIFO (named pipe)), {root}/sock.png (a socket)"
    )


def test_recursive_listing_survives_symlink_cycles(tmp_path):
    root = _tree(tmp_path)
    (root / "sub" / "up").symlink_to(root)  # root/sub/up/sub/up/... forever
    (root / "sub" / "self").symlink_to(".")
    listing = list_files(root, "folder", recursive=True)
    rel = sorted(p.relative_to(root).as_posix() for p in listing.files)
    assert rel == [
        ".git/d.png",
        ".hidden.png",
        "a.png",
        "notes.txt",
        "sub/b.png",
        "sub/deeper/c.png",
    ]


def test_glob_matches_like_glob_glob(tmp_path, monkeypatch):
    root = _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    for pattern in ("root/*.png", "root/**/*.png", "root/**", "root/s*/*.png", "root/.*.png",
                    "root/sub/**/c.png", "root/[ab].png", f"{root}/**/*.png"):  # fmt: skip
        want = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        got = sorted(str(p) for p in glob_files(pattern, "glob").files)
        assert got == want, pattern


def test_recursive_glob_survives_symlink_cycles(tmp_path):
    """glob.glob('**') follows links into folders, so two links back up multiply the paths
    without end; each folder is listed once here."""
    root = _tree(tmp_path)
    (root / "sub" / "up").symlink_to(root)
    (root / "sub" / "deeper" / "up").symlink_to(root)
    found = glob_files(f"{root}/**/*.png", "glob").files
    assert sorted(p.name for p in found) == ["a.png", "b.png", "c.png"]


def test_folder_entries_are_bounded(tmp_path, monkeypatch):
    root = _tree(tmp_path)
    monkeypatch.setenv("SCASEG_MAX_FOLDER_ENTRIES", "5")
    with pytest.raises(BudgetError, match=r"listing folder .*root needs 6 entries.*_ENTRIES=6"):
        list_files(root, f"folder {root}", recursive=True)
    with pytest.raises(BudgetError, match=r"listing glob '\*\*/\*\.png' needs 6 entries"):
        glob_files(f"{root}/**/*.png", "glob '**/*.png'")
    assert len(list_files(root, "folder").files) == 3  # 5 entries at the top: within the limit
