"""Validation images with masks: the dataset layouts, pairing, masks, and their errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.errors import BudgetError
from runtime.masks import OutOfRangeTally, check_labels, read_mask, reduce_zero_label
from runtime.metrics import ConfusionMatrix
from runtime.val_data import ValDataError, ValSample, find_val_set
from tests.support.blocked_imports import run_blocked
from tests.support.datasets import (
    HEIGHT,
    WIDTH,
    Faults,
    make_ade20k,
    make_cityscapes,
    make_mmseg,
    make_plain,
)
from tests.support.hostile_files import make_fifo, non_utf8_path, png_claiming, write_png


def _assert_reads_truth(val_set, ds, reduce: bool = False) -> None:
    for i, (image, _) in enumerate(val_set.pairs):
        frame_bgr, labels = val_set.read(i)
        assert frame_bgr.shape == (HEIGHT, WIDTH, 3) and frame_bgr.dtype == np.uint8
        truth = ds.truth[image.name].astype(np.int32)
        want = reduce_zero_label(truth) if reduce else truth
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(labels, want)


def test_cityscapes_layout_pairs_across_cities(tmp_path):
    ds = make_cityscapes(tmp_path)
    val_set = find_val_set(tmp_path)
    assert val_set.layout == "cityscapes" and val_set.split == "val"
    assert list(val_set.pairs) == ds.pairs and len(val_set) == 3
    # *_color.png and *_labelIds.png next to the train ids are neither paired nor "unpaired".
    assert val_set.warnings == () and not val_set.reduce_zero_label
    assert val_set.description == f"cityscapes layout at {tmp_path}: 3 pairs (split val)"
    _assert_reads_truth(val_set, ds)
    assert set(np.unique(val_set.read(0)[1])) <= {0, 1, 2, 5, 8, 10, 11, 13}


def test_cityscapes_unpaired_files_are_warnings(tmp_path):
    make_cityscapes(tmp_path, faults=Faults(unpaired_image=True, unpaired_mask=True))
    val_set = find_val_set(tmp_path)
    assert len(val_set) == 3
    assert val_set.warnings == (
        "1 image without a mask: frankfurt_000099_000019_leftImg8bit.png",
        "1 mask without an image: zz_000000_000000_gtFine_labelTrainIds.png",
    )


def test_cityscapes_without_train_ids_says_how_to_make_them(tmp_path):
    make_cityscapes(tmp_path)
    for mask in tmp_path.glob("gtFine/val/*/*_labelTrainIds.png"):
        mask.unlink()
    with pytest.raises(ValDataError, match="csCreateTrainIdLabelImgs"):
        find_val_set(tmp_path)


@pytest.mark.parametrize("parent", [True, False])
def test_ade20k_layout_reduces_the_zero_label(tmp_path, parent):
    ds = make_ade20k(tmp_path, parent=parent)
    val_set = find_val_set(tmp_path)
    assert val_set.layout == "ade20k" and val_set.split == "validation"
    assert val_set.reduce_zero_label and "reduce_zero_label" in val_set.description
    _assert_reads_truth(val_set, ds, reduce=True)
    labels = val_set.read(1)[1]
    assert (labels[-4:, -4:] == 255).all()  # "other" is ignored
    assert labels.max() == 255 and labels[labels != 255].max() <= 149


def test_ade20k_reduce_zero_label_can_be_turned_off(tmp_path):
    ds = make_ade20k(tmp_path)
    val_set = find_val_set(tmp_path, reduce_zero_label=False)
    assert not val_set.reduce_zero_label
    _assert_reads_truth(val_set, ds)


def test_reduce_zero_label_keeps_the_ignore_index():
    labels = np.array([[0, 1, 150, 255]], np.int32)
    assert reduce_zero_label(labels).tolist() == [[255, 0, 149, 255]]


def test_mmseg_layout(tmp_path):
    ds = make_mmseg(tmp_path, split="test")
    val_set = find_val_set(tmp_path, split="test")
    assert val_set.layout == "mmseg" and list(val_set.pairs) == ds.pairs
    _assert_reads_truth(val_set, ds)


def test_explicit_folders_pair_by_stem_and_report_the_unpaired(tmp_path):
    ds = make_plain(tmp_path, faults=Faults(unpaired_image=True, unpaired_mask=True))
    val_set = find_val_set(ds.root, masks=ds.masks)
    assert val_set.layout == "explicit" and val_set.split is None
    assert list(val_set.pairs) == ds.pairs
    assert [p.name for p in val_set.unpaired_images] == ["frame_99.jpg"]
    assert [p.name for p in val_set.unpaired_masks] == ["frame_98.png"]
    assert val_set.warnings == (
        "1 image without a mask: frame_99.jpg",
        "1 mask without an image: frame_98.png",
    )
    _assert_reads_truth(val_set, ds)


def test_many_unpaired_files_are_counted_and_a_few_named(tmp_path):
    ds = make_plain(tmp_path)
    for n in range(5):
        cv2.imwrite(str(ds.root / f"extra_{n}.png"), np.zeros((8, 8, 3), np.uint8))
    (warning,) = find_val_set(ds.root, masks=ds.masks).warnings
    assert warning == "5 images without a mask: extra_0.png, extra_1.png, extra_2.png (+2 more)"


def test_samples_are_evenly_spaced_and_read_one_at_a_time(tmp_path):
    ds = make_mmseg(tmp_path, count=5)
    val_set = find_val_set(tmp_path)
    picked = list(val_set.samples(max_images=3))
    assert [s.image_path for s in picked] == [ds.pairs[i][0] for i in (0, 2, 4)]
    assert isinstance(picked[0], ValSample) and picked[0].labels.shape == (HEIGHT, WIDTH)
    assert len(list(val_set)) == 5
    with pytest.raises(ValDataError, match="max_images must be >= 1"):
        val_set.indices(0)


def test_missing_root(tmp_path):
    with pytest.raises(ValDataError, match=r"nope does not exist"):
        find_val_set(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValDataError, match="is not a folder"):
        find_val_set(tmp_path / "file.txt")


def test_unknown_layout_says_what_was_looked_for_and_found(tmp_path):
    (tmp_path / "pictures").mkdir()
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(ValDataError) as err:
        find_val_set(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    for part in ("leftImg8bit/ + gtFine/", "images/ + annotations/", "img_dir/ + ann_dir/"):
        assert part in message
    assert "found: pictures/, readme.md" in message and "masks folder" in message


def test_missing_split_lists_the_splits_present(tmp_path):
    make_cityscapes(tmp_path, split="train")
    (tmp_path / "leftImg8bit" / "test").mkdir()
    with pytest.raises(ValDataError, match=r"no split 'val'; splits there: test, train"):
        find_val_set(tmp_path)
    assert len(find_val_set(tmp_path, split="train")) == 3


def test_no_pairs_is_an_error_naming_the_unpaired(tmp_path):
    ds = make_plain(tmp_path, count=2)
    for _, mask in ds.pairs:
        mask.rename(mask.with_name("other_" + mask.name))
    with pytest.raises(ValDataError, match=r"no image/mask pairs.*2 images without a mask"):
        find_val_set(ds.root, masks=ds.masks)


def test_missing_masks_folder(tmp_path):
    ds = make_plain(tmp_path, count=1)
    with pytest.raises(ValDataError, match=r"masks folder .*labels does not exist"):
        find_val_set(ds.root, masks=tmp_path / "labels")


def test_colour_mask_is_an_error_naming_the_file(tmp_path):
    make_cityscapes(tmp_path, faults=Faults(colour_mask=True))
    val_set = find_val_set(tmp_path)
    name = val_set.pairs[0][1].name
    with pytest.raises(ValDataError, match=rf"{name} has 3 colour channels; .*single-channel"):
        val_set.read(0)
    val_set.read(1)  # the others are fine


def test_mask_of_another_size_is_an_error_naming_the_file(tmp_path):
    ds = make_mmseg(tmp_path, faults=Faults(wrong_size=True))
    with pytest.raises(ValDataError, match=r"00\.png is 64x64 but its image 00\.jpg is 64x128"):
        find_val_set(ds.root).read(0)


def test_16_bit_masks_keep_their_values(tmp_path):
    mask = np.arange(64 * 128, dtype=np.uint16).reshape(64, 128) % 1000
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)


def test_palette_png_masks_give_their_indices(tmp_path):
    """VOC's SegmentationClass masks are palette PNGs; OpenCV alone would read colours."""
    image = pytest.importorskip("PIL.Image")
    from runtime.classes import preset

    indices = np.zeros((16, 24), np.uint8)
    indices[4:8] = 15  # person
    indices[8:] = 255  # border: VOC's palette has a colour for it
    palette = [v for rgb in preset("voc").palette_rgb for v in rgb]
    palette += [v for i in range(21, 256) for v in (i, 255 - i, (7 * i) % 256)]
    png = image.fromarray(indices, mode="P")
    png.putpalette(palette)
    png.save(tmp_path / "2007_000033.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "2007_000033.png"), indices)


def test_check_labels_counts_values_outside_the_classes():
    labels = np.array([[0, 18, 19, 19, 255, -1]], np.int32)
    assert check_labels(labels, 19, 255) == {-1: 1, 19: 2}
    assert check_labels(labels, 20, 255) == {-1: 1}
    assert check_labels(labels, 19, None) == {-1: 1, 19: 2, 255: 1}


def test_tally_reports_out_of_range_masks_in_one_line(tmp_path):
    make_cityscapes(tmp_path, faults=Faults(out_of_range=19))
    val_set = find_val_set(tmp_path)
    tally = OutOfRangeTally(19, 255)
    cm = ConfusionMatrix(19)
    for sample in val_set.samples():
        labels = tally.clean(sample.labels, sample.mask_path.name)
        cm.update(labels, labels)  # would raise on 19 if clean had left it
    name = val_set.pairs[0][1].name
    assert tally.summary() == [
        f"1 mask holds values outside 0..18 that are not the ignore index 255 (counted as "
        f"ignored): {name} (value 19: 10 px)"
    ]
    assert OutOfRangeTally(19).summary() == []


def test_tally_names_a_few_files_and_counts_the_rest():
    tally = OutOfRangeTally(2)
    for n in range(5):
        tally.add(f"m{n}.png", np.array([[0, 3, 7, 7]]))
    (line,) = tally.summary()
    assert line.startswith("5 masks hold values outside 0..1")
    assert line.endswith("m2.png (value 3: 1 px, value 7: 2 px) (+2 more)")


def test_val_data_and_classes_import_without_heavy_modules(tmp_path):
    code = "import runtime.val_data, runtime.masks, runtime.classes, runtime.sampling; print('ok')"
    result = run_blocked(tmp_path, "-c", code)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_fifos_among_images_and_masks_are_skipped_with_a_warning(tmp_path):
    ds = make_plain(tmp_path, count=2)
    make_fifo(ds.root / "frame_5.jpg")
    make_fifo(ds.masks / "frame_5.png")
    val_set = find_val_set(ds.root, masks=ds.masks)
    assert list(val_set.pairs) == ds.pairs
    assert val_set.warnings == (
        f"{ds.root}: skipped 1 entry that is not a regular file: {ds.root}/frame_5.jpg "
        "(a FIFO (named pipe))",
        f"{ds.masks}: skipped 1 entry that is not a regular file: {ds.masks}/frame_5.png "
        "(a FIFO (named pipe))",
    )


def test_a_symlink_cycle_in_a_dataset_is_listed_once(tmp_path):
    ds = make_cityscapes(tmp_path)
    (tmp_path / "leftImg8bit" / "val" / "lindau" / "loop").symlink_to(tmp_path / "leftImg8bit")
    val_set = find_val_set(tmp_path)
    assert list(val_set.pairs) == ds.pairs and val_set.warnings == ()


def test_mask_sizes_are_checked_before_decoding(tmp_path):
    ds = make_mmseg(tmp_path, count=1)
    ds.pairs[0][1].write_bytes(png_claiming(60000, 60000, 8, 0))
    with pytest.raises(BudgetError, match=r"mask .*00\.png: a 60000x60000 PNG image needs"):
        find_val_set(ds.root).read(0)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"GIF89a....", r"cannot decode mask .*00\.png: it is not a PNG"),
        (png_claiming(64, 128, 8, 0), r"cannot decode mask .*00\.png: this PNG file is corrupt"),
    ],
)
def test_undecodable_masks_are_val_data_errors(tmp_path, data, match):
    ds = make_mmseg(tmp_path, count=1)
    ds.pairs[0][1].write_bytes(data)
    with pytest.raises(ValDataError, match=match):
        find_val_set(ds.root).read(0)


def test_names_that_are_not_utf8_are_read_and_shown_escaped(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    write_png(non_utf8_path(images, ".png"), np.zeros((8, 8, 3), np.uint8))
    write_png(non_utf8_path(masks, ".png"), np.ones((8, 8), np.uint8))
    write_png(non_utf8_path(images, "2.png"), np.zeros((8, 8, 3), np.uint8))
    val_set = find_val_set(images, masks=masks)
    assert np.array_equal(val_set.read(0)[1], np.ones((8, 8), np.int32))
    assert val_set.warnings == ("1 image without a mask: fr\\xe9me2.png",)
