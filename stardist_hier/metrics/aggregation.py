"""From per-image counts to a dataset's PQ: the report record and each convention's averaging.

Every convention first counts ``[TP, FP, FN, sum IoU]`` per image (and per class);
only the way these counts become PQ differs. See
:mod:`~stardist_hier.metrics.conventions` for the table of rules.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .pq import PQResult

__all__ = ["PQReport", "build_report"]

#: Epsilon CoNIC adds to the DQ and SQ denominators.
CONIC_EPS = 1e-6


@dataclass(frozen=True)
class PQReport:
    """Panoptic quality of a dataset under one convention.

    Attributes
    ----------
    convention : str
    binary : PQResult
        Class-agnostic result; scores aggregated as the convention does, counts
        summed over the images the convention scores.
    per_image : tuple of PQResult
        Binary result of every image (NaN where the convention leaves an image out).
    per_class : dict
        ``{class: PQResult}`` (empty without classes).
    mpq : float
        Multi-class PQ: CoNIC's mPQ+, PanNuke's tissue-averaged mPQ, otherwise the
        mean of the per-class PQ (NaN without classes).
    per_image_mpq : tuple of float
        PanNuke only: mPQ of every image (nanmean over its classes).
    per_group : dict
        PanNuke with tissues only: ``{tissue: {"mpq": float, "bpq": float}}``.
    label_set, depth : str or None, int or None
        Set by the cut evaluation (:mod:`~stardist_hier.metrics.cut`).
    skipped : tuple
        Labels of a cut that the ground truth cannot resolve (not scored).
    """

    convention: str
    binary: PQResult
    per_image: tuple
    per_class: dict = field(default_factory=dict)
    mpq: float = math.nan
    per_image_mpq: tuple = ()
    per_group: dict = field(default_factory=dict)
    label_set: str | None = None
    depth: int | None = None
    skipped: tuple = ()

    @property
    def pq(self) -> float:
        """Binary PQ (``binary.pq``)."""
        return self.binary.pq

    @property
    def dq(self) -> float:
        return self.binary.dq

    @property
    def sq(self) -> float:
        return self.binary.sq

    @property
    def n_images(self) -> int:
        return len(self.per_image)


def build_report(convention: str, bcounts, ccounts=None, classes=(), *, tissues=None, by_image: bool = False,
                 **fields) -> PQReport:
    """The :class:`PQReport` of ``convention`` from per-image counts.

    Parameters
    ----------
    convention : str
    bcounts : ndarray, shape (n_images, 4)
        Binary ``[TP, FP, FN, sum IoU]`` of every image.
    ccounts : ndarray, shape (n_images, len(classes) + 1, 4), optional
        Per-class counts (row 0 unused).
    classes : sequence
        Class names or values of rows ``1..``.
    tissues : sequence of str, optional
        PanNuke only.
    by_image : bool
        StarDist only.
    **fields
        Passed to :class:`PQReport` (``label_set``, ``depth``, ``skipped``).
    """
    bcounts = np.asarray(bcounts, np.float64).reshape(-1, 4)
    classes = tuple(classes)
    if ccounts is None:
        ccounts = np.zeros((len(bcounts), 1, 4))
        classes = ()
    if convention == "pannuke":
        out = _pannuke(bcounts, ccounts, classes, tissues)
    else:
        if convention == "stardist":
            binary_scorer = class_scorer = _stardist_by_image if by_image else _stardist_pooled
        else:
            binary_scorer, class_scorer = {"hovernet": (_hovernet, _hovernet),
                                           "conic": (_conic_binary, _conic_class)}[convention]
        per_image, binary = binary_scorer(bcounts)
        per_class = {c: class_scorer(ccounts[:, k])[1] for k, c in enumerate(classes, start=1)}
        out = dict(binary=binary, per_image=tuple(per_image), per_class=per_class,
                   mpq=_nanmean([r.pq for r in per_class.values()]))
    return PQReport(convention, **out, **fields)


# Each scorer maps counts (n_images, 4) of one class to (per-image results, dataset result).
def _hovernet(counts):
    """Per image, no epsilon; mean of PQ, DQ, SQ over the images where they are defined."""
    per_image = [PQResult.from_counts(*c) for c in counts]
    return per_image, _mean_result([r for r in per_image if not math.isnan(r.pq)], counts)


def _conic_binary(counts):
    """CoNIC's binary PQ: per image with epsilon, then mean over images."""
    per_image = [PQResult.from_counts(*c, eps=CONIC_EPS) for c in counts]
    return per_image, _mean_result(per_image, counts)


