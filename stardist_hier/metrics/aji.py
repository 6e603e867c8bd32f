"""Aggregated Jaccard Index, AJI and AJI+ (HoVer-Net's ``get_fast_aji``, ``get_fast_aji_plus``)."""

from __future__ import annotations

import math

import numpy as np

from .labels import check_label_image, check_same_shape
from .overlap import label_overlap

__all__ = ["aji", "aji_plus"]


def aji(gt, pred) -> float:
    """Aggregated Jaccard Index of one image (Kumar et al. 2017, as HoVer-Net computes it).

    Every ground-truth instance is paired with the prediction of highest IoU (ties:
    the smallest id; a prediction may be used several times); pairs without overlap
    are dropped. AJI = sum of paired intersections / (sum of paired unions + areas of
    unpaired ground truth and of predictions paired with nothing).

    Parameters
    ----------
    gt, pred : array_like of int
        Label images of the same shape.

    Returns
    -------
    float
        NaN when both images are empty.
    """
    return _aji(gt, pred, unique=False)


def aji_plus(gt, pred) -> float:
    """AJI+ of one image (Graham et al. 2019): AJI with a unique pairing.

    Pairs come from a Hungarian assignment maximising the summed IoU (pairs without
    overlap dropped), so no prediction is counted twice. Other terms as in :func:`aji`.

    Returns
    -------
    float
        NaN when both images are empty.
    """
    return _aji(gt, pred, unique=True)


def _aji(gt, pred, *, unique: bool) -> float:
    gt = check_label_image(gt, name="gt")
    pred = check_label_image(pred, name="pred")
    check_same_shape(gt, pred)
    ov = label_overlap(gt, pred, check=False)
    inter = ov.dense(ov.intersection)
    union = ov.dense(ov.union)
    iou = inter / (union + 1e-6)  # HoVer-Net's pairing score
    if ov.n_gt and ov.n_pred:
        if unique:
            from scipy.optimize import linear_sum_assignment

            ti, pj = linear_sum_assignment(-iou)
        else:
            ti, pj = np.arange(ov.n_gt), np.argmax(iou, axis=1)
        ok = iou[ti, pj] > 0
        ti, pj = ti[ok], pj[ok]
    else:
        ti = pj = np.zeros(0, np.intp)
    total_inter = inter[ti, pj].sum()
    total_union = union[ti, pj].sum()
    gt_free = np.ones(ov.n_gt, bool)
    gt_free[ti] = False
    pred_free = np.ones(ov.n_pred, bool)
    pred_free[pj] = False
    total_union += ov.gt_area[gt_free].sum() + ov.pred_area[pred_free].sum()
    return float(total_inter / total_union) if total_union > 0 else math.nan
