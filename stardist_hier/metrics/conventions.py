"""Dataset-level panoptic quality in the published conventions.

=============  ===============  =========  ================================================
convention     match            epsilon    aggregation
=============  ===============  =========  ================================================
``hovernet``   IoU > 0.5        none       PQ, DQ, SQ per image, then mean over images
``conic``      IoU > 0.5        1e-6       per class: counts summed over images (mPQ+);
                                           binary PQ per image, then mean
``pannuke``    IoU > 0.5        none       per image and class, NaN without ground truth;
                                           nanmean over classes, images of a tissue, tissues
``stardist``   IoU >= thr,      safe 0/0   pooled counts (``by_image=False``) or mean of
               Hungarian                   per-image values; class-agnostic
=============  ===============  =========  ================================================

See ``shared/metrics.md`` for the reference implementations each one follows.
All functions take ground truth and prediction as one label image or a sequence of
them (see :func:`~stardist_hier.metrics.labels.as_image_list`). Classes, where a
convention uses them, are given per image as a pixel class map or as
``{instance id: class}`` (see :mod:`~stardist_hier.metrics.classes`).
"""

from __future__ import annotations

import numpy as np

from .aggregation import PQReport, build_report
from .classes import class_map, class_values, sorted_classes
from .labels import as_annotation_list, as_image_list, check_pairs
from .overlap import label_overlap
from .pq import strict_counts

__all__ = ["CONVENTIONS", "PQReport", "evaluate_pq", "pq_conic", "pq_hovernet", "pq_pannuke",
           "pq_stardist"]

#: Names of the supported conventions.
CONVENTIONS = ("hovernet", "conic", "pannuke", "stardist")


# ----------------------------------------------------------------- public functions
def pq_hovernet(gt, pred, *, threshold: float = 0.5, both_empty: str = "raise") -> PQReport:
    """HoVer-Net's PQ (``compute_stats.py``, ``get_fast_pq``): per image, mean over images.

    Pairs match when IoU > ``threshold`` (unique pairs; a Hungarian assignment only
    for thresholds below 0.5). DQ = TP / (TP + FP/2 + FN/2) with no epsilon; PQ, DQ
    and SQ are each averaged over images. An image with an empty ground truth and a
    non-empty prediction scores 0.

    Parameters
    ----------
    gt, pred : label image or sequence of label images
    threshold : float, optional
    both_empty : {"raise", "skip"}, optional
        An image where ground truth and prediction are both empty makes HoVer-Net
        divide 0 by 0; by default that is a ``ValueError``, ``"skip"`` leaves such
        images out of the mean (their ``per_image`` entry is NaN).

    Returns
    -------
    PQReport

    Notes
    -----
    HoVer-Net adds 1e-6 to SQ's denominator; this does not (SQ = sum IoU / TP, 0
    when TP = 0), which changes SQ and PQ by less than 1e-6 relative.
    """
    if both_empty not in ("raise", "skip"):
        raise ValueError(f"both_empty must be 'raise' or 'skip', got {both_empty!r}")
    gt, pred = _pairs(gt, pred)
    counts = _binary_counts(gt, pred, threshold=threshold)
    if both_empty == "raise":
        empty = np.flatnonzero(counts[:, :3].sum(axis=1) == 0)
        if len(empty):
            raise ValueError(
                f"image {int(empty[0])}: ground truth and prediction are both empty, where HoVer-Net's PQ "
                "divides 0 by 0; pass both_empty='skip' to leave such images out of the mean")
    return build_report("hovernet", counts)


