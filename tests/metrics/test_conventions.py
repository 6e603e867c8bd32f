import math

import numpy as np
import pytest
from stardist.matching import matching, matching_dataset

from stardist_hier.metrics import (CONVENTIONS, evaluate_pq, label_overlap, pq_conic, pq_hovernet, pq_pannuke,
                                   pq_stardist)

from .helpers import perturb, random_labels
from .test_pq import half_iou_pair

EPS = 1e-6


def block(shape, *boxes):
    """Label image with ``(id, r0, r1, c0, c1)`` boxes."""
    y = np.zeros(shape, np.int32)
    for i, r0, r1, c0, c1 in boxes:
        y[r0:r1, c0:c1] = i
    return y


# ------------------------------------------------------------------ IoU exactly 0.5
def test_iou_half_strict_conventions_miss_stardist_matches():
    gt, pred = half_iou_pair()
    assert pq_hovernet(gt, pred).pq == 0.0
    assert pq_conic(gt, pred).pq == 0.0
    assert pq_pannuke(gt, pred).pq == 0.0
    sd = pq_stardist(gt, pred, threshold=0.5)
    assert (sd.binary.tp, sd.binary.fp, sd.binary.fn) == (1, 0, 0)
    assert sd.pq == 0.5


# -------------------------------------------------------------------- empty images
def test_empty_gt_and_empty_pred():
    gt, pred = half_iou_pair()
    empty = np.zeros_like(gt)
    for gts, preds in (([empty], [pred]), ([gt], [empty])):
        assert pq_hovernet(gts, preds).pq == 0.0
        assert pq_conic(gts, preds).pq == 0.0
        assert pq_stardist(gts, preds).pq == 0.0
    assert math.isnan(pq_pannuke([empty], [pred]).pq)   # no ground truth: skipped
    assert pq_pannuke([gt], [empty]).pq == 0.0


def test_both_empty():
    gt, pred = half_iou_pair()
    good = block(gt.shape, (1, 0, 2, 0, 2))
    empty = np.zeros_like(gt)
    with pytest.raises(ValueError, match=r"image 1: ground truth and prediction are both empty"):
        pq_hovernet([good, empty], [good, empty])
    r = pq_hovernet([good, empty], [good, empty], both_empty="skip")
    assert r.pq == 1.0 and math.isnan(r.per_image[1].pq)
    assert pq_conic([good, empty], [good, empty]).pq == pytest.approx(0.5, abs=1e-5)  # 0 for the empty image
    assert pq_pannuke([good, empty], [good, empty]).pq == 1.0                       # NaN skipped
    assert pq_stardist([good, empty], [good, empty], by_image=True).pq == 0.5        # safe divide: 0
    assert pq_stardist([good, empty], [good, empty]).pq == 1.0                       # pooled


# ---------------------------------------------------------------- averaging rules
def two_images():
    """Image A: perfect (PQ 1); image B: one TP with IoU 0.5? no: IoU 12/16, one FN."""
    a = block((6, 10), (1, 0, 4, 0, 4))
    b_gt = block((6, 10), (1, 0, 4, 0, 4), (2, 5, 6, 6, 10))
    b_pred = block((6, 10), (7, 0, 4, 1, 4))
    return [a, b_gt], [a, b_pred]


def test_hovernet_means_per_image_values():
    gts, preds = two_images()
    r = pq_hovernet(gts, preds)
    # B: DQ = 1 / 1.5, SQ = 0.75, PQ = 0.5
    assert r.pq == pytest.approx((1 + 0.5) / 2)
    assert r.dq == pytest.approx((1 + 1 / 1.5) / 2)
    assert r.sq == pytest.approx((1 + 0.75) / 2)
    assert (r.binary.tp, r.binary.fp, r.binary.fn) == (2, 0, 1)
    assert r.binary.sum_iou == pytest.approx(1.75)


def test_stardist_pooled_and_by_image():
    gts, preds = two_images()
    pooled = pq_stardist(gts, preds)
    assert pooled.pq == pytest.approx(1.75 / (2 + 0.5))
    assert pq_stardist(gts, preds, by_image=True).pq == pytest.approx(0.75)