def _conic_class(counts):
    """CoNIC's PQ_c: from the counts summed over images, with epsilon."""
    per_image = [PQResult.from_counts(*c, eps=CONIC_EPS) for c in counts]
    return per_image, PQResult.from_counts(*counts.sum(axis=0), eps=CONIC_EPS)


def _stardist_pooled(counts):
    per_image = [_safe_result(c) for c in counts]
    return per_image, _safe_result(counts.sum(axis=0))


def _stardist_by_image(counts):
    per_image = [_safe_result(c) for c in counts]
    return per_image, _mean_result(per_image, counts)


def _pannuke(bcounts, ccounts, classes, tissues) -> dict:
    """NaN without ground truth; nanmean over classes, over a tissue's images, over tissues."""
    n = len(bcounts)
    per_image = [_gt_only(c) for c in bcounts]
    groups = list(tissues) if tissues is not None else ["all"] * n
    names = list(dict.fromkeys(groups))
    members = {t: [k for k in range(n) if groups[k] == t] for t in names}
    bpq = {t: _mean_result([per_image[k] for k in members[t]], ()) for t in names}
    per_class, per_image_mpq, tissue_mpq = {}, (), {t: math.nan for t in names}
    if classes:
        img_cls = [[_gt_only(ccounts[i, k]) for k in range(1, len(classes) + 1)] for i in range(n)]
        per_image_mpq = tuple(_nanmean([r.pq for r in row]) for row in img_cls)
        for k, c in enumerate(classes, start=1):
            scored = (ccounts[:, k, 0] + ccounts[:, k, 2]) > 0
            per_class[c] = _mean_result([row[k - 1] for row in img_cls], ccounts[scored, k])
        tissue_mpq = {t: _nanmean([per_image_mpq[k] for k in members[t]]) for t in names}
    has_gt = (bcounts[:, 0] + bcounts[:, 2]) > 0
    tot = bcounts[has_gt].sum(axis=0)
    binary = PQResult(*(_nanmean([getattr(bpq[t], a) for t in names]) for a in ("pq", "dq", "sq")),
                      int(tot[0]), int(tot[1]), int(tot[2]), float(tot[3]))
    return dict(binary=binary, per_image=tuple(per_image), per_class=per_class,
                mpq=_nanmean(list(tissue_mpq.values())), per_image_mpq=per_image_mpq,
                per_group={t: {"mpq": tissue_mpq[t], "bpq": bpq[t].pq} for t in names} if tissues is not None
                else {})


# --------------------------------------------------------------------------- helpers
def _nanmean(values) -> float:
    a = np.asarray(values, np.float64)
    if a.size == 0 or np.isnan(a).all():
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(a))


def _mean_result(results, counts) -> PQResult:
    """Mean (ignoring NaN) of the scores of ``results``; counts summed from ``counts``."""
    tot = np.asarray(counts, np.float64).reshape(-1, 4).sum(axis=0)
    return PQResult(_nanmean([r.pq for r in results]), _nanmean([r.dq for r in results]),
                    _nanmean([r.sq for r in results]), int(tot[0]), int(tot[1]), int(tot[2]), float(tot[3]))


def _gt_only(c) -> PQResult:
    """PanNuke's rule: NaN scores without ground truth (TP + FN = 0), counts kept."""
    if c[0] + c[2] > 0:
        return PQResult.from_counts(*c)
    return PQResult(math.nan, math.nan, math.nan, int(c[0]), int(c[1]), int(c[2]), float(c[3]))


def _safe_result(c) -> PQResult:
    """StarDist's safe division: 0 where a denominator is 0."""
    if c[0] + c[1] + c[2] == 0:
        return PQResult(0.0, 0.0, 0.0, 0, 0, 0, 0.0)
    return PQResult.from_counts(*c)
