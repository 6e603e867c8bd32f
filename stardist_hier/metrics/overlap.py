"""Pixel overlap of two label images from one label-pair histogram.

Both images are relabelled to ``0..n`` with a lookup table, the pair of indices is
combined into one integer per pixel, and :func:`numpy.bincount` counts every
(ground truth, prediction) pair at once. Only overlapping pairs are kept, so the
result stays small however many instances the images hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .labels import check_label_image, check_same_shape

__all__ = ["Overlap", "index_instances", "label_overlap"]

# dense tables (lookup of ids, pair histogram) are used up to this many entries
# beyond the image size; larger ones fall back to sorting (np.unique)
_DENSE_MIN = 1 << 20


@dataclass(frozen=True)
class Overlap:
    """Instances of two label images and the pixel counts of their overlapping pairs.

    Attributes
    ----------
    gt_ids, pred_ids : ndarray of int, shapes (n_gt,) and (n_pred,)
        Sorted instance ids (background 0 excluded).
    gt_area, pred_area : ndarray of int64
        Pixel count of every instance, aligned with the ids.
    gt_index, pred_index : ndarray of intp, shape (k,)
        Positions (into the id arrays) of the ``k`` overlapping pairs.
    intersection : ndarray of int64, shape (k,)
        Pixel count of each overlapping pair.
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    gt_area: np.ndarray
    pred_area: np.ndarray
    gt_index: np.ndarray
    pred_index: np.ndarray
    intersection: np.ndarray

    @property
    def n_gt(self) -> int:
        return len(self.gt_ids)

    @property
    def n_pred(self) -> int:
        return len(self.pred_ids)

    @property
    def union(self) -> np.ndarray:
        """Pixel count of the union of each overlapping pair."""
        return self.gt_area[self.gt_index] + self.pred_area[self.pred_index] - self.intersection

    @property
    def iou(self) -> np.ndarray:
        """Intersection over union of each overlapping pair (float64)."""
        return self.intersection / self.union

    def dense(self, values=None) -> np.ndarray:
        """``(n_gt, n_pred)`` matrix of ``values`` (default: IoU) with zeros for disjoint pairs."""
        m = np.zeros((self.n_gt, self.n_pred), np.float64)
        m[self.gt_index, self.pred_index] = self.iou if values is None else values
        return m


def label_overlap(gt, pred, *, check: bool = True) -> Overlap:
    """Overlap of every ground-truth instance with every predicted instance.

    Parameters
    ----------
    gt, pred : array_like of int
        Label images of the same shape (0 = background; ids need not be contiguous).
    check : bool, optional
        Validate the inputs (integer values, non-negative, same shape).

    Returns
    -------
    Overlap
    """
    if check:
        gt = check_label_image(gt, name="gt")
        pred = check_label_image(pred, name="pred")
        check_same_shape(gt, pred)
    gidx, gids, garea = index_instances(gt)
    pidx, pids, parea = index_instances(pred)
    ng, np_ = len(gids), len(pids)
    stride = np_ + 1
    if ng == 0 or np_ == 0:
        empty = np.zeros(0, np.intp)
        return Overlap(gids, pids, garea, parea, empty, empty, np.zeros(0, np.int64))
    code = gidx * stride + pidx
    n_codes = (ng + 1) * stride
    if n_codes <= max(_DENSE_MIN, code.size):
        hist = np.bincount(code, minlength=n_codes).reshape(ng + 1, stride)[1:, 1:]
        gi, pj = np.nonzero(hist)
        inter = hist[gi, pj]
    else:
        codes, counts = np.unique(code, return_counts=True)
        gi, pj = np.divmod(codes, stride)
        keep = (gi > 0) & (pj > 0)
        gi, pj, inter = gi[keep] - 1, pj[keep] - 1, counts[keep]
    return Overlap(gids, pids, garea, parea, gi.astype(np.intp), pj.astype(np.intp),
                   inter.astype(np.int64))


def index_instances(x: np.ndarray):
    """Number the instances of a label image ``1..n`` in id order.

    Parameters
    ----------
    x : ndarray of non-negative int

    Returns
    -------
    index : ndarray of intp, shape (x.size,)
        Flat image of instance numbers (0 = background, ``k`` = ``ids[k - 1]``).
    ids : ndarray, shape (n,)
        Sorted instance ids.
    areas : ndarray of int64, shape (n,)
        Pixel count of each instance.

    Notes
    -----
    Ids up to a few times the image size are looked up in a table built with
    :func:`numpy.bincount`; larger ids (e.g. hashes) fall back to sorting.
    """
    flat = x.ravel()
    if flat.dtype.kind == "u" and flat.dtype.itemsize >= 8:
        flat = flat.astype(np.int64)
    top = int(flat.max()) if flat.size else 0
    if top <= max(_DENSE_MIN, 4 * flat.size):
        counts = np.bincount(flat, minlength=1)
        ids = np.flatnonzero(counts[1:]) + 1
        lut = np.zeros(top + 1, np.intp)
        lut[ids] = np.arange(1, len(ids) + 1)
        return lut[flat], ids, counts[ids].astype(np.int64)
    uniq, inv, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if uniq[0] == 0:
        return inv.astype(np.intp), uniq[1:], counts[1:].astype(np.int64)
    return inv.astype(np.intp) + 1, uniq, counts.astype(np.int64)
