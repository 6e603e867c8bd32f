"""Detection and per-type F1 from centroid matching (HoVer-Net's ``run_nuclei_type_stat``).

In every image, ground-truth and predicted centroids are paired by a Hungarian
assignment on Euclidean distance, and pairs farther apart than ``radius`` are
dropped; pairs are then pooled over images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .classes import instance_classes, sorted_classes
from .labels import as_annotation_list, as_image_list, check_label_image, check_pairs

__all__ = ["DetectionResult", "centroids", "detection_f1"]


@dataclass(frozen=True)
class DetectionResult:
    """Detection F1 and per-type F1.

    Attributes
    ----------
    f1, precision, recall : float
        Detection scores, ``F1_d = 2 TP / (2 TP + FP + FN)`` (NaN without any instance).
    tp, fp, fn : int
        Paired centroids, unpaired predictions, unpaired ground truth (all images).
    accuracy : float
        Fraction of paired nuclei whose predicted type equals the true type (NaN
        without classes or pairs).
    per_type : dict
        ``{class: F_c}``.
    per_type_counts : dict
        ``{class: {"tp", "tn", "fp", "fn", "fp_d", "fn_d"}}`` behind each ``F_c``.
    """

    f1: float
    precision: float
    recall: float
    tp: int
    fp: int
    fn: int
    accuracy: float = math.nan
    per_type: dict = field(default_factory=dict)
    per_type_counts: dict = field(default_factory=dict)


def centroids(labels) -> tuple:
    """Instance ids and centroids (mean pixel coordinates, ``(n, ndim)`` float64) of a label image."""
    from skimage.measure import regionprops_table
    from skimage.segmentation import relabel_sequential

    labels = check_label_image(labels)
    if labels.dtype.kind == "u" and labels.dtype.itemsize >= 8:
        labels = labels.astype(np.int64)
    # relabel to 1..n first: regionprops keeps one slot per id up to the largest, and ids may be
    # hashes (e.g. shifted by 40 bits); the centroid is the same for the renumbered instance
    seq, forward, _ = relabel_sequential(labels)
    ids = np.asarray(forward.in_values)
    ids = ids[ids != 0]  # 0 (background) is in the map when present
    if ids.size == 0:
        return ids, np.zeros((0, labels.ndim))
    table = regionprops_table(seq, properties=("label", "centroid"))
    order = np.argsort(table["label"])  # row k is new id k + 1, i.e. ids[k]
    cent = np.stack([np.asarray(table[f"centroid-{ax}"], np.float64)[order] for ax in range(labels.ndim)], axis=1)
    return ids, cent


def _pair(a: np.ndarray, b: np.ndarray, radius: float):
    """HoVer-Net's ``pair_coordinates``: Hungarian on all distances, then keep those <= radius."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    d = cdist(a, b)
    i, j = linear_sum_assignment(d)
    ok = d[i, j] <= radius
    return i[ok], j[ok]


def detection_f1(gt, pred, gt_classes=None, pred_classes=None, *, radius: float = 12.0,
                 classes=None) -> DetectionResult:
    """Detection F1 and, with classes, HoVer-Net's per-type F1.

    Parameters
    ----------
    gt, pred : label image or sequence of label images
    gt_classes, pred_classes : class annotation or sequence of them, optional
        Per image ``{instance id: class}`` or a pixel class map (reduced to one class
        per instance by majority vote).
    radius : float, optional
        Largest centroid distance of a pair, in pixels (12 in HoVer-Net, CellViT, TIAToolbox).
    classes : sequence, optional
        Types to score (default: the types present in the ground truth).

    Returns
    -------
    DetectionResult

    Notes
    -----
    Per type ``c``, with paired nuclei restricted to those where ground truth or
    prediction is ``c`` (as in HoVer-Net's reference code):
    ``F_c = 2(TP_c + TN_c) / (2(TP_c + TN_c) + 2 FP_c + 2 FN_c + FP_d,c + FN_d,c)``,
    where ``FP_d,c`` / ``FN_d,c`` are unpaired predictions / ground truth of type ``c``.
    The restriction makes ``TN_c`` (neither is ``c``) always 0, as in the reference.
    """
    gt = as_image_list(gt, name="gt")
    pred = as_image_list(pred, name="pred")
    check_pairs(gt, pred)
    with_types = gt_classes is not None or pred_classes is not None
    if with_types and (gt_classes is None or pred_classes is None):
        raise ValueError("pass both gt_classes and pred_classes, or neither")
    gcl = as_annotation_list(gt_classes, len(gt), name="gt_classes") if with_types else [None] * len(gt)
    pcl = as_annotation_list(pred_classes, len(gt), name="pred_classes") if with_types else [None] * len(gt)
    tp = fp = fn = 0
    paired_t, paired_p, unpaired_t, unpaired_p = [], [], [], []  # types
    for i, (g, p, a, b) in enumerate(zip(gt, pred, gcl, pcl)):
        gids, gc = centroids(g)
        pids, pc = centroids(p)
        gi, pj = _pair(gc, pc, radius)
        tp += len(gi)
        fp += len(pids) - len(pj)
        fn += len(gids) - len(gi)
        if with_types:
            ga = instance_classes(g, a, name=f"gt_classes[{i}]")
            pa = instance_classes(p, b, name=f"pred_classes[{i}]")
            gt_t = np.array([ga[int(k)] for k in gids] + [None], object)[:-1]
            pr_t = np.array([pa[int(k)] for k in pids] + [None], object)[:-1]
            paired_t.append(gt_t[gi])
            paired_p.append(pr_t[pj])
            unpaired_t.append(np.delete(gt_t, gi))
            unpaired_p.append(np.delete(pr_t, pj))
    denom = 2 * tp + fp + fn
    f1 = 2 * tp / denom if denom else math.nan
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    if not with_types:
        return DetectionResult(f1, precision, recall, tp, fp, fn)
    pt, pp, ut, up = (np.concatenate(x) if x else np.zeros(0, object)
                      for x in (paired_t, paired_p, unpaired_t, unpaired_p))
    if classes is None:
        classes = sorted_classes({t for t in np.concatenate([pt, ut]) if t is not None})
    accuracy = float(np.mean(pt == pp)) if len(pt) else math.nan
    per_type, per_counts = {}, {}
    for c in classes:
        is_t, is_p = pt == c, pp == c
        sel = is_t | is_p  # pairs involving c, as in HoVer-Net
        n = dict(tp=int((is_t & is_p).sum()), tn=int((sel & ~is_t & ~is_p).sum()),
                 fp=int((~is_t & is_p).sum()), fn=int((is_t & ~is_p).sum()),
                 fp_d=int((up == c).sum()), fn_d=int((ut == c).sum()))
        num = 2 * (n["tp"] + n["tn"])
        den = num + 2 * n["fp"] + 2 * n["fn"] + n["fp_d"] + n["fn_d"]
        per_type[c] = num / den if den else math.nan
        per_counts[c] = n
    return DetectionResult(f1, precision, recall, tp, fp, fn, accuracy, per_type, per_counts)
