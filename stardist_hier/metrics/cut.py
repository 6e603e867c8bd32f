"""Evaluation at a cut of the class tree, and at every level of it.

Predictions are fine-level: an instance label image plus, per instance, the leaf
probabilities of the model (``(n_classes + 1,)``, channel 0 background). To score
them against ground truth labelled with a dataset's :class:`~stardist_hier.tree.LabelSet`,
each predicted instance gets the label whose *summed* leaf probability is largest
(:meth:`LabelSet.label_probabilities`, argmax over the set's labels) -- never the
label of its argmax leaf.

Ignore regions: ground-truth instances labelled ``None`` (or with an ignore label of
the set) are removed, and so is every predicted instance with more than half of its
pixels inside them, before any matching (binary or per label).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..tree import ClassTree, LabelSet
from .aggregation import PQReport, build_report
from .conventions import check_convention, stardist_counts
from .labels import as_annotation_list, as_image_list, check_pairs
from .overlap import index_instances, label_overlap
from .pq import strict_counts

__all__ = ["collapse_predictions", "drop_ignored", "evaluate_cut", "evaluate_levels", "level_cuts"]


def level_cuts(tree: ClassTree) -> tuple:
    """One label set per depth of ``tree``, root first.

    The cut at depth ``d`` holds the nodes at depth ``d`` and the leaves shallower
    than ``d``; its labels are the node names and the set is named ``"depth d"``.
    Depth 0 is the root alone (binary segmentation).
    """
    depth = {n: tree.depth(n) for n in tree.nodes}
    out = []
    for d in range(max(depth.values()) + 1):
        nodes = [n for n in tree.nodes if depth[n] == d or (depth[n] < d and tree.is_leaf(n))]
        out.append(LabelSet(tree, {n: n for n in nodes}, name=f"depth {d}"))
    return tuple(out)


def collapse_predictions(pred_probs, label_set: LabelSet, *, ids=None, too_coarse: str = "raise") -> dict:
    """Label of every predicted instance in ``label_set``, by summed leaf probabilities.

    Parameters
    ----------
    pred_probs : mapping or ndarray
        ``{instance id: leaf probabilities}`` with vectors of shape ``(n_classes + 1,)``
        (channel 0 background), or an ``(n, n_classes + 1)`` array aligned with ``ids``.
        A mapping value may also be a string: a label of ``label_set`` or a tree node,
        which must lie inside one label (a node covered by no label gets ``None``).
    label_set : LabelSet
    ids : sequence of int, optional
        Instance ids of the rows of an array ``pred_probs`` (sorted ids of the image).
    too_coarse : {"raise", "none"}, optional
        What to do with a string label that spans several labels of ``label_set``:
        raise ``ValueError``, or give it ``None`` (no label).

    Returns
    -------
    dict of int to (str or None)

    Notes
    -----
    The probability of a label is the sum over its leaves; the instance takes the
    label of largest probability (the first in ``label_set.labels`` on ties).
    Background and leaves that no label covers take part in no comparison.
    """
    if isinstance(pred_probs, Mapping):
        keys = [int(k) for k in pred_probs]
        values = list(pred_probs.values())
    else:
        arr = np.asarray(pred_probs, np.float64)
        if ids is None:
            raise ValueError("pred_probs is an array: pass the instance ids of its rows as ids=")
        keys = [int(i) for i in ids]
        if arr.ndim != 2 or arr.shape[0] != len(keys):
            raise ValueError(f"pred_probs has shape {arr.shape}, expected ({len(keys)}, n_classes + 1): "
                             "one row per instance id")
        values = list(arr)
    out = {}
    n_channels = label_set.tree.n_classes + 1
    vec_keys, vecs = [], []
    for k, v in zip(keys, values):
        if v is None or isinstance(v, (str, frozenset)):
            out[k] = _node_label(v, label_set, too_coarse=too_coarse)
            continue
        try:
            v = np.asarray(v, np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"pred_probs: instance {k}: expected leaf probabilities or a label, got {v!r}") from None
        if v.shape != (n_channels,):
            raise ValueError(f"pred_probs: instance {k}: {v.size} leaf probabilities, expected n_classes + 1 = "
                             f"{n_channels} (background first)")
        vec_keys.append(k)
        vecs.append(v)
    if vecs:
        p = label_set.label_probabilities(np.stack(vecs))[:, 1:]
        best = np.argmax(p, axis=1)
        for k, b in zip(vec_keys, best):
            out[k] = label_set.labels[int(b)]
    return out


def _node_label(name, label_set: LabelSet, *, too_coarse: str = "raise"):
    """Label of ``label_set`` containing a predicted label: a label, a tree node, or a set of leaves."""
    if name is None:
        return None
    if isinstance(name, frozenset):
        leaves = name
    elif name in label_set.labels:
        return name
    elif name in label_set.tree:
        leaves = label_set.tree.leaf_set(name)
    else:
        raise ValueError(f"predicted label {name!r} is neither a label of {label_set.name!r} nor a tree node")
    for lab in label_set.labels:
        if leaves <= label_set.leaf_set(lab):
            return lab
    if too_coarse == "none" or not leaves & label_set.covered_leaves():
        return None
    raise ValueError(f"predicted label {_describe(name)} spans several labels of {label_set.name!r}: "
                     "it is too coarse to collapse; give leaf probabilities instead")


def _describe(name) -> str:
    return f"with leaves {{{', '.join(sorted(name))}}}" if isinstance(name, frozenset) else repr(name)


def drop_ignored(gt, pred, ignore_ids, *, min_fraction: float = 0.5):
    """Remove ignored ground-truth instances and the predictions lying mostly inside them.

    Parameters
    ----------
    gt, pred : ndarray of int
        One image's label images.
    ignore_ids : iterable of int
        Ground-truth instances to ignore.
    min_fraction : float, optional
        A predicted instance is dropped when *more than* this fraction of its pixels
        lies inside the ignored ground-truth instances.

    Returns
    -------
    gt, pred : ndarray
        Copies with the dropped instances set to 0 (the inputs when nothing is dropped).
    dropped : ndarray of int
        Ids of the dropped predictions.
    """
    ignore_ids = np.asarray(sorted({int(i) for i in ignore_ids}), np.int64)
    mask = np.isin(gt, ignore_ids) if len(ignore_ids) else np.zeros(gt.shape, bool)
    if not mask.any():
        return gt, pred, np.zeros(0, np.int64)
    gt = np.where(mask, 0, gt)
    idx, ids, area = index_instances(pred)
    inside = np.bincount(idx[mask.ravel()], minlength=len(ids) + 1)[1:]
    drop = inside > min_fraction * area
    if drop.any():
        keep = np.concatenate([[True], ~drop])
        pred = np.where(keep[idx].reshape(pred.shape), pred, 0)
    return gt, pred, ids[drop].astype(np.int64)


def evaluate_cut(gt, pred, gt_classes, pred_probs, *, label_set: LabelSet, cut: LabelSet | None = None,
                 convention: str = "conic", threshold: float = 0.5, by_image: bool = False,
                 tissues=None, ignore_fraction: float = 0.5) -> PQReport:
    """Per-label PQ of fine-level predictions at a cut of the class tree.

    Parameters
    ----------
    gt, pred : label image or sequence of label images
    gt_classes : mapping or sequence of mappings
        Per image ``{gt instance id: label}`` in ``label_set`` (label names or codes;
        ``None`` or an ignore label marks an ignore region). Every instance needs one.
    pred_probs : mapping or (n, n_classes + 1) array, or a sequence of them
        Per image, leaf probabilities of every predicted instance (see
        :func:`collapse_predictions`; arrays are aligned with the image's sorted ids).
        Mapping values may also be labels of ``label_set`` or tree nodes; one that
        spans several labels of the cut gets no label there (it matches nothing).
    label_set : LabelSet
        The label set of the ground truth.
    cut : LabelSet, optional
        Where to evaluate (default: ``label_set``). A ground-truth label maps to the
        label of ``cut`` containing it. A label of ``cut`` that some ground-truth label
        only partly covers (or that no ground-truth label falls in) cannot be scored
        and is listed in ``skipped``; ground-truth nuclei whose label is coarser than
        the cut then belong to no label there, but still count for the binary PQ.
    convention : {"conic", "pannuke", "stardist", "hovernet"}, optional
        How the per-label PQ is computed. Default ``"conic"``: matched at IoU > 0.5,
        TP, FP, FN and summed IoU pooled over all images, 1e-6 in the denominators
        (CoNIC's PQ_c; ``mpq`` is then mPQ+). ``"pannuke"``: per image, NaN without
        ground truth of the label, nanmean over images (and ``tissues``).
        ``"stardist"``: IoU >= ``threshold``, maximal matching, pooled (or mean of
        per-image values with ``by_image=True``). ``"hovernet"`` (which defines no
        class PQ): per image, mean over the images where the label occurs (for the
        binary PQ, over the images that are not empty on both sides).
    threshold : float, optional
    by_image : bool, optional
        Only for ``"stardist"``.
    tissues : sequence of str, optional
        Only for ``"pannuke"``.
    ignore_fraction : float, optional
        Predictions with more than this fraction of their pixels in ignore regions are dropped.

    Returns
    -------
    PQReport
        ``per_class`` maps every scored label to its :class:`PQResult`, ``mpq`` is their
        mean (nanmean for PanNuke), ``binary`` is the class-agnostic PQ of the same
        convention, ``label_set`` the name of ``cut``.
    """
    data = _prepare(gt, pred, gt_classes, pred_probs, label_set, convention, threshold, ignore_fraction)
    return _at_cut(data, cut if cut is not None else label_set, convention=convention, threshold=threshold,
                   by_image=by_image, tissues=tissues)


def evaluate_levels(gt, pred, gt_classes, pred_probs, *, label_set: LabelSet, convention: str = "conic",
                    threshold: float = 0.5, by_image: bool = False, tissues=None,
                    ignore_fraction: float = 0.5) -> dict:
    """:func:`evaluate_cut` at every cut of :func:`level_cuts`, in one pass over the images.

    Returns
    -------
    dict of int to PQReport
        ``{depth: report}``, root (depth 0, binary PQ as the convention pools labels) first.
        Use :func:`~stardist_hier.metrics.table.tidy_rows` for one row per level and label.
    """
    data = _prepare(gt, pred, gt_classes, pred_probs, label_set, convention, threshold, ignore_fraction)
    return {d: _at_cut(data, cut, convention=convention, threshold=threshold, by_image=by_image,
                       tissues=tissues, depth=d)
            for d, cut in enumerate(level_cuts(label_set.tree))}


# ------------------------------------------------------------------------ internals
def _prepare(gt, pred, gt_classes, pred_probs, label_set, convention, threshold, ignore_fraction) -> dict:
    """Validate, resolve ground-truth labels, drop ignore regions and overlap every image once."""
    check_convention(convention)
    gt = as_image_list(gt, name="gt")
    pred = as_image_list(pred, name="pred")
    check_pairs(gt, pred)
    gcl = as_annotation_list(gt_classes, len(gt), name="gt_classes")
    ppr = as_annotation_list(pred_probs, len(pred), name="pred_probs")
    images = []
    for i, (g, p, gc, pp) in enumerate(zip(gt, pred, gcl, ppr)):
        gids, pids = index_instances(g)[1], index_instances(p)[1]
        gmap = {}
        for k, v in dict(gc).items():
            try:
                gmap[int(k)] = None if v is None else label_set.resolve(v)
            except ValueError as e:
                raise ValueError(f"gt_classes[{i}], instance {k}: {e}") from None
        missing = [int(j) for j in gids if int(j) not in gmap]
        if missing:
            raise ValueError(f"gt_classes[{i}]: no label for ground-truth instance(s) {missing[:5]}")
        if isinstance(pp, Mapping):
            probs = {int(k): _as_leaves(v, label_set) for k, v in pp.items()}
            missing = [int(j) for j in pids if int(j) not in probs]
            if missing:
                raise ValueError(f"pred_probs[{i}]: no class probabilities for predicted instance(s) {missing[:5]}")
        else:
            arr = np.asarray(pp)
            if arr.ndim != 2 or arr.shape[0] != len(pids):
                raise ValueError(f"pred_probs[{i}] has shape {arr.shape}, expected ({len(pids)}, n_classes + 1): "
                                 "one row per predicted instance, in sorted id order")
            probs = dict(zip((int(j) for j in pids), arr))
        g, p, _ = drop_ignored(g, p, [k for k, v in gmap.items() if v is None], min_fraction=ignore_fraction)
        ov = label_overlap(g, p, check=False)
        images.append(dict(gt=g, pred=p, ov=ov,
                           gt_labels=[gmap[int(j)] for j in ov.gt_ids],
                           pred_probs={int(j): probs[int(j)] for j in ov.pred_ids}))
    if convention == "stardist":
        bcounts = [stardist_counts(im["gt"], im["pred"], threshold=threshold)[1] for im in images]
    else:
        bcounts = [strict_counts(im["ov"], threshold=threshold)[1] for im in images]
    return dict(images=images, label_set=label_set,
                bcounts=np.stack(bcounts) if bcounts else np.zeros((0, 4)))


def _as_leaves(value, label_set: LabelSet):
    """A predicted label of the ground truth's set that is no tree node becomes its set of leaves."""
    if isinstance(value, str) and value not in label_set.tree:
        try:
            lab = label_set.resolve(value)
        except ValueError:
            return value  # reported by collapse_predictions
        return None if lab is None else frozenset(label_set.leaf_set(lab))
    return value


def _map_labels(source: LabelSet, target: LabelSet):
    """``{source label: target label or None}`` and the target labels that can be scored."""
    if source.tree != target.tree:
        raise ValueError(f"label sets {source.name!r} and {target.name!r} are defined on different trees")
    mapping = {}
    straddled = set()
    for lab in source.labels:
        s = source.leaf_set(lab)
        mapping[lab] = next((t for t in target.labels if s <= target.leaf_set(t)), None)
        if mapping[lab] is None:
            straddled |= {t for t in target.labels if s & target.leaf_set(t)}
    hit = set(mapping.values())
    scored = tuple(t for t in target.labels if t in hit and t not in straddled)
    skipped = tuple(t for t in target.labels if t not in scored)
    return mapping, scored, skipped


def _at_cut(data: dict, cut: LabelSet, *, convention: str, threshold: float, by_image: bool, tissues,
            depth=None) -> PQReport:
    mapping, scored, skipped = _map_labels(data["label_set"], cut)
    codes = {t: k for k, t in enumerate(scored, start=1)}
    ccounts = np.zeros((len(data["images"]), len(scored) + 1, 4))
    for i, im in enumerate(data["images"]):
        ov = im["ov"]
        gcode = np.array([codes.get(mapping.get(lab), 0) if lab is not None else 0 for lab in im["gt_labels"]],
                         np.intp)
        plab = collapse_predictions(im["pred_probs"], cut, too_coarse="none") if im["pred_probs"] else {}
        pcode = np.array([codes.get(plab[int(j)], 0) for j in ov.pred_ids], np.intp)
        if convention == "stardist":
            gmap = np.concatenate([[0], gcode])[index_instances(im["gt"])[0]].reshape(im["gt"].shape)
            pmap = np.concatenate([[0], pcode])[index_instances(im["pred"])[0]].reshape(im["pred"].shape)
            ccounts[i] = stardist_counts(im["gt"], im["pred"], threshold=threshold, gt_class=gmap,
                                         pred_class=pmap, n_classes=len(scored))
        else:
            ccounts[i] = strict_counts(ov, threshold=threshold, gt_class=gcode, pred_class=pcode,
                                       n_classes=len(scored))
    if tissues is not None:
        tissues = [str(t) for t in tissues]
        if len(tissues) != len(ccounts):
            raise ValueError(f"tissues has {len(tissues)} entries for {len(ccounts)} images")
    return build_report(convention, data["bcounts"], ccounts, scored, tissues=tissues, by_image=by_image,
                   label_set=cut.name, depth=depth, skipped=skipped)
