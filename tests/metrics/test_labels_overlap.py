import numpy as np
import pytest

from stardist_hier.metrics import check_label_image, label_overlap, panoptic_quality

from .helpers import random_labels


def test_float_with_integer_values_is_accepted():
    out = check_label_image(np.array([[0.0, 2.0], [2.0, 5.0]]), name="gt")
    assert out.dtype.kind == "i"
    assert out.tolist() == [[0, 2], [2, 5]]


def test_bool_mask_is_one_instance():
    out = check_label_image(np.array([[True, False]]))
    assert out.tolist() == [[1, 0]]


@pytest.mark.parametrize("bad, match", [
    (np.array([[0.0, 1.5]]), r"pred: float label image holds non-integer values \(e.g. 1.5\)"),
    (np.array([[0.0, np.nan]]), r"pred: float label image holds NaN"),
    (np.array([[0, -3]]), r"pred: negative labels \(minimum -3\)"),
    (np.array([["a", "b"]]), r"pred: dtype <U1 is not a label image dtype"),
])
def test_bad_label_images_name_the_argument(bad, match):
    with pytest.raises(ValueError, match=match):
        panoptic_quality(np.zeros((1, 2), int), bad)


def test_shape_mismatch_names_both_arguments():
    with pytest.raises(ValueError, match=r"shape mismatch: gt has shape \(4, 4\), pred has shape \(4, 5\)"):
        label_overlap(np.zeros((4, 4), int), np.zeros((4, 5), int))


def test_overlap_matches_brute_force_with_non_contiguous_ids(rng):
    gt = random_labels(rng, step=7)
    pred = random_labels(rng, step=13)
    ov = label_overlap(gt, pred)
    assert ov.gt_ids.tolist() == [i for i in np.unique(gt) if i]
    assert ov.pred_ids.tolist() == [i for i in np.unique(pred) if i]
    dense = ov.dense(ov.intersection)
    for a, g in enumerate(ov.gt_ids):
        assert ov.gt_area[a] == (gt == g).sum()
        for b, p in enumerate(ov.pred_ids):
            assert dense[a, b] == ((gt == g) & (pred == p)).sum()
    k = np.argmax(ov.intersection)
    g, p = ov.gt_ids[ov.gt_index[k]], ov.pred_ids[ov.pred_index[k]]
    assert ov.iou[k] == ((gt == g) & (pred == p)).sum() / ((gt == g) | (pred == p)).sum()


def test_huge_ids_take_the_sorting_path_and_agree(rng):
    gt = random_labels(rng).astype(np.int64)
    pred = random_labels(rng).astype(np.int64)
    big_gt = np.where(gt > 0, gt + 2**40, 0)
    big_pred = np.where(pred > 0, pred * 2**35, 0)
    a, b = label_overlap(gt, pred), label_overlap(big_gt, big_pred)
    assert b.gt_ids.tolist() == [i + 2**40 for i in a.gt_ids]
    np.testing.assert_array_equal(a.dense(), b.dense())
    np.testing.assert_array_equal(a.pred_area, b.pred_area)
