"""Calibration data: folders, videos sampled evenly, generated scenes, and their errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration.sources import (
    CalibrationDataError,
    evenly_spaced,
    load_calibration_data,
    model_inputs,
)
from runtime.preprocess import Preprocess, preprocess, preprocess_uint8


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
