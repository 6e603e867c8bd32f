"""Instance-map operations shared by the readers: relabelling, majority votes, components."""

from __future__ import annotations

import numpy as np

from ..label_image import check_label_image
from .base import DatasetError

__all__ = ["as_label_image", "relabel_sequential", "majority_vote", "keep_largest_component"]


def as_label_image(a, *, source="labels", shape=None) -> np.ndarray:
    """Check that ``a`` is a 2D non-negative integer-valued map and return it as int64.

    Float maps are accepted when every value is an integer (PanNuke, CoNIC).

    Raises
    ------
    DatasetError
        Wrong number of dimensions, shape different from ``shape``, non-numeric
        dtype, negative or non-integer values (message names ``source``).
    """
    a = np.asarray(a)
    if a.ndim != 2:
        raise DatasetError(f"{source}: expected a 2D label image, got shape {a.shape}")
    if shape is not None and tuple(a.shape) != tuple(shape[:2]):
        raise DatasetError(f"{source}: label image shape {a.shape} does not match image shape {tuple(shape[:2])}")
    try:
        a = check_label_image(a, name=str(source))
    except ValueError as e:
        raise DatasetError(str(e)) from None
    return a.astype(np.int64, copy=False)


def relabel_sequential(labels) -> tuple:
    """Relabel instance ids to 1..n in increasing order of the old ids.

    Returns
    -------
    new : ndarray of int32
        Same shape, 0 stays background.
    old_ids : ndarray
        ``old_ids[k - 1]`` is the old id of new id ``k``.
    """
    from skimage.segmentation import relabel_sequential as _relabel

    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        labels = check_label_image(labels)  # floats holding integers (PanNuke, CoNIC); bool masks
    new, forward, _ = _relabel(labels)
    old = np.asarray(forward.in_values)  # sorted; holds 0 (mapped to 0) when there is background
    # our readers' contract: int32 ids and the old id of every new id (skimage keeps the input dtype)
    return new.astype(np.int32, copy=False), old[old != 0]


def majority_vote(ids, values, *, exclude=(0,)) -> dict:
    """Most frequent value per id.

    Parameters
    ----------
    ids : array_like of int
        Id of each vote (pixels: the instance map; points: the instance hit). Votes
        with id 0 are discarded.
    values : array_like
        The voted value, same shape as ``ids``.
    exclude : iterable
        Values that do not vote (e.g. 0 = no class).

    Returns
    -------
    dict of int to (int or None)
        ``{id: value}`` for every id with at least one vote; ``None`` when the top
        two values tie.
    """
    ids = np.asarray(ids).ravel()
    values = np.asarray(values).ravel()
    keep = ids > 0
    for v in exclude:
        keep &= values != v
    ids, values = ids[keep], values[keep]
    if ids.size == 0:
        return {}
    pairs, counts = np.unique(np.stack([ids, values.astype(ids.dtype)]), axis=1, return_counts=True)
    out = {}
    order = np.lexsort((-counts, pairs[0]))  # by id, then descending count
    pid, pval, pc = pairs[0][order], pairs[1][order], counts[order]
    starts = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1]])
    ends = np.r_[starts[1:], pid.size]
    for s, e in zip(starts, ends):
        tie = e - s > 1 and pc[s] == pc[s + 1]
        out[int(pid[s])] = None if tie else int(pval[s])
    return out


def keep_largest_component(labels) -> tuple:
    """Keep only the largest 8-connected component of every id.

    Parameters
    ----------
    labels : ndarray of int
        Instance map (0 = background).

    Returns
    -------
    out : ndarray
        ``labels`` with the smaller components of every id set to 0 (a copy only
        when something changes).
    dropped : ndarray of bool
        Pixels removed (to be marked as ignore: they are neither trusted nucleus
        nor trusted background).
    n_split : int
        Number of ids that had more than one component.
    """
    from skimage.measure import label as cc_label

    labels = np.asarray(labels)
    cc = cc_label(labels, connectivity=2, background=0)
    n_cc = int(cc.max())
    dropped = np.zeros(labels.shape, bool)
    if n_cc == 0:
        return labels, dropped, 0
    flat_cc, flat_lab = cc.ravel(), labels.ravel()
    owner = np.zeros(n_cc + 1, labels.dtype)
    owner[flat_cc] = flat_lab  # every pixel of a component has the same id
    sizes = np.bincount(flat_cc, minlength=n_cc + 1)
    comps = np.arange(1, n_cc + 1)
    _, n_comp = np.unique(owner[1:], return_counts=True)
    n_split = int(np.sum(n_comp > 1))
    if n_split == 0:
        return labels, dropped, 0
    order = np.lexsort((-sizes[1:], owner[1:]))
    cid = owner[1:][order]
    first = np.r_[True, cid[1:] != cid[:-1]]
    keep = np.zeros(n_cc + 1, bool)
    keep[comps[order][first]] = True
    dropped = (cc > 0) & ~keep[cc]
    out = labels.copy()
    out[dropped] = 0
    return out, dropped, n_split
