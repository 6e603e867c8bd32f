"""Panoptic quality of one image: the result record and strict IoU matching.

PQ = DQ * SQ with DQ = TP / (TP + FP/2 + FN/2) and SQ = (sum of IoU over TP) / TP
(Kirillov et al., CVPR 2019). The dataset-level conventions built on this live in
:mod:`stardist_hier.metrics.conventions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .labels import check_label_image, check_same_shape
from .overlap import Overlap, label_overlap

__all__ = ["PQResult", "panoptic_quality"]


@dataclass(frozen=True)
class PQResult:
    """Panoptic, detection and segmentation quality with the counts behind them.

    Attributes
    ----------
    pq, dq, sq : float
        Panoptic, detection and segmentation quality. For a dataset these are the
        convention's aggregate (which may be a mean over images, see
        :mod:`~stardist_hier.metrics.conventions`), not necessarily a function of the counts.
    tp, fp, fn : int
        Matched pairs, unmatched predictions, unmatched ground-truth instances
        (summed over images for a dataset).
    sum_iou : float
        Sum of IoU over the matched pairs.
    """

    pq: float
    dq: float
    sq: float
    tp: int
    fp: int
    fn: int
    sum_iou: float

    @property
    def n_gt(self) -> int:
        """Number of ground-truth instances (TP + FN)."""
        return self.tp + self.fn

    @property
    def n_pred(self) -> int:
        """Number of predicted instances (TP + FP)."""
        return self.tp + self.fp

    @classmethod
    def from_counts(cls, tp, fp, fn, sum_iou, *, eps: float = 0.0) -> "PQResult":
        """PQ, DQ and SQ from counts.

        ``DQ = TP / (TP + FP/2 + FN/2 + eps)``, ``SQ = sum_iou / (TP + eps)``,
        ``PQ = DQ * SQ`` (as CoNIC computes them with ``eps = 1e-6``). With
        ``eps = 0``, SQ is 0 when TP is 0, and all three are NaN when there is no
        instance at all (0 / 0).
        """
        tp, fp, fn = int(tp), int(fp), int(fn)
        sum_iou = float(sum_iou)
        if tp + fp + fn == 0 and eps == 0:
            return cls(math.nan, math.nan, math.nan, 0, 0, 0, 0.0)
        dq = tp / (tp + 0.5 * fp + 0.5 * fn + eps)
        sq = sum_iou / (tp + eps) if tp + eps > 0 else 0.0
        return cls(dq * sq, dq, sq, tp, fp, fn, sum_iou)


def panoptic_quality(gt, pred, *, threshold: float = 0.5, eps: float = 0.0) -> PQResult:
    """Panoptic quality of one predicted label image against its ground truth.

    Instances match when their IoU is strictly greater than ``threshold`` (the
    HoVer-Net / CoNIC / PanNuke rule). For ``threshold >= 0.5`` such pairs are unique
    and no assignment is solved; below 0.5 the pairing maximises the summed IoU
    (Hungarian), as in HoVer-Net's ``get_fast_pq``.

    Parameters
    ----------
    gt, pred : array_like of int
        Label images of the same shape (0 = background; any non-negative ids).
    threshold : float, optional
        IoU that a match must exceed.
    eps : float, optional
        Added to the DQ and SQ denominators (CoNIC uses ``1e-6``).

    Returns
    -------
    PQResult
        NaN scores when both images are empty and ``eps`` is 0.

    Notes
    -----
    The result is symmetric: swapping ``gt`` and ``pred`` swaps FP and FN and leaves
    TP, the summed IoU, DQ, SQ and PQ unchanged.
    """
    gt = check_label_image(gt, name="gt")
    pred = check_label_image(pred, name="pred")
    check_same_shape(gt, pred)
    counts = strict_counts(label_overlap(gt, pred, check=False), threshold=threshold)
    return PQResult.from_counts(*counts[1], eps=eps)


def strict_counts(ov: Overlap, *, threshold: float = 0.5, gt_class=None, pred_class=None,
                  n_classes: int = 1) -> np.ndarray:
    """Per-class ``[TP, FP, FN, sum IoU]`` of one image under the strict IoU rule.

    Parameters
    ----------
    ov : Overlap
    threshold : float
        Matches need IoU > ``threshold``.
    gt_class, pred_class : ndarray of int, optional
        Class code (1..n_classes, 0 = no class) of every instance, aligned with
        ``ov.gt_ids`` / ``ov.pred_ids``. Only instances of the same class can match.
        Default: every instance has class 1 (binary PQ).
    n_classes : int

    Returns
    -------
    ndarray, shape (n_classes + 1, 4)
        Row ``c`` holds the counts of class ``c``; row 0 is all zeros.
    """
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    gc = np.ones(ov.n_gt, np.intp) if gt_class is None else np.asarray(gt_class, np.intp)
    pc = np.ones(ov.n_pred, np.intp) if pred_class is None else np.asarray(pred_class, np.intp)
    gi, pj, iou = ov.gt_index, ov.pred_index, ov.iou
    same = (gc[gi] == pc[pj]) & (gc[gi] > 0)
    gi, pj, iou = gi[same], pj[same], iou[same]
    if threshold >= 0.5:
        keep = iou > threshold  # at most one partner each: no assignment to solve
        gi, iou = gi[keep], iou[keep]
    elif len(gi):
        from scipy.optimize import linear_sum_assignment

        m = np.zeros((ov.n_gt, ov.n_pred))
        m[gi, pj] = iou
        r, c = linear_sum_assignment(-m)
        keep = m[r, c] > threshold
        gi, iou = r[keep], m[r, c][keep]
    k = n_classes + 1
    tp = np.bincount(gc[gi], minlength=k)
    out = np.stack([tp,
                    np.bincount(pc, minlength=k) - tp,
                    np.bincount(gc, minlength=k) - tp,
                    np.bincount(gc[gi], weights=iou, minlength=k)], axis=1).astype(np.float64)
    out[0] = 0
    return out
