import numpy as np
import pytest

from stardist_hier.metrics import (collapse_predictions, drop_ignored, evaluate_cut, evaluate_levels, level_cuts,
                                   pq_conic)
from stardist_hier.tree import ClassTree, LabelSet, default_taxonomy

from .test_conventions import EPS, block

TREE = ClassTree.from_dict({"nucleus": {"A": ["a1", "a2", "a3"], "B": ["b1"]}})  # leaves a1 a2 a3 b1 -> 1..4
COARSE = LabelSet(TREE, {"A": "A", "B": "B", "unsure": "ignore"}, name="coarse")


def onehot(leaf, tree=TREE):
    v = np.zeros(tree.n_classes + 1)
    v[tree.leaf_index(leaf)] = 1
    return v


def test_summed_probabilities_decide_not_the_argmax_leaf():
    p = np.array([0.0, 0.2, 0.2, 0.2, 0.4])   # argmax leaf b1 -> "B"; summed: A 0.6 > B 0.4
    assert collapse_predictions({5: p}, COARSE) == {5: "A"}
    assert TREE.leaves[int(np.argmax(p)) - 1] == "b1"
    gt = block((4, 4), (1, 0, 4, 0, 4))
    r = evaluate_cut(gt, gt.copy(), {1: "A"}, {1: p}, label_set=COARSE)
    assert (r.per_class["A"].tp, r.per_class["B"].fp) == (1, 0)


def test_collapse_array_input_and_strings():
    probs = np.stack([onehot("a2"), onehot("b1")])
    assert collapse_predictions(probs, COARSE, ids=[3, 8]) == {3: "A", 8: "B"}
    assert collapse_predictions({1: "a3", 2: "B", 3: None}, COARSE) == {1: "A", 2: "B", 3: None}
    with pytest.raises(ValueError, match="predicted label 'nucleus' spans several labels of 'coarse'"):
        collapse_predictions({1: "nucleus"}, COARSE)
    assert collapse_predictions({1: "nucleus"}, COARSE, too_coarse="none") == {1: None}
    with pytest.raises(ValueError, match="pass the instance ids of its rows as ids="):
        collapse_predictions(probs, COARSE)
    with pytest.raises(ValueError, match=r"pred_probs: instance 1: 3 leaf probabilities, expected n_classes \+ 1 = 5"):
        collapse_predictions({1: [0.1, 0.2, 0.7]}, COARSE)


def per_label_data():
    """Two images, coarse ground truth; predictions as leaf probabilities."""
    g1 = block((8, 10), (1, 0, 4, 0, 4), (2, 0, 4, 6, 10), (3, 5, 8, 0, 3))
    p1 = block((8, 10), (11, 0, 4, 0, 4), (12, 0, 4, 7, 10), (13, 5, 8, 6, 9))
    g2 = block((8, 10), (4, 0, 4, 0, 4))
    p2 = block((8, 10), (21, 0, 4, 0, 4))
    gcl = [{1: "A", 2: "B", 3: "A"}, {4: "B"}]
    pcl = [{11: onehot("a1"), 12: onehot("b1"), 13: onehot("a3")}, {21: onehot("a2")}]
    return [g1, g2], [p1, p2], gcl, pcl


def test_per_label_pq_pooled_like_conic():
    gts, preds, gcl, pcl = per_label_data()
    r = evaluate_cut(gts, preds, gcl, pcl, label_set=COARSE)
    a, b = r.per_class["A"], r.per_class["B"]
    # A: image 1 TP (IoU 1) + FN (gt 3) + FP (pred 13); image 2 FP (pred 21 says A on a B nucleus)
    assert (a.tp, a.fp, a.fn, a.sum_iou) == (1, 2, 1, 1.0)
    assert a.pq == pytest.approx(1 / (2.5 + EPS) * 1 / (1 + EPS), rel=1e-12)
    # B: image 1 TP with IoU 12/16; image 2 FN
    assert (b.tp, b.fp, b.fn) == (1, 0, 1) and b.sum_iou == pytest.approx(0.75)
    assert r.mpq == pytest.approx((a.pq + b.pq) / 2)
    assert r.label_set == "coarse" and r.skipped == ()
    # same as CoNIC's mPQ+ on the collapsed labels
    labels = [collapse_predictions(c, COARSE) for c in pcl]
    ref = pq_conic(gts, preds, gcl, labels, classes=["A", "B"])
    assert r.mpq == pytest.approx(ref.mpq, rel=1e-12)
    assert r.binary.pq == pytest.approx(ref.pq, rel=1e-12)


def test_other_conventions_at_a_cut():
    gts, preds, gcl, pcl = per_label_data()
    pann = evaluate_cut(gts, preds, gcl, pcl, label_set=COARSE, convention="pannuke")
    # A only has GT in image 1: PQ = (1 / 2) * 1 there; B: image 1 (1 / 1) * 0.75, image 2 0
    assert pann.per_class["A"].pq == pytest.approx(0.5)
    assert pann.per_class["B"].pq == pytest.approx(0.75 / 2)
    sd = evaluate_cut(gts, preds, gcl, pcl, label_set=COARSE, convention="stardist")
    assert sd.per_class["A"].pq == pytest.approx(1 / 2.5)
    assert sd.per_class["B"].pq == pytest.approx(0.75 / 1.5)   # pooled: 1 TP, 1 FN


