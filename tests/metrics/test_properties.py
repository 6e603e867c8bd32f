"""Property tests on random label images (hypothesis)."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stardist_hier.metrics import (PQResult, evaluate_cut, evaluate_levels, label_overlap, pq_conic, pq_hovernet,
                                   pq_pannuke, pq_stardist)
from stardist_hier.metrics.pq import strict_counts
from stardist_hier.tree import LabelSet, default_taxonomy

SHAPE = (16, 16)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def label_images(draw, max_instances=6):
    """Overlapping rectangles with arbitrary (non-contiguous) ids, later ones on top."""
    y = np.zeros(SHAPE, np.int32)
    boxes = draw(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 15), st.integers(1, 8), st.integers(1, 8),
                                    st.integers(1, 10_000)), max_size=max_instances))
    for r, c, h, w, i in boxes:
        y[r:r + h, c:c + w] = i
    return y


@st.composite
def class_maps(draw, labels):
    """Pixel class map in 1..3 following the instances, with some pixels of another class."""
    ids = [i for i in np.unique(labels) if i]
    cls = np.zeros(labels.shape, np.int32)
    for i in ids:
        cls[labels == i] = draw(st.integers(1, 3))
    if ids and draw(st.booleans()):
        r, c = draw(st.integers(0, 15)), draw(st.integers(0, 15))
        if labels[r, c]:
            cls[r:r + 3, c:c + 3] = np.where(labels[r:r + 3, c:c + 3] > 0, draw(st.integers(1, 3)),
                                             cls[r:r + 3, c:c + 3])
    return cls


def permuted(y, seed):
    ids = np.unique(y)[1:]
    lut = np.zeros(int(y.max()) + 1, np.int64)
    lut[ids] = np.random.default_rng(seed).permutation(len(ids)) + 7
    return np.where(y > 0, lut[y], 0)


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)


@FAST
@given(st.data())
def test_perfect_prediction_scores_one(data):
    gt = data.draw(label_images())
    cls = data.draw(class_maps(gt))
    pred = permuted(gt, data.draw(st.integers(0, 1000)))
    pcls = cls.copy()
    if not gt.any():
        assert pq_conic([gt], [pred]).pq == 0.0 and pq_stardist([gt], [pred]).pq == 0.0
        return
    assert pq_hovernet(gt, pred).pq == 1.0
    assert pq_stardist(gt, pred).pq == pytest.approx(1.0)
    conic = pq_conic([gt], [pred], [cls], [pcls])
    assert conic.pq == pytest.approx(1.0, abs=1e-5) and conic.mpq == pytest.approx(1.0, abs=1e-5)
    pann = pq_pannuke([gt], [pred], [cls], [pcls])
    assert pann.pq == 1.0 and pann.mpq == 1.0


@FAST
@given(st.data())
def test_swapping_gt_and_prediction_keeps_pq(data):
    """PQ is symmetric: swapping swaps FP and FN, and DQ, SQ, PQ depend on FP + FN only.

    Holds for every convention on one image, and for the pooled per-class PQ of CoNIC.
    It does not hold for PanNuke's NaN rule (which looks at the ground truth only).
    """
    gt, pred = data.draw(label_images()), data.draw(label_images())
    gcls, pcls = data.draw(class_maps(gt)), data.draw(class_maps(pred))
    for fn in (lambda a, b: pq_hovernet(a, b, both_empty="skip"), pq_stardist,
               lambda a, b: pq_stardist(a, b, threshold=0.3)):
        r, s = fn(gt, pred), fn(pred, gt)
        assert same(r.pq, s.pq) and (r.binary.tp, r.binary.fp, r.binary.fn) == (s.binary.tp, s.binary.fn,
                                                                                 s.binary.fp)
    r, s = pq_conic([gt], [pred], [gcls], [pcls]), pq_conic([pred], [gt], [pcls], [gcls])
    assert same(r.pq, s.pq) and same(r.mpq, s.mpq)
    for c in r.per_class:
        assert (r.per_class[c].tp, r.per_class[c].fp) == (s.per_class[c].tp, s.per_class[c].fn)


@FAST
@given(st.data())
def test_collapsing_to_the_root_equals_binary_pq(data):
    tax = default_taxonomy()
    pannuke = tax["pannuke"]
    gts = [data.draw(label_images()) for _ in range(2)]
    preds = [data.draw(label_images()) for _ in range(2)]
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    gcl = [{int(i): rng.choice(pannuke.labels) for i in np.unique(g)[1:]} for g in gts]
    pcl = [{int(i): rng.dirichlet(np.ones(tax.tree.n_classes + 1)) for i in np.unique(p)[1:]} for p in preds]
    pooled = sum(strict_counts(label_overlap(g, p)) for g, p in zip(gts, preds))[1]
    binary = PQResult.from_counts(*pooled, eps=1e-6)
    root = evaluate_cut(gts, preds, gcl, pcl, label_set=pannuke, cut=LabelSet.root(tax.tree)).per_class["nucleus"]
    assert root == binary
    assert evaluate_levels(gts, preds, gcl, pcl, label_set=pannuke)[0].per_class["nucleus"] == binary
    sd = evaluate_cut(gts, preds, gcl, pcl, label_set=pannuke, cut=LabelSet.root(tax.tree), convention="stardist")
    assert sd.per_class["nucleus"].pq == pytest.approx(pq_stardist(gts, preds).pq)
