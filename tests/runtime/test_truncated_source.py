"""A video file that stops mid-stream (a cut-off copy or download): the run keeps the frames that
decode, says the file looks truncated, and exits 0 with a playable output.

What OpenCV (FFmpeg backend) does with real truncated files, cut at 60% of their bytes:
  .avi MJPG, .mkv mp4v, .mp4 mp4v with the moov atom moved to the front: it opens them, reports
      the header's full frame count, and decodes frames up to the cut;
  .mp4 / .mov as cv2.VideoWriter writes them (moov atom at the end): it cannot open them at all,
      which is the one-line "cannot open video" error (tests/test_bad_input_matrix.py).
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from runtime.io.sources import open_source
from scenes import write_scene_video

REPO = Path(__file__).resolve().parents[2]
FRAMES = 30
CONTAINER_ATOMS = (b"trak", b"mdia", b"minf", b"stbl")


def _atoms(data: bytes | bytearray, start: int, end: int):
    """(type, offset, size) of the ISO-BMFF boxes in data[start:end] (32-bit sizes only)."""
    offset = start
    while offset < end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        yield kind, offset, size
        offset += size


def _shift_chunk_offsets(moov: bytearray, start: int, end: int, shift: int) -> None:
    for kind, offset, size in _atoms(moov, start, end):
        if kind in CONTAINER_ATOMS:
            _shift_chunk_offsets(moov, offset + 8, offset + size, shift)
        elif kind == b"stco":
            (count,) = struct.unpack(">I", moov[offset + 12 : offset + 16])
            for at in range(offset + 16, offset + 16 + 4 * count, 4):
                (value,) = struct.unpack(">I", moov[at : at + 4])
                moov[at : at + 4] = struct.pack(">I", value + shift)
        elif kind == b"co64":
            raise AssertionError("64-bit chunk offsets: not expected in a small test video")


def _moov_first(src: Path, dst: Path) -> Path:
    """Rewrite an .mp4 with its moov atom before the media data ("faststart", as web videos
    are), which cv2.VideoWriter cannot write itself."""
    data = src.read_bytes()
    boxes = list(_atoms(data, 0, len(data)))
    _, at, size = next(b for b in boxes if b[0] == b"moov")
    moov = bytearray(data[at : at + size])
    _shift_chunk_offsets(moov, 8, size, size)  # the media data moves back by the moov's size
    out = bytearray()
    for kind, offset, box_size in boxes:
        if kind == b"mdat":
            out += moov
        if kind != b"moov":
            out += data[offset : offset + box_size]
    dst.write_bytes(bytes(out))
    return dst


def _video(tmp_path: Path, case: str) -> Path:
    """A complete 30-frame scene video of the given kind."""
    if case == "avi-mjpg":
        path = tmp_path / "full.avi"
        write_scene_video(path, 3, 64, 96, FRAMES)
    elif case == "mkv-mp4v":
        path = tmp_path / "full.mkv"
        write_scene_video(path, 3, 64, 96, FRAMES, fourcc="mp4v")
    else:
        write_scene_video(tmp_path / "moov_last.mp4", 3, 64, 96, FRAMES)
        path = _moov_first(tmp_path / "moov_last.mp4", tmp_path / "full.mp4")
    return path


def _truncate(video: Path, fraction: float = 0.6) -> Path:
    data = video.read_bytes()
    cut = video.with_name("cut" + video.suffix)
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


CASES = ["avi-mjpg", "mkv-mp4v", "mp4-moov-first"]


@pytest.mark.parametrize("case", CASES)
def test_complete_files_raise_no_truncation_warning(tmp_path, case, decoded_frames):
    video = _video(tmp_path, case)
    assert decoded_frames(video)[0] == FRAMES
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        source = open_source(str(video))
        assert source.info.frame_count == FRAMES
        assert len(list(source.frames())) == FRAMES
        source.close()


@pytest.mark.parametrize("case", CASES)
def test_truncated_file_run_keeps_the_frames_that_decode(
    tmp_path, case, plain_model, decoded_frames
):
    cut = _truncate(_video(tmp_path, case))
    decodable, size = decoded_frames(cut)
    assert 0 < decodable < FRAMES, f"the cut should leave part of the video ({decodable})"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "runtime.cli", cut.name, "--model", str(plain_model),
         "--out", "o.mp4"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        f"scaseg-run: warning: video {cut.name} ended after {decodable} of the expected {FRAMES} "
        f"frames: is the file truncated? Keeping the {decodable} frames that decoded"
    ) in result.stderr
    assert re.search(rf"done: {decodable} frames", result.stdout), result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert decoded_frames(tmp_path / "o.mp4") == (decodable, size)


def test_loop_over_a_truncated_file_warns_once_and_loops_the_decodable_frames(
    tmp_path, decoded_frames
):
    cut = _truncate(_video(tmp_path, "avi-mjpg"))
    decodable = decoded_frames(cut)[0]
    source = open_source(str(cut), loop=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = []
        for frame in source.frames():
            frames.append(frame)
            if len(frames) == 3 * decodable:
                break
    source.close()
    assert [f.index for f in frames] == list(range(3 * decodable))
    assert [str(w.message) for w in caught] == [
        f"video {cut} ended after {decodable} of the expected {FRAMES} frames: is the file "
        f"truncated? Keeping the {decodable} frames that decoded"
    ]
