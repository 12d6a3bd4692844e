import math

import numpy as np
import pytest

from runtime.metrics import ConfusionMatrix, argmax_agreement, format_iou_table

# 3 classes, 2x4 pixels. (true, pred) pairs, row by row:
#   (0,0) (0,1) (1,1) (1,1) / (2,2) (2,2) (2,0) (1,0)
# class 0: TP 1, predicted 3, true 2 -> union 2+3-1 = 4 -> IoU 1/4
# class 1: TP 2, predicted 3, true 3 -> union 3+3-2 = 4 -> IoU 2/4
# class 2: TP 2, predicted 2, true 3 -> union 2+3-2 = 3 -> IoU 2/3
# pixel accuracy 5/8; mIoU (1/4 + 1/2 + 2/3) / 3 = 17/36
TRUE = np.array([[0, 0, 1, 1], [2, 2, 2, 1]], np.uint8)
PRED = np.array([[0, 1, 1, 1], [2, 2, 0, 0]], np.int32)


def test_hand_computed_example():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TRUE)
    assert cm.matrix.tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 2]]
    np.testing.assert_allclose(cm.iou(), [1 / 4, 2 / 4, 2 / 3])
    assert cm.miou() == pytest.approx(17 / 36)
    assert cm.pixel_accuracy() == pytest.approx(5 / 8)


def test_ignore_index_pixels_are_skipped():
    true = TRUE.copy()
    true[1, 3] = 255  # the (1,0) miss no longer counts
    cm = ConfusionMatrix(3)
    cm.update(PRED, true)
    assert cm.matrix.sum() == 7
    assert cm.pixel_accuracy() == pytest.approx(5 / 7)
    assert cm.iou()[1] == pytest.approx(2 / 3)  # predicted 3, true 2, TP 2


def test_absent_class_is_nan_and_left_out_of_the_mean():
    cm = ConfusionMatrix(4)
    cm.update(PRED, TRUE)
    iou = cm.iou()
    assert math.isnan(iou[3])
    assert cm.miou() == pytest.approx(17 / 36)


def test_empty_matrix_gives_nan_not_an_error():
    cm = ConfusionMatrix(2)
    assert math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy())


def test_merge_equals_one_matrix_over_both_frames():
    a, b, both = ConfusionMatrix(3), ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(PRED, TRUE)
    b.update(TRUE, TRUE)
    both.update(PRED, TRUE)
    both.update(TRUE, TRUE)
    assert a.merge(b) is a
    np.testing.assert_array_equal(a.matrix, both.matrix)
    with pytest.raises(ValueError, match="3-class"):
        a.merge(ConfusionMatrix(4))


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(4, 2\)"):
        ConfusionMatrix(3).update(PRED, TRUE.reshape(4, 2))


def test_label_out_of_range_is_an_error():
    with pytest.raises(ValueError, match=r"label 3, outside 0\.\.2"):
        ConfusionMatrix(3).update(PRED, np.where(TRUE == 2, 3, TRUE))
    with pytest.raises(ValueError, match=r"model predicted label 7, outside 0\.\.2"):
        ConfusionMatrix(3).update(np.full_like(PRED, 7), TRUE)
    with pytest.raises(ValueError, match="integer"):
        ConfusionMatrix(3).update(PRED.astype(np.float32), TRUE)


def test_argmax_agreement():
    assert argmax_agreement(PRED, TRUE) == pytest.approx(5 / 8)
    with pytest.raises(ValueError, match="shape"):
        argmax_agreement(PRED, TRUE[:1])


def test_iou_table_lists_every_class_and_the_mean():
    table = format_iou_table(["road", "car", "sky"], np.array([0.25, 0.5, np.nan]))
    lines = table.splitlines()
    assert lines[2].split() == ["road", "25.0"]
    assert lines[4].split() == ["sky", "-"]
    assert lines[-1].split() == ["mean", "37.5"]
    with pytest.raises(ValueError, match="2 class names for 3"):
        format_iou_table(["a", "b"], np.zeros(3))


def test_out_of_range_truth_is_an_error_unless_skipped():
    true = TRUE.copy()
    true[1, 3] = 7  # a value past the 3 classes, not the ignore index
    with pytest.raises(
        ValueError,
        match=r"reference labels .* hold label 7, outside 0\.\.2: they were made for other classes",
    ):
        ConfusionMatrix(3).update(PRED, true)
    cm = ConfusionMatrix(3)
    assert cm.update(PRED, true, skip_out_of_range=True) == 1
    assert cm.matrix.sum() == 7 and cm.pixel_accuracy() == pytest.approx(5 / 7)
    assert ConfusionMatrix(3).update(PRED, TRUE) == 0


def test_out_of_range_prediction_is_always_an_error():
    pred = PRED.copy()
    pred[0, 0] = 3
    with pytest.raises(ValueError, match="model predicted label 3"):
        ConfusionMatrix(3).update(pred, TRUE, skip_out_of_range=True)