def pq_conic(gt, pred, gt_classes=None, pred_classes=None, *, classes=None,
             threshold: float = 0.5) -> PQReport:
    """CoNIC challenge PQ and mPQ+ (``compute_stats.py`` of the CoNIC challenge).

    Binary PQ is computed per image with 1e-6 added to the DQ and SQ denominators
    and averaged over images. For mPQ+, every class ``c`` cuts the instances by the
    *pixel* class map (``inst * (cls == c)``, so one instance whose pixels carry two
    classes becomes two pieces); TP, FP, FN and the summed IoU of each class are
    summed over all images, PQ_c is computed from the sums (with the 1e-6), and
    mPQ+ is the mean of PQ_c over classes.

    Parameters
    ----------
    gt, pred : label image or sequence of label images
    gt_classes, pred_classes : class annotation or sequence of them, optional
        Per image, a pixel class map (0 = no class) or ``{instance id: class}``.
        Without them only binary PQ is computed.
    classes : sequence, optional
        Classes to score, in order. Default: every class value found in ground truth
        or prediction. CoNIC always scores its 6 classes; a class absent from both
        has PQ_c = 0 there, so pass ``classes`` to reproduce that.
    threshold : float, optional
        IoU that a match must exceed.

    Returns
    -------
    PQReport
        ``pq`` is the binary PQ, ``mpq`` the mPQ+, ``per_class`` the PQ_c.
    """
    gt, pred = _pairs(gt, pred)
    bcounts = _binary_counts(gt, pred, threshold=threshold)
    ccounts, classes = _pixel_class_counts(gt, pred, gt_classes, pred_classes, classes, threshold)
    return build_report("conic", bcounts, ccounts, classes)


def pq_pannuke(gt, pred, gt_classes=None, pred_classes=None, *, classes=None, tissues=None,
               threshold: float = 0.5) -> PQReport:
    """PanNuke's mPQ and bPQ (``compute_stats.py`` of the PanNuke evaluation).

    For every image and class, the instances of that class (pixel class map cut, as
    PanNuke's per-class instance channels) are matched at IoU > 0.5 with no epsilon;
    PQ is NaN where the image has no ground truth of that class, so that class's
    false positives in that image are never counted. An image's mPQ is the nanmean
    over classes; tissue mPQ the nanmean over the tissue's images; the final mPQ the
    nanmean over tissues. bPQ likewise, from binary PQ (NaN for an empty ground truth).

    Parameters
    ----------
    gt, pred : label image or sequence of label images
    gt_classes, pred_classes : class annotation or sequence of them, optional
        As in :func:`pq_conic`.
    classes : sequence, optional
        Classes to score. Default: every class value found.
    tissues : sequence of str, optional
        Tissue of every image. Default: all images in one tissue.
    threshold : float, optional

    Returns
    -------
    PQReport
        ``pq`` is bPQ, ``mpq`` is mPQ, ``per_class[c].pq`` the nanmean over images
        of class ``c``'s PQ (PanNuke's per-class numbers), ``per_group`` the tissues.
    """
    gt, pred = _pairs(gt, pred)
    if tissues is not None:
        tissues = [str(t) for t in tissues]
        if len(tissues) != len(gt):
            raise ValueError(f"tissues has {len(tissues)} entries for {len(gt)} images")
    bcounts = _binary_counts(gt, pred, threshold=threshold)
    ccounts, classes = _pixel_class_counts(gt, pred, gt_classes, pred_classes, classes, threshold)
    return build_report("pannuke", bcounts, ccounts, classes, tissues=tissues)


def pq_stardist(gt, pred, *, threshold: float = 0.5, by_image: bool = False) -> PQReport:
    """StarDist's PQ (:func:`stardist.matching.matching_dataset`), computed by StarDist.

    Pairs match when IoU >= ``threshold``, assigned to maximise the number of matches
    (ties broken by IoU). Each image is scored by :func:`stardist.matching.matching`.

    Parameters
    ----------
    gt, pred : label image or sequence of label images
    threshold : float, optional
    by_image : bool, optional
        False: PQ from TP, FP, FN and summed IoU pooled over the dataset. True: mean of
        the per-image PQ, DQ (StarDist's ``f1``) and SQ (``mean_matched_score``).
        Divisions by zero give 0 (an image with no instances scores 0).

    Returns
    -------
    PQReport

    Notes
    -----
    StarDist computes IoU in float32, so an IoU just below ``threshold`` in exact
    arithmetic can round up to it and match; sums of IoU carry float32 rounding.
    """
    gt, pred = _pairs(gt, pred)
    counts = np.stack([stardist_counts(g, p, threshold=threshold)[1] for g, p in zip(gt, pred)]) \
        if gt else np.zeros((0, 4))
    return build_report("stardist", counts, by_image=by_image)


