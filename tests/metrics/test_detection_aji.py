import math

import numpy as np
import pytest

from stardist_hier.metrics import aji, aji_plus, centroids, detection_f1

from .test_conventions import block


def disk_image(shape, *centres):
    """One 3x3 square per ``(id, row, col)`` centre."""
    y = np.zeros(shape, np.int32)
    for i, r, c in centres:
        y[r - 1:r + 2, c - 1:c + 2] = i
    return y


def test_centroids_are_mean_pixel_coordinates():
    y = block((6, 8), (4, 0, 2, 0, 4), (9, 3, 6, 5, 6))
    ids, cent = centroids(y)
    assert ids.tolist() == [4, 9]
    np.testing.assert_allclose(cent, [[0.5, 1.5], [4.0, 5.0]])
    ids, big = centroids(np.where(y > 0, y.astype(np.int64) << 40, 0))
    assert ids.tolist() == [4 << 40, 9 << 40]
    np.testing.assert_allclose(big, cent)


def test_detection_f1_hand_computed():
    gt = disk_image((80, 80), (1, 10, 10), (2, 50, 50))
    pred = disk_image((80, 80), (5, 13, 14), (6, 50, 70))    # 5 px away: paired; 20 px: not
    r = detection_f1(gt, pred)
    assert (r.tp, r.fp, r.fn) == (1, 1, 1)
    assert r.f1 == 0.5 and r.precision == 0.5 and r.recall == 0.5


def test_radius_is_inclusive_and_pairs_pool_over_images():
    gt = disk_image((40, 40), (1, 10, 10))
    at12 = disk_image((40, 40), (1, 10, 22))
    r = detection_f1([gt, gt], [at12, np.zeros_like(gt)])
    assert (r.tp, r.fp, r.fn) == (1, 0, 1)
    assert detection_f1(gt, at12, radius=11.9).tp == 0
    assert math.isnan(detection_f1(np.zeros_like(gt), np.zeros_like(gt)).f1)


def test_type_f1_hand_computed():
    gt = disk_image((60, 60), (1, 5, 5), (2, 5, 30), (3, 40, 40))
    pred = disk_image((60, 60), (1, 5, 6), (2, 6, 30), (4, 40, 10))
    # pairs: (gt 1: type 1, pred 1: type 1), (gt 2: type 1, pred 2: type 2);
    # unpaired gt 3 (type 2), unpaired pred 4 (type 1)
    r = detection_f1(gt, pred, {1: 1, 2: 1, 3: 2}, {1: 1, 2: 2, 4: 1})
    assert (r.tp, r.fp, r.fn) == (2, 1, 1)
    assert r.accuracy == 0.5
    assert r.per_type_counts[1] == dict(tp=1, tn=0, fp=0, fn=1, fp_d=1, fn_d=0)
    assert r.per_type[1] == pytest.approx(2 / (2 + 2 + 1))
    assert r.per_type_counts[2] == dict(tp=0, tn=0, fp=1, fn=0, fp_d=0, fn_d=1)
    assert r.per_type[2] == 0.0


def test_type_from_pixel_class_maps_by_majority():
    gt = disk_image((20, 20), (1, 5, 5))
    gcls = np.where(gt > 0, 3, 0)
    pcls = gcls.copy()
    pcls[4, 4:6] = 1   # 2 of 9 pixels of another class
    r = detection_f1(gt, gt, gcls, pcls)
    assert r.per_type == {3: 1.0} and r.accuracy == 1.0


def test_aji_hand_computed():
    gt = block((24, 8), (1, 0, 4, 0, 4), (2, 10, 12, 0, 4))
    pred = block((24, 8), (1, 0, 4, 2, 6), (2, 20, 22, 0, 2))
    # pair (1, 1): intersection 8, union 24; unpaired gt 2 (8 px) and pred 2 (4 px)
    assert aji(gt, pred) == pytest.approx(8 / 36)
    assert aji_plus(gt, pred) == pytest.approx(8 / 36)


def test_aji_reuses_a_prediction_aji_plus_does_not():
    gt = block((4, 4), (1, 0, 2, 0, 4), (2, 2, 4, 0, 4))
    pred = block((4, 4), (1, 0, 4, 0, 4))
    assert aji(gt, pred) == pytest.approx(16 / 32)         # both GT pair with the one prediction
    assert aji_plus(gt, pred) == pytest.approx(8 / 24)     # one pair, the other GT is unpaired


def test_aji_empty_cases():
    gt = block((4, 4), (1, 0, 2, 0, 2))
    empty = np.zeros_like(gt)
    assert aji(gt, empty) == 0.0 and aji_plus(empty, gt) == 0.0
    assert math.isnan(aji(empty, empty))
    with pytest.raises(ValueError, match=r"shape mismatch"):
        aji(gt, gt[:3])