def test_ignore_regions_are_dropped_before_matching():
    gt = block((4, 12), (1, 0, 4, 0, 4), (2, 0, 4, 6, 10))
    pred = block((4, 12), (5, 0, 4, 0, 4), (6, 0, 4, 7, 11), (7, 0, 4, 4, 6))
    # pred 6: 12 of 16 px inside ignored gt 2 -> dropped; pred 7 does not touch it -> false positive
    r = evaluate_cut(gt, pred, {1: "A", 2: "unsure"}, {5: onehot("a1"), 6: onehot("a1"), 7: onehot("a1")},
                     label_set=COARSE)
    assert (r.per_class["A"].tp, r.per_class["A"].fp, r.per_class["A"].fn) == (1, 1, 0)
    assert (r.binary.tp, r.binary.fp, r.binary.fn) == (1, 1, 0)
    g2, p2, dropped = drop_ignored(gt, pred, [2])
    assert dropped.tolist() == [6] and set(np.unique(g2)) == {0, 1} and set(np.unique(p2)) == {0, 5, 7}
    half = block((4, 12), (6, 0, 4, 8, 12))  # 8 of 16 px inside: exactly half is kept
    assert drop_ignored(gt, half, [2])[2].tolist() == []


def test_level_cuts_of_the_default_tree():
    cuts = level_cuts(default_taxonomy().tree)
    assert [c.labels for c in cuts[:2]] == [("nucleus",), ("epithelial", "inflammatory", "connective", "other")]
    assert len(cuts[2].labels) == 13
    uneven = ClassTree.from_dict({"n": {"x": None, "y": ["y1", "y2"]}})
    assert [c.labels for c in level_cuts(uneven)] == [("n",), ("x", "y"), ("x", "y1", "y2")]


def test_every_level_in_one_call():
    gts, preds, gcl, pcl = per_label_data()
    levels = evaluate_levels(gts, preds, gcl, pcl, label_set=COARSE)
    assert list(levels) == [0, 1, 2]
    root, mid, leaf = levels[0], levels[1], levels[2]
    assert root.label_set == "depth 0" and list(root.per_class) == ["nucleus"]
    nucleus = root.per_class["nucleus"]
    # root = binary PQ with the labels' pooling: 2 + 1 TP (IoU 1, 0.75, 1), 1 FP, 1 FN
    assert (nucleus.tp, nucleus.fp, nucleus.fn) == (3, 1, 1) and nucleus.sum_iou == pytest.approx(2.75)
    assert mid.mpq == pytest.approx(evaluate_cut(gts, preds, gcl, pcl, label_set=COARSE).mpq)
    # ground truth "A" covers a1..a3 only as a whole: those leaves cannot be scored; b1 can
    assert leaf.skipped == ("a1", "a2", "a3") and list(leaf.per_class) == ["b1"]
    assert leaf.per_class["b1"] == mid.per_class["B"]
    assert all(r.depth == d for d, r in levels.items())


def test_predicted_labels_instead_of_probabilities():
    gts, preds, gcl, _ = per_label_data()
    pcl = [{11: "A", 12: "b1", 13: "a3"}, {21: "A"}]      # labels of the set, tree nodes
    levels = evaluate_levels(gts, preds, gcl, pcl, label_set=COARSE)
    probs = evaluate_levels(gts, preds, gcl, per_label_data()[3], label_set=COARSE)
    assert levels[1].per_class == probs[1].per_class
    assert levels[2].per_class["b1"] == probs[2].per_class["b1"]  # "A" is too coarse for a1..a3: unscored


def test_bad_cut_inputs():
    gts, preds, gcl, pcl = per_label_data()
    with pytest.raises(ValueError, match=r"gt_classes\[1\]: no label for ground-truth instance\(s\) \[4\]"):
        evaluate_cut(gts, preds, [gcl[0], {}], pcl, label_set=COARSE)
    with pytest.raises(ValueError, match=r"pred_probs\[0\]: no class probabilities for predicted instance\(s\) \[13\]"):
        evaluate_cut(gts, preds, gcl, [{11: onehot("a1"), 12: onehot("a1")}, pcl[1]], label_set=COARSE)
    with pytest.raises(ValueError, match=r"gt_classes\[0\], instance 1: label set 'coarse': unknown label 'C'"):
        evaluate_cut(gts, preds, [{1: "C", 2: "B", 3: "A"}, gcl[1]], pcl, label_set=COARSE)
    with pytest.raises(ValueError, match=r"pred_probs\[1\] has shape \(2, 5\), expected \(1, n_classes \+ 1\)"):
        evaluate_cut(gts, preds, gcl, [pcl[0], np.ones((2, 5))], label_set=COARSE)
    with pytest.raises(ValueError, match="unknown PQ convention 'coco'"):
        evaluate_cut(gts, preds, gcl, pcl, label_set=COARSE, convention="coco")


def test_huge_non_contiguous_ids_give_the_same_results():
    gts, preds, gcl, pcl = per_label_data()
    big = 2**40
    gts_b = [np.where(g > 0, g.astype(np.int64) * big, 0) for g in gts]
    preds_b = [np.where(p > 0, p.astype(np.int64) + big, 0) for p in preds]
    gcl_b = [{k * big: v for k, v in c.items()} for c in gcl]
    pcl_b = [{k + big: v for k, v in c.items()} for c in pcl]
    small = evaluate_levels(gts, preds, gcl, pcl, label_set=COARSE)
    large = evaluate_levels(gts_b, preds_b, gcl_b, pcl_b, label_set=COARSE)
    assert all(small[d].per_class == large[d].per_class for d in small)
    ignored = evaluate_cut(gts_b, preds_b, [{big: "A", 2 * big: "unsure", 3 * big: "A"}, gcl_b[1]], pcl_b,
                           label_set=COARSE)
    assert ignored.per_class["B"].n_pred == 0       # prediction 12 + big lay inside the ignored nucleus
    assert pq_conic(gts_b, preds_b, gcl_b, [collapse_predictions(c, COARSE) for c in pcl_b]).mpq == \
        pytest.approx(small[1].mpq)
