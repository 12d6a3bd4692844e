"""Sinks: overlay and label videos, palettised PNGs, JSON lines, codec fallback, atomic finalising."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runtime.classes import palette_bgr
from runtime.io.sink_types import Result
from runtime.io.sinks import JsonLinesSink, LabelPngSink
from runtime.io.video import CodecFallbackWarning, OddSizeWarning
from runtime.io.video_sinks import LabelVideoSink, OverlayVideoSink, SizeChangeWarning
from runtime.segmenter import StageTimes
from scenes.classes import DEMO_PALETTE_RGB

TABLE = palette_bgr(DEMO_PALETTE_RGB, num_classes=8)
TIMES = StageTimes(1.0, 2.0, 0.5)


def results(n=7, h=48, w=80):
    for i in range(n):
        labels = np.zeros((h, w), np.uint8)
        labels[:, : (i + 1) * 5] = i % 8
        labels[h // 2 :, :] = 3
        frame = np.full((h, w, 3), 90, np.uint8)
        yield Result(i, f"{i:06d}", frame, labels, TIMES)


def test_overlay_video_has_every_frame_at_the_frame_size(tmp_path, decoded_frames):
    sink = OverlayVideoSink(tmp_path / "o.mp4", 25.0, TABLE, alpha=0.5)
    for r in results():
        sink.write(r)
    assert "7 frames, mp4v" in sink.close()
    assert decoded_frames(tmp_path / "o.mp4") == (7, (80, 48))
    assert [p.name for p in tmp_path.iterdir()] == ["o.mp4"]  # no temp file left behind


def test_codec_fallback_warns_and_writes(tmp_path, decoded_frames):
    with pytest.warns(CodecFallbackWarning, match="codec avc1 is not available.*with mp4v instead"):
        sink = OverlayVideoSink(tmp_path / "o.mp4", 25.0, TABLE, 0.5, codec="avc1")
        for r in results(3):
            sink.write(r)
        sink.close()
    assert decoded_frames(tmp_path / "o.mp4")[0] == 3


def test_label_pngs_are_palettised_class_ids(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    sink = LabelPngSink(tmp_path / "labels", TABLE)
    expected = list(results())
    for r in expected:
        sink.write(r)
    sink.close()
    files = sorted((tmp_path / "labels").iterdir())
    assert [f.name for f in files] == [".scaseg-output", *(f"{i:06d}.png" for i in range(7))]
    files = files[1:]
    image = pil.open(files[4])
    assert image.mode == "P"
    assert np.array_equal(np.asarray(image), expected[4].labels)
    palette = np.asarray(image.getpalette()[:24], np.uint8).reshape(8, 3)
    assert np.array_equal(palette, TABLE[:, ::-1])  # RGB in the PNG


def test_label_video_in_mkv_is_lossless_colour(tmp_path, decoded_frames):
    import cv2

    sink = LabelVideoSink(tmp_path / "labels.mkv", 25.0, TABLE)
    first = next(results())
    sink.write(first)
    assert "FFV1" in sink.close()
    ok, frame = cv2.VideoCapture(str(tmp_path / "labels.mkv")).read()
    assert ok and np.array_equal(frame, TABLE[first.labels])


def test_json_lines_hold_class_areas_and_latency(tmp_path):
    sink = JsonLinesSink(tmp_path / "s.jsonl", ("road", "sidewalk", "building", "vegetation"))
    for r in results(4):
        sink.write(r)
    sink.close()
    lines = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == [0, 1, 2, 3]
    assert sum(lines[0]["class_areas"].values()) == pytest.approx(1.0, abs=1e-3)
    assert lines[0]["latency_ms"] == {
        "preprocess": 1.0,
        "infer": 2.0,
        "postprocess": 0.5,
        "total": 3.5,
    }


def test_json_lines_say_when_each_frame_was_read_and_where_it_sits_in_the_file(
    tmp_path, make_video
):
    """Through the real pipeline from a real 25 FPS file: unix read time, and pts_ms = i * 40."""
    import time

    from runtime.io.sources import open_source
    from runtime.pipeline import run_pipeline
    from tests.support.fake_segmenter import FakeSegmenter

    video = make_video(tmp_path / "clip.avi", num_frames=6, fps=25.0)
    sink = JsonLinesSink(tmp_path / "s.jsonl", tuple(f"c{i}" for i in range(8)))
    before = time.time()
    run_pipeline(open_source(str(video)).frames(), False, FakeSegmenter(), [sink])
    lines = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["pts_ms"] for r in lines] == [pytest.approx(40.0 * i, abs=1.0) for i in range(6)]
    times = [r["time"] for r in lines]
    assert before - 0.01 <= times[0] <= times[-1] <= time.time() and times == sorted(times)


def test_existing_outputs_need_force(tmp_path):
    (tmp_path / "o.mp4").write_bytes(b"old")
    (tmp_path / "labels").mkdir()
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        OverlayVideoSink(tmp_path / "o.mp4", 25.0, TABLE, 0.5)
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        LabelPngSink(tmp_path / "labels", TABLE)
    sink = LabelPngSink(tmp_path / "labels", TABLE, overwrite=True)  # empty: nothing replaced
    sink.write(next(results()))
    sink.close()
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == [
        ".scaseg-output",
        "000000.png",
    ]


def test_a_folder_scaseg_did_not_write_is_left_alone_even_with_overwrite(tmp_path):
    from runtime.errors import UnsafePathError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "photo.png").write_bytes(b"a user's picture")
    with pytest.raises(UnsafePathError, match=r"photo\.png.*no \.scaseg-output marker"):
        LabelPngSink(mine, TABLE, overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["photo.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no temp folder left either


def test_overwrite_replaces_only_the_pngs_of_a_folder_scaseg_wrote(tmp_path):
    labels = tmp_path / "labels"
    first = LabelPngSink(labels, TABLE)
    for r in results(3):
        first.write(r)
    first.close()
    (labels / "notes.txt").write_text("mine")
    (labels / "sub").mkdir()
    (labels / "sub" / "000005.png").write_bytes(b"mine too")
    (labels / "000002.png").unlink()
    (labels / "000002.png").symlink_to(tmp_path / "elsewhere.png")
    second = LabelPngSink(labels, TABLE, overwrite=True)
    second.write(next(results(1)))
    assert "1 PNGs" in second.close()
    assert sorted(p.name for p in labels.iterdir()) == [
        ".scaseg-output", "000000.png", "000002.png", "notes.txt", "sub"
    ]  # fmt: skip
    assert (labels / "000002.png").is_symlink()  # only regular files are scaseg's
    assert (labels / "sub" / "000005.png").read_bytes() == b"mine too"


def test_abort_and_empty_runs_leave_nothing(tmp_path):
    video = OverlayVideoSink(tmp_path / "o.mp4", 25.0, TABLE, 0.5)
    video.write(next(results()))
    video.abort()
    empty = OverlayVideoSink(tmp_path / "e.mp4", 25.0, TABLE, 0.5)
    assert empty.close() is None
    lines = JsonLinesSink(tmp_path / "s.jsonl", ("a",))
    lines.abort()
    pngs = LabelPngSink(tmp_path / "labels", TABLE)
    pngs.abort()
    assert list(tmp_path.iterdir()) == []


def test_frames_of_another_size_are_resized_with_a_warning(tmp_path, decoded_frames):
    sink = OverlayVideoSink(tmp_path / "o.mp4", 25.0, TABLE, 0.5)
    sink.write(next(results(1, 48, 80)))
    with pytest.warns(SizeChangeWarning, match="resizes them to the first frame's 80x48"):
        sink.write(next(results(1, 31, 33)))
    sink.close()
    assert decoded_frames(tmp_path / "o.mp4") == (2, (80, 48))


def test_odd_frames_are_padded_not_cropped(tmp_path, decoded_frames):
    sink = OverlayVideoSink(tmp_path / "o.mp4", 25.0, TABLE, 0.5)
    with pytest.warns(OddSizeWarning, match="77x45 is odd.*o.mp4 is 78x46"):
        sink.write(next(results(1, 45, 77)))
    sink.close()
    assert decoded_frames(tmp_path / "o.mp4") == (1, (78, 46))


def test_bad_video_suffix_and_alpha(tmp_path):
    with pytest.raises(ValueError, match="video output must end in one of"):
        OverlayVideoSink(tmp_path / "o.gif", 25.0, TABLE, 0.5)
    with pytest.raises(ValueError, match="alpha must be in"):
        OverlayVideoSink(tmp_path / "o.mp4", 25.0, TABLE, 1.5)


@pytest.mark.parametrize(
    ("classes", "dtype"), [(1, np.uint8), (8, np.uint8), (256, np.uint8), (300, np.int32)]
)
def test_colorize_matches_a_clipped_table_lookup(classes, dtype):
    """Ids past the palette (255 = ignore) take its last colour, on both lookup paths."""
    from runtime.io.overlay import colorize

    rng = np.random.default_rng(classes)
    table = rng.integers(0, 256, (classes, 3)).astype(np.uint8)
    labels = rng.integers(0, 256 if dtype == np.uint8 else 400, (37, 53)).astype(dtype)
    expected = np.take(table, labels, axis=0, mode="clip")
    assert np.array_equal(colorize(labels, table), expected)


def test_segments_are_numbered_files_each_complete(tmp_path, decoded_frames):
    sink = OverlayVideoSink(tmp_path / "o.mp4", 25.0, TABLE, alpha=0.5, segment_frames=3)
    for r in results(n=7):
        sink.write(r)
    # the first two files are finalised (playable) while the run is still going
    assert decoded_frames(tmp_path / "o_00000.mp4") == (3, (80, 48))
    assert decoded_frames(tmp_path / "o_00001.mp4") == (3, (80, 48))
    summary = sink.close()
    assert "o_00000.mp4 ... o_00002.mp4 (7 frames in 3 file(s), mp4v)" in summary
    assert decoded_frames(tmp_path / "o_00002.mp4") == (1, (80, 48))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "o_00000.mp4",
        "o_00001.mp4",
        "o_00002.mp4",
    ]


def test_a_crash_keeps_finished_segments_and_drops_the_open_one(tmp_path, decoded_frames):
    sink = LabelVideoSink(tmp_path / "l.avi", 25.0, TABLE, segment_frames=2)
    for r in results(n=5):
        sink.write(r)
    sink.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l_00000.avi", "l_00001.avi"]
    assert decoded_frames(tmp_path / "l_00001.avi")[0] == 2


def test_existing_segments_need_force(tmp_path):
    (tmp_path / "o_00004.mp4").write_bytes(b"an older run")
    with pytest.raises(FileExistsError, match=r"o_00004\.mp4 and 0 more segment.*overwrite=True"):
        OverlayVideoSink(tmp_path / "o.mp4", 25.0, TABLE, alpha=0.5, segment_frames=3)
    OverlayVideoSink(tmp_path / "o.mp4", 25.0, TABLE, alpha=0.5, overwrite=True, segment_frames=3)
    with pytest.raises(ValueError, match="segment length"):
        OverlayVideoSink(tmp_path / "p.mp4", 25.0, TABLE, alpha=0.5, segment_frames=0)
