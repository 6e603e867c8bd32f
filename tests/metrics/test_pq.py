import math

import numpy as np
import pytest

from stardist_hier.metrics import PQResult, panoptic_quality

from .helpers import naive_strict_pq, perturb, random_labels


def half_iou_pair():
    """GT: 4 pixels; prediction: 2 of them. IoU = 2 / 4 = 0.5 exactly."""
    gt = np.zeros((3, 6), np.int32)
    gt[0, 0:4] = 1
    pred = np.zeros_like(gt)
    pred[0, 0:2] = 9
    return gt, pred


def test_iou_exactly_half_is_not_a_match():
    r = panoptic_quality(*half_iou_pair())
    assert (r.tp, r.fp, r.fn, r.sum_iou) == (0, 1, 1, 0.0)
    assert r.pq == 0.0 and r.dq == 0.0 and r.sq == 0.0


def test_hand_computed_partial_match():
    gt = np.zeros((4, 8), np.int32)
    gt[:, 0:4] = 3          # 16 px
    gt[0, 6] = 8            # 1 px, unmatched
    pred = np.zeros_like(gt)
    pred[:, 1:4] = 5        # 12 px inside instance 3: IoU 12/16
    r = panoptic_quality(gt, pred)
    assert (r.tp, r.fp, r.fn) == (1, 0, 1)
    assert r.sum_iou == pytest.approx(0.75)
    assert r.dq == pytest.approx(1 / 1.5)
    assert r.sq == pytest.approx(0.75)
    assert r.pq == pytest.approx(0.5)
    assert (r.n_gt, r.n_pred) == (2, 1)


def test_empty_cases():
    gt, pred = half_iou_pair()
    empty = np.zeros_like(gt)
    assert panoptic_quality(empty, pred).pq == 0.0
    r = panoptic_quality(gt, empty)
    assert (r.pq, r.fn, r.fp) == (0.0, 1, 0)
    both = panoptic_quality(empty, empty)
    assert math.isnan(both.pq) and math.isnan(both.dq)
    assert panoptic_quality(empty, empty, eps=1e-6).pq == 0.0


def test_from_counts_with_epsilon_is_conic():
    r = PQResult.from_counts(2, 1, 0, 1.8, eps=1e-6)
    assert r.dq == 2 / (2.5 + 1e-6)
    assert r.sq == 1.8 / (2 + 1e-6)
    assert r.pq == r.dq * r.sq


def test_threshold_below_half_uses_hungarian():
    gt = np.zeros((2, 8), np.int32)
    gt[0, 0:4] = 1
    pred = np.zeros_like(gt)
    pred[0, 0:2] = 2        # IoU 0.5 with gt 1
    pred[1, 0:4] = 3        # no overlap
    r = panoptic_quality(gt, pred, threshold=0.3)
    assert (r.tp, r.fp, r.fn, r.sum_iou) == (1, 1, 0, 0.5)


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_slow_reference(seed):
    rng = np.random.default_rng(seed)
    gt = random_labels(rng, step=3)
    pred = perturb(rng, gt) if seed % 2 else random_labels(rng)
    tp, fp, fn, s = naive_strict_pq(gt, pred)
    r = panoptic_quality(gt, pred)
    assert (r.tp, r.fp, r.fn) == (tp, fp, fn)
    assert r.sum_iou == pytest.approx(s)