def test_conic_binary_uses_epsilon_per_image():
    gts, preds = two_images()
    r = pq_conic(gts, preds)
    a = (1 / (1 + EPS)) * (1 / (1 + EPS))
    b = (1 / (1.5 + EPS)) * (0.75 / (1 + EPS))
    assert r.pq == pytest.approx((a + b) / 2, rel=1e-12)


# ---------------------------------------------------- classes: pixel map and NaN rule
def test_conic_cuts_instances_by_the_pixel_class_map():
    gt = block((4, 6), (1, 0, 4, 0, 4))                  # 16 px, class 1
    pred = block((4, 6), (7, 0, 4, 0, 4))                # same pixels ...
    gcls = np.where(gt > 0, 1, 0)
    pcls = np.where(pred > 0, 1, 0)
    pcls[:, 3] = 2                                        # ... but column 3 carries class 2
    r = pq_conic([gt], [pred], [gcls], [pcls])
    c1, c2 = r.per_class[1], r.per_class[2]
    assert (c1.tp, c1.fp, c1.fn) == (1, 0, 0) and c1.sum_iou == pytest.approx(12 / 16)
    assert c1.pq == pytest.approx((1 / (1 + EPS)) * (0.75 / (1 + EPS)), rel=1e-12)
    assert (c2.tp, c2.fp, c2.fn) == (0, 1, 0) and c2.pq == 0.0
    assert r.mpq == pytest.approx(c1.pq / 2)
    assert r.pq == pytest.approx(1.0, abs=1e-5)          # binary PQ ignores classes
    p = pq_pannuke([gt], [pred], [gcls], [pcls])
    assert math.isnan(p.per_class[2].pq)                  # no GT of class 2 in the image
    assert p.mpq == pytest.approx(0.75)


def test_class_without_gt_in_an_image_pannuke_skips_conic_counts():
    a_gt = block((10, 10), (1, 0, 4, 0, 4), (2, 0, 4, 6, 10))
    b_gt = block((10, 10), (1, 0, 4, 0, 4))
    b_pred = block((10, 10), (1, 0, 4, 0, 4), (5, 6, 10, 6, 10))   # a class-2 false positive
    gcl = [{1: "t", 2: "l"}, {1: "t"}]
    pcl = [{1: "t", 2: "l"}, {1: "t", 5: "l"}]
    conic = pq_conic([a_gt, b_gt], [a_gt, b_pred], gcl, pcl)
    assert list(conic.per_class) == ["l", "t"]
    lymph = conic.per_class["l"]
    assert (lymph.tp, lymph.fp, lymph.fn) == (1, 1, 0)
    assert lymph.pq == pytest.approx(1 / (1.5 + EPS) * 1 / (1 + EPS), rel=1e-12)
    assert conic.mpq == pytest.approx((lymph.pq + conic.per_class["t"].pq) / 2)
    pann = pq_pannuke([a_gt, b_gt], [a_gt, b_pred], gcl, pcl)
    assert pann.per_class["l"].pq == 1.0 and (pann.per_class["l"].fp, pann.per_class["l"].tp) == (0, 1)
    assert pann.mpq == 1.0
    assert pann.per_image_mpq == (1.0, 1.0)
    assert pann.pq == pytest.approx((1 + 1 / 1.5) / 2)    # bPQ: B has a binary false positive


def test_pannuke_averages_over_tissues():
    gts, preds = two_images()          # PQ 1 and 0.5
    extra = block((6, 10), (1, 0, 4, 0, 4))
    gts, preds = gts + [extra], preds + [np.zeros_like(extra)]      # PQ 0
    cls = [{1: 1, 2: 1}] * 3
    pcl = [{1: 1, 7: 1}] * 3
    r = pq_pannuke(gts, preds, cls, pcl, tissues=["x", "y", "y"])
    assert r.per_group["x"]["mpq"] == 1.0
    assert r.per_group["y"]["mpq"] == pytest.approx(0.25)
    assert r.mpq == pytest.approx((1 + 0.25) / 2)
    assert r.pq == pytest.approx((1 + 0.25) / 2)
    flat = pq_pannuke(gts, preds, cls, pcl)
    assert flat.mpq == pytest.approx(0.5) and flat.per_group == {}


