"""Calibration data: folders, videos sampled evenly, generated scenes, and their errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.sources import CalibrationDataError, load_calibration_data, model_inputs
from runtime.errors import BudgetError
from runtime.preprocess import Preprocess, preprocess, preprocess_uint8
from runtime.sampling import evenly_spaced
from tests.support.hostile_files import (
    lying_mkv,
    make_fifo,
    non_utf8_path,
    png_claiming,
    write_png,
)

REPO = Path(__file__).resolve().parents[2]


def _folder(tmp_path, n: int):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((20, 30, 3), i, np.uint8))
    return folder


def test_evenly_spaced_includes_both_ends():
    assert evenly_spaced(10, 3) == [0, 4, 9] or evenly_spaced(10, 3) == [0, 5, 9]
    assert evenly_spaced(4, 10) == [0, 1, 2, 3]
    assert evenly_spaced(7, 1) == [3]


def test_folder_is_sampled_evenly(tmp_path):
    data = load_calibration_data(_folder(tmp_path, 9), 3, 64, 64)
    assert [int(f[0, 0, 0]) for f in data.frames] == [0, 4, 8]
    assert data.kind == "folder" and "3 of 9 images" in data.description


def test_video_frames_are_sampled_evenly(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(20):
        writer.write(np.full((24, 32, 3), i * 10, np.uint8))
    writer.release()
    data = load_calibration_data(path, 5, 64, 64)
    levels = [int(np.median(f)) for f in data.frames]
    expected = [i * 10 for i in evenly_spaced(20, 5)]
    assert np.allclose(levels, expected, atol=3), (levels, expected)
    assert data.kind == "video"


def test_unreadable_video(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not a video")
    with pytest.raises(CalibrationDataError, match=r"cannot open|no decodable"):
        load_calibration_data(path, 4, 64, 64)


def test_generated_scenes_are_the_calib_split():
    data = load_calibration_data("generated", 2, 64, 96)
    assert data.kind == "generated" and data.frames[0].shape == (64, 96, 3)
    assert load_calibration_data("generated", 2, 64, 96).sha256 == data.sha256  # deterministic


def test_data_hash_changes_with_the_pixels(tmp_path):
    folder = _folder(tmp_path, 3)
    before = load_calibration_data(folder, 3, 64, 64).sha256
    cv2.imwrite(str(folder / "001.png"), np.full((20, 30, 3), 200, np.uint8))
    assert load_calibration_data(folder, 3, 64, 64).sha256 != before


@pytest.mark.parametrize("fused", [False, True])
def test_model_inputs_are_the_runtime_preprocessing(tmp_path, fused):
    data = load_calibration_data(_folder(tmp_path, 2), 2, 64, 64)
    pp = Preprocess(32, 64)
    got = list(model_inputs(data, pp, fused))
    want = [(preprocess_uint8 if fused else preprocess)(f, pp) for f in data.frames]
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert got[0].shape == ((1, 32, 64, 3) if fused else (1, 3, 32, 64))


def _tree(tmp_path):
    """frames/a/000.png .. frames/b/005.png (levels 0..5) and a notes file."""
    for i in range(6):
        sub = tmp_path / "frames" / ("a" if i < 3 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"{i:03d}.png"), np.full((20, 30, 3), i, np.uint8))
    (tmp_path / "frames" / "notes.md").write_text("x")
    return tmp_path / "frames"


def test_glob_pattern_with_recursive_stars(tmp_path):
    frames = _tree(tmp_path)
    data = load_calibration_data(f"{frames}/**/*.png", 6, 64, 64)
    assert [int(f[0, 0, 0]) for f in data.frames] == [0, 1, 2, 3, 4, 5]
    assert data.kind == "glob" and f"images matching {frames}/**/*.png: 6 of 6" in data.description
    assert load_calibration_data(f"{frames}/b/*.png", 6, 64, 64).samples == 3


def test_glob_pattern_errors(tmp_path):
    frames = _tree(tmp_path)
    with pytest.raises(CalibrationDataError, match=r"matches no files"):
        load_calibration_data(f"{frames}/*.jpg", 2, 64, 64)
    with pytest.raises(CalibrationDataError, match=r"files that are not images: .*notes\.md"):
        load_calibration_data(f"{frames}/**/*", 2, 64, 64)


def test_list_file_relative_to_its_folder(tmp_path):
    frames = _tree(tmp_path)
    absolute = frames / "b" / "005.png"
    listing = frames / "calib.txt"
    listing.write_text(f"# calibration frames\na/001.png\n\n  b/004.png  \n{absolute}\n")
    data = load_calibration_data(listing, 3, 64, 64)
    assert [int(f[0, 0, 0]) for f in data.frames] == [1, 4, 5]
    assert data.kind == "list" and f"image list {listing}: 3 of 3 images" in data.description


def test_list_file_errors(tmp_path):
    frames = _tree(tmp_path)
    listing = frames / "calib.txt"
    listing.write_text("a/000.png\na/nope.png\n")
    with pytest.raises(
        CalibrationDataError, match=r"calib\.txt line 2: a/nope\.png does not exist"
    ):
        load_calibration_data(listing, 2, 64, 64)
    listing.write_text("# only a comment\n")
    with pytest.raises(CalibrationDataError, match="lists no images"):
        load_calibration_data(listing, 2, 64, 64)
    listing.write_text("notes.md\n")
    with pytest.raises(CalibrationDataError, match=r"not images: .*notes\.md"):
        load_calibration_data(listing, 2, 64, 64)


def test_missing_source_names_every_kind(tmp_path):
    with pytest.raises(CalibrationDataError) as err:
        load_calibration_data(tmp_path / "nope", 2, 64, 64)
    for kind in (
        "does not exist",
        "image folder",
        "glob pattern",
        "video",
        ".txt list",
        "generated",
    ):
        assert kind in str(err.value)


def test_holdout_frames_never_overlap_calibration(tmp_path):
    folder = _folder(tmp_path, 9)
    plain = load_calibration_data(folder, 3, 64, 64)
    data = load_calibration_data(folder, 3, 64, 64, holdout=2)
    assert [int(f[0, 0, 0]) for f in data.frames] == [0, 4, 8]
    assert [int(f[0, 0, 0]) for f in data.holdout_frames] == [1, 7]  # evenly over 1,2,3,5,6,7
    assert data.sha256 == plain.sha256 and plain.holdout_frames == ()
    assert data.description.endswith("; 2 held-out frames")


def test_holdout_gives_fewer_frames_when_few_are_left(tmp_path):
    data = load_calibration_data(_folder(tmp_path, 4), 3, 64, 64, holdout=5)
    assert [int(f[0, 0, 0]) for f in data.holdout_frames] == [1]  # calibration took 0, 2, 3
    assert "only 1 of 5 held-out frames" in data.description
    none_left = load_calibration_data(tmp_path / "images", 4, 64, 64, holdout=2)
    assert none_left.holdout_frames == () and "only 0 of 2" in none_left.description
    with pytest.raises(CalibrationDataError, match="held-out frame count must be >= 0"):
        load_calibration_data(tmp_path / "images", 4, 64, 64, holdout=-1)


def test_video_holdout_frames_are_other_frames(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(20):
        writer.write(np.full((24, 32, 3), i * 10, np.uint8))
    writer.release()
    data = load_calibration_data(path, 5, 64, 64, holdout=3)
    calib = {round(float(np.median(f)) / 10) for f in data.frames}
    held = [round(float(np.median(f)) / 10) for f in data.holdout_frames]
    assert len(held) == 3 and not calib & set(held)
    assert data.sha256 == load_calibration_data(path, 5, 64, 64).sha256


def test_generated_holdout_scenes_are_other_scenes():
    data = load_calibration_data("generated", 2, 64, 96, holdout=2)
    assert len(data.holdout_frames) == 2
    assert not any(np.array_equal(h, f) for h in data.holdout_frames for f in data.frames)
    assert data.sha256 == load_calibration_data("generated", 2, 64, 96).sha256


def test_folders_and_globs_are_ordered_as_the_runtime_orders_them(tmp_path):
    """f2 before f10, as scaseg-run reads an image folder: held-out and calibration frames are
    the ones a user counting their files expects."""
    from runtime.io.sources import open_source

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 2, 10, 11):
        cv2.imwrite(str(folder / f"f{i}.png"), np.full((8, 8, 3), i, np.uint8))
    data = load_calibration_data(folder, 4, 8, 8)
    assert [int(f[0, 0, 0]) for f in data.frames] == [1, 2, 10, 11]
    src = open_source(str(folder))
    try:
        assert [int(fr.frame_bgr[0, 0, 0]) for fr in src.frames()] == [1, 2, 10, 11]
    finally:
        src.close()


def test_fifos_in_a_folder_or_list_are_skipped_with_a_warning(tmp_path):
    folder = _folder(tmp_path, 3)
    make_fifo(folder / "001b.png")
    data = load_calibration_data(folder, 3, 64, 64)
    assert data.samples == 3
    assert data.warnings == (
        f"calibration folder {folder}: skipped 1 entry that is not a regular file: "
        f"{folder}/001b.png (a FIFO (named pipe))",
    )
    listing = tmp_path / "calib.txt"
    listing.write_text("images/000.png\nimages/001b.png\nimages/002.png\n")
    data = load_calibration_data(listing, 3, 64, 64)
    assert data.samples == 2 and data.warnings == (
        f"image list {listing}: skipped 1 entry that is not a regular file: "
        "images/001b.png (a FIFO (named pipe))",
    )


def _in_subprocess(code: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter, so a hang before the fix is a failed test."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, env=env
    )


def test_a_recursive_pattern_survives_symlink_cycles(tmp_path):
    """glob.glob('**', recursive=True) follows links into folders: two links back up make the
    paths multiply without end (it ran for hours)."""
    frames = _tree(tmp_path)
    (frames / "a" / "up").symlink_to(frames)
    (frames / "b" / "up").symlink_to(frames)
    code = (
        "from calibration.sources import load_calibration_data as load\n"
        f"print(load({str(frames)!r} + '/**/*.png', 6, 64, 64).description)"
    )
    result = _in_subprocess(code)
    assert result.returncode == 0, result.stderr
    assert f"images matching {frames}/**/*.png: 6 of 6 images" in result.stdout


def test_a_frame_count_the_video_cannot_hold_is_not_believed(tmp_path):
    """A 1 kB .mkv that claims a million frames: the frames that decode are sampled evenly
    (before: only frame 0 was, of the million picked)."""
    video = lying_mkv(tmp_path / "lie.mkv", frames=20, claimed=1_000_000)
    data = load_calibration_data(video, 5, 64, 64, holdout=2)
    levels = [round(float(np.median(f)) / 10) for f in data.frames]
    assert len(levels) == 5 and levels == sorted(levels) and levels[0] == 0 and levels[-1] >= 16
    assert len(data.holdout_frames) == 2
    assert "5 of 20 frames" in data.description
    (warning,) = data.warnings
    assert "lie.mkv: its header claims 1,000,000 frames, more than its" in warning


def test_video_frames_are_bounded_by_the_budget(tmp_path, monkeypatch):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(20):
        writer.write(np.full((24, 32, 3), i * 10, np.uint8))
    writer.release()
    monkeypatch.setenv("SCASEG_MAX_VIDEO_FRAMES", "10")
    with pytest.raises(
        BudgetError, match=r"clip\.avi \(by its header\) needs 20 frames, over the limit of 10"
    ):
        load_calibration_data(path, 4, 64, 64)
    lie = lying_mkv(tmp_path / "lie.mkv", frames=20, claimed=1_000_000)
    with pytest.raises(
        BudgetError, match=r"lie\.mkv \(length unknown, still decoding\) needs 11 frames"
    ):
        load_calibration_data(lie, 4, 64, 64)


def test_long_unknown_length_videos_are_thinned_evenly(tmp_path):
    video = lying_mkv(tmp_path / "lie.mkv", frames=25, claimed=1_000_000)
    data = load_calibration_data(video, 2, 64, 64)  # keeps at most 4 frames while reading
    levels = [round(float(np.median(f)) / 10) for f in data.frames]
    assert levels == [0, 24]


def test_non_utf8_names_are_read_and_a_video_with_one_is_refused(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    write_png(non_utf8_path(folder, ".png"), np.full((8, 8, 3), 5, np.uint8))
    data = load_calibration_data(folder, 1, 64, 64)
    assert int(data.frames[0][0, 0, 0]) == 5 and "frames" in data.description
    video = non_utf8_path(tmp_path, ".mkv")
    lying_mkv(tmp_path / "ok.mkv", frames=2, claimed=2).rename(video)
    with pytest.raises(CalibrationDataError, match=r"fr\\xe9me\.mkv: .*not valid UTF-8.*rename"):
        load_calibration_data(video, 1, 64, 64)


def test_image_budgets_apply_to_calibration_images(tmp_path):
    folder = _folder(tmp_path, 2)
    (folder / "001.png").write_bytes(png_claiming(60000, 60000))
    with pytest.raises(BudgetError, match=r"001\.png: a 60000x60000 PNG image"):
        load_calibration_data(folder, 2, 64, 64)


def test_video_frame_sizes_are_checked_before_decoding(tmp_path, monkeypatch):
    video = lying_mkv(tmp_path / "clip.mkv", frames=3, claimed=3)
    monkeypatch.setenv("SCASEG_MAX_IMAGE_PIXELS", "3000")
    with pytest.raises(BudgetError, match=r"clip\.mkv: 64x48 frames needs 3,072 pixels"):
        load_calibration_data(video, 2, 64, 64)


def test_a_list_line_that_cannot_be_a_file_name_is_bad_input(tmp_path):
    _folder(tmp_path, 1)
    listing = tmp_path / "calib.txt"
    listing.write_bytes(b"images/000.png\nimages/\x00.png\n")
    with pytest.raises(
        CalibrationDataError, match=r"calib\.txt line 2: images/\\x00\.png holds a NUL"
    ):
        load_calibration_data(listing, 2, 64, 64)
    listing.write_bytes(b"images/fr\xe9me.png\n")  # Latin-1, not UTF-8
    with pytest.raises(CalibrationDataError, match=r"calib\.txt: it is not UTF-8 text"):
        load_calibration_data(listing, 2, 64, 64)
