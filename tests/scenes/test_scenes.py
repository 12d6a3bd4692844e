import itertools

import cv2
import numpy as np
import pytest

import scenes
from scenes import (
    SPLITS,
    object_boxes,
    render_scene,
    render_video_frames,
    split_seeds,
    write_scene_video,
)
from scenes.classes import CLASS_ID, DEMO_CLASSES
from scenes.static import static_layer


def test_same_arguments_give_identical_bytes_even_after_the_cache_is_cleared():
    frame_a, labels_a = render_scene(3, 128, 160, t=0.7)
    static_layer.cache_clear()
    scenes.scene_spec.cache_clear()
    frame_b, labels_b = render_scene(3, 128, 160, t=0.7)
    assert frame_a.tobytes() == frame_b.tobytes()
    assert labels_a.tobytes() == labels_b.tobytes()


def test_different_seeds_give_different_scenes():
    assert not np.array_equal(render_scene(1, 96, 96)[1], render_scene(2, 96, 96)[1])


def test_output_layout():
    frame_bgr, labels = render_scene(0, 64, 80)
    assert frame_bgr.shape == (64, 80, 3) and frame_bgr.dtype == np.uint8
    assert labels.shape == (64, 80) and labels.dtype == np.uint8
    assert labels.max() < len(DEMO_CLASSES)


def test_every_class_appears_over_a_few_seeds():
    seen = set()
    for seed in range(6):
        seen |= set(np.unique(render_scene(seed, 256, 256)[1]).tolist())
    assert seen == set(range(len(DEMO_CLASSES)))


@pytest.mark.parametrize("seed", [0, 1, 4])
@pytest.mark.parametrize("t", [0.0, 1.7])
def test_object_labels_stay_inside_the_objects_boxes(seed, t):
    """Masks align with the geometry: no car/person/pole pixel outside that object's box."""
    labels = render_scene(seed, 256, 256, t=t, noise=False)[1]
    for name in ("car", "person", "pole"):
        inside = np.zeros_like(labels, bool)
        for box in object_boxes(seed, 256, 256, t):
            if box.class_id == CLASS_ID[name]:
                inside[max(box.y0 - 1, 0) : box.y1 + 2, max(box.x0 - 1, 0) : box.x1 + 2] = True
        stray = (labels == CLASS_ID[name]) & ~inside
        assert not stray.any(), f"{stray.sum()} {name} pixels outside every {name} box"


def test_noise_changes_the_image_only():
    clean, labels_clean = render_scene(5, 96, 128, noise=False)
    noisy, labels_noisy = render_scene(5, 96, 128)
    assert np.array_equal(labels_clean, labels_noisy)
    diff = noisy.astype(int) - clean.astype(int)
    assert 0.5 < diff.std() < 12.0


@pytest.mark.parametrize("size", [(32, 32), (33, 97), (97, 33), (360, 640)])
def test_any_size_from_32_works(size):
    height, width = size
    frame_bgr, labels = render_scene(7, height, width, t=2.0)
    assert frame_bgr.shape == (height, width, 3) and labels.shape == (height, width)
    assert len(np.unique(labels)) >= 3  # still a scene, not one flat colour


def test_sizes_show_the_same_layout():
    small = render_scene(2, 128, 128)[1]
    large = render_scene(2, 512, 512)[1]
    shrunk = cv2.resize(large, (128, 128), interpolation=cv2.INTER_NEAREST)
    assert np.mean(shrunk == small) > 0.9


def test_consecutive_frames_change_a_little():
    labels = [render_scene(1, 128, 128, t=i / 25)[1] for i in range(0, 26, 5)]
    changed = [np.mean(a != b) for a, b in itertools.pairwise(labels)]
    assert max(changed) < 0.08  # 0.2 s apart: objects moved and the camera panned a little
    assert np.mean(labels[0] != labels[-1]) > 0  # but something did move over one second


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "seed must be a non-negative int"),
        ({"height": 31}, "height must be an int >= 32"),
        ({"width": 20}, "width must be an int >= 32"),
        ({"t": float("nan")}, "t must be a finite"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    args = {"seed": 0, "height": 64, "width": 64, "t": 0.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        render_scene(**args)


def test_splits_are_disjoint_and_seeds_come_from_the_split():
    ranges = sorted(SPLITS.values(), key=lambda r: r.start)
    for a, b in itertools.pairwise(ranges):
        assert a.stop <= b.start
    assert split_seeds("val", 3) == [1_000_000, 1_000_001, 1_000_002]
    assert split_seeds("calib", 2, start=10) == [3_000_010, 3_000_011]


def test_split_seed_errors_say_what_is_valid():
    with pytest.raises(ValueError, match="'bench', 'calib', 'train', 'val'"):
        split_seeds("test", 1)
    with pytest.raises(ValueError, match="has 100000 seeds"):
        split_seeds("train", 10, start=99_995)


def test_written_video_reopens_with_its_frames_and_labels(tmp_path):
    path, labels_dir = tmp_path / "scene.mp4", tmp_path / "labels"
    info = write_scene_video(path, 11, 64, 96, num_frames=5, labels_dir=labels_dir)
    assert (info.fourcc, info.num_frames, info.width, info.height) == ("mp4v", 5, 96, 64)
    cap = cv2.VideoCapture(str(path))
    decoded = []
    while (ok_frame := cap.read())[0]:
        decoded.append(ok_frame[1])
    cap.release()
    assert len(decoded) == 5 and decoded[0].shape == (64, 96, 3)
    for i, (frame_bgr, labels) in enumerate(render_video_frames(11, 64, 96, 5)):
        png = cv2.imread(str(labels_dir / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8 and np.array_equal(png, labels)
        assert np.abs(decoded[i].astype(int) - frame_bgr).mean() < 12  # lossy, but this frame
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["labels", "scene.mp4"]  # no temp files
    assert len(list(labels_dir.iterdir())) == 5


def test_existing_video_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "scene.avi"
    write_scene_video(path, 1, 48, 64, num_frames=2)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_scene_video(path, 2, 48, 64, num_frames=2)
    assert path.read_bytes() == before
    info = write_scene_video(path, 2, 48, 64, num_frames=2, overwrite=True)
    assert info.fourcc == "MJPG" and path.read_bytes() != before


def test_writer_failure_says_what_failed_and_leaves_nothing(tmp_path):
    path = tmp_path / "scene.mp4"
    with pytest.raises(RuntimeError, match=r"'XXXX'.*MJPG"):
        write_scene_video(path, 1, 48, 64, num_frames=2, fourcc="XXXX")
    assert list(tmp_path.iterdir()) == []


def test_video_arguments_are_checked_before_writing(tmp_path):
    with pytest.raises(ValueError, match="odd; use an even width and height"):
        write_scene_video(tmp_path / "a.mp4", 1, 33, 64, num_frames=2)
    with pytest.raises(ValueError, match="cannot pick a codec"):
        write_scene_video(tmp_path / "a.mkv", 1, 32, 64, num_frames=2)
    assert list(tmp_path.iterdir()) == []
