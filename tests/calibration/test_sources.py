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