def test_explicit_classes_score_absent_classes_as_conic_does():
    gt = block((4, 4), (1, 0, 2, 0, 2))
    r = pq_conic([gt], [gt], [{1: 1}], [{1: 1}], classes=[1, 2, 3])
    assert r.per_class[2].pq == 0.0 and r.per_class[3].pq == 0.0
    assert r.mpq == pytest.approx(r.per_class[1].pq / 3)


# ------------------------------------------------------- agreement with StarDist
@pytest.mark.parametrize("seed", range(4))
def test_stardist_convention_equals_matching_dataset(seed):
    rng = np.random.default_rng(seed)
    gts = [random_labels(rng, step=5) for _ in range(6)]
    preds = [perturb(rng, g) if k % 2 else random_labels(rng) for k, g in enumerate(gts)]
    ref = matching_dataset(gts, preds, thresh=0.5, show_progress=False)
    r = pq_stardist(gts, preds, threshold=0.5)
    assert (r.binary.tp, r.binary.fp, r.binary.fn) == (ref.tp, ref.fp, ref.fn)
    assert r.pq == pytest.approx(ref.panoptic_quality, rel=1e-6)
    ref_img = matching_dataset(gts, preds, thresh=0.5, show_progress=False, by_image=True)
    assert pq_stardist(gts, preds, by_image=True).pq == pytest.approx(ref_img.panoptic_quality, rel=1e-6)


def test_hovernet_equals_stardist_matching_where_conventions_coincide():
    """IoU > 0.5 is StarDist's IoU >= the next float32 above 0.5 (StarDist's IoU is float32; no
    IoU of these small images lies in between), and IoU >= 0.5 where no IoU is exactly 0.5."""
    above_half = float(np.nextafter(np.float32(0.5), np.float32(1)))
    n_without_half = 0
    for seed in range(8):
        rng = np.random.default_rng(100 + seed)
        gt = random_labels(rng, step=2)
        pred = perturb(rng, gt)
        r = pq_hovernet(gt, pred)
        strict = matching(gt, pred, thresh=above_half)
        assert (r.binary.tp, r.binary.fp, r.binary.fn) == (strict.tp, strict.fp, strict.fn)
        assert r.pq == pytest.approx(strict.panoptic_quality, rel=1e-6)
        if not np.any(label_overlap(gt, pred).iou == 0.5):
            n_without_half += 1
            m = matching(gt, pred, thresh=0.5)
            assert (r.binary.tp, r.pq) == (m.tp, pytest.approx(m.panoptic_quality, rel=1e-6))
    assert n_without_half >= 4


# ----------------------------------------------------------------------- dispatch
def test_evaluate_pq_dispatches_and_rejects():
    gts, preds = two_images()
    for c in CONVENTIONS:
        assert evaluate_pq(gts, preds, convention=c).convention == c
    assert evaluate_pq(gts, preds, convention="stardist").pq == pq_stardist(gts, preds).pq
    with pytest.raises(ValueError, match="unknown PQ convention 'coco'"):
        evaluate_pq(gts, preds, convention="coco")
    with pytest.raises(ValueError, match="convention 'hovernet' is class-agnostic"):
        evaluate_pq(gts, preds, [{}, {}], [{}, {}], convention="hovernet")
    with pytest.raises(ValueError, match="pass both gt_classes and pred_classes"):
        pq_conic(gts, preds, [{}, {}])
    with pytest.raises(ValueError, match="gt has 2 images but pred has 1"):
        pq_conic(gts, preds[:1])
    with pytest.raises(ValueError, match=r"shape mismatch: gt\[0\] has shape \(6, 10\), pred\[0\] has shape \(6, 9\)"):
        pq_hovernet(gts, [p[:, :9] for p in preds])
    with pytest.raises(ValueError, match=r"pred\[1\]: negative labels"):
        pq_stardist(gts, [preds[0], -preds[1]])