def evaluate_pq(gt, pred, gt_classes=None, pred_classes=None, *, convention: str = "conic",
                **options) -> PQReport:
    """PQ under the named ``convention`` (one of :data:`CONVENTIONS`).

    ``options`` go to :func:`pq_hovernet`, :func:`pq_conic`, :func:`pq_pannuke` or
    :func:`pq_stardist`. Class annotations are only accepted by ``conic`` and ``pannuke``.
    """
    check_convention(convention)
    if convention in ("hovernet", "stardist"):
        if gt_classes is not None or pred_classes is not None:
            raise ValueError(f"convention {convention!r} is class-agnostic: it takes no class annotations")
        fn = pq_hovernet if convention == "hovernet" else pq_stardist
        return fn(gt, pred, **options)
    fn = pq_conic if convention == "conic" else pq_pannuke
    return fn(gt, pred, gt_classes, pred_classes, **options)


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown PQ convention {convention!r}; known: {', '.join(CONVENTIONS)}")
    return convention


# --------------------------------------------------------------------------- counts
def _pairs(gt, pred):
    gt = as_image_list(gt, name="gt")
    pred = as_image_list(pred, name="pred")
    check_pairs(gt, pred)
    return gt, pred


def _binary_counts(gt: list, pred: list, *, threshold: float) -> np.ndarray:
    """``(n_images, 4)`` strict-match counts ``[TP, FP, FN, sum IoU]``."""
    rows = [strict_counts(label_overlap(g, p, check=False), threshold=threshold)[1]
            for g, p in zip(gt, pred)]
    return np.stack(rows) if rows else np.zeros((0, 4))


def _pixel_class_counts(gt, pred, gt_classes, pred_classes, classes, threshold):
    """Strict per-class counts ``(n_images, K + 1, 4)`` from pixel-cut pieces, and the classes."""
    if gt_classes is None and pred_classes is None:
        if classes is not None:
            raise ValueError("classes given without gt_classes and pred_classes")
        return None, ()
    if gt_classes is None or pred_classes is None:
        raise ValueError("pass both gt_classes and pred_classes, or neither")
    gcl = as_annotation_list(gt_classes, len(gt), name="gt_classes")
    pcl = as_annotation_list(pred_classes, len(pred), name="pred_classes")
    if classes is None:
        found = set()
        for i, (a, b) in enumerate(zip(gcl, pcl)):
            found |= class_values(a, name=f"gt_classes[{i}]") | class_values(b, name=f"pred_classes[{i}]")
        classes = sorted_classes(found)
    classes = tuple(classes)
    codes = {c: k for k, c in enumerate(classes, start=1)}
    base = len(classes) + 1
    out = np.zeros((len(gt), base, 4))
    for i, (g, p, a, b) in enumerate(zip(gt, pred, gcl, pcl)):
        gkey = _pieces(g, class_map(g, a, codes=codes, name=f"gt_classes[{i}]"), base)
        pkey = _pieces(p, class_map(p, b, codes=codes, name=f"pred_classes[{i}]"), base)
        ov = label_overlap(gkey, pkey, check=False)
        out[i] = strict_counts(ov, threshold=threshold, gt_class=ov.gt_ids % base,
                               pred_class=ov.pred_ids % base, n_classes=len(classes))
    return out, classes


def _pieces(inst: np.ndarray, cmap: np.ndarray, base: int) -> np.ndarray:
    """One id per (instance, class) piece: ``inst * base + class``, 0 where no class."""
    return np.where(cmap > 0, inst.astype(np.int64) * base + cmap, 0)


def stardist_counts(gt, pred, *, threshold: float, gt_class=None, pred_class=None,
                    n_classes: int = 1) -> np.ndarray:
    """Per-class ``[TP, FP, FN, sum IoU]`` of one image by :func:`stardist.matching.matching`.

    ``gt_class`` / ``pred_class`` are pixel maps of class codes (default: binary);
    each class is matched on its own instances. Returns ``(n_classes + 1, 4)``.
    """
    from stardist.matching import matching

    # one dtype for StarDist's numba-compiled overlap: it compiles once per dtype pair
    gt, pred = _int32(gt), _int32(pred)
    out = np.zeros((n_classes + 1, 4))
    for c in range(1, n_classes + 1):
        g = gt if gt_class is None else np.where(gt_class == c, gt, 0)
        p = pred if pred_class is None else np.where(pred_class == c, pred, 0)
        m = matching(g, p, thresh=threshold)
        out[c] = m.tp, m.fp, m.fn, m.mean_matched_score * m.tp
    return out


def _int32(y: np.ndarray) -> np.ndarray:
    if y.dtype == np.int32 or (y.size and int(y.max()) > np.iinfo(np.int32).max):
        return y
    return y.astype(np.int32)
