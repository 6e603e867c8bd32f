"""Per-instance class decisions on the class tree (no TensorFlow).

The network predicts a softmax over background and the tree's leaves at every pixel
of its output grid. An instance's class is decided from the probabilities
*aggregated over its pixels* (:func:`aggregate_instance_probabilities`), then read at
any level of the tree: the leaf, the probability of every node, the label of any
dataset's label set (:func:`label_decisions`, :func:`label_set_decisions`), or the
deepest confident node (:func:`abstain_to_ancestor`).

A label set need not cover the whole tree (MoNuSAC has no label for fibroblasts): the
probability of the leaves that no label covers is the mass *outside the label set*.
It competes with the labels, so a nucleus whose most probable leaf is outside the set
is labelled :data:`OUTSIDE` rather than forced onto the nearest label; with an
abstention threshold, a nucleus whose best label (or outside mass) does not reach it,
given that it is a nucleus, is labelled :data:`UNCERTAIN`.
"""

from __future__ import annotations

import numpy as np

from .tree import ClassTree, LabelSet

__all__ = ["aggregate_instance_probabilities", "leaf_decisions", "label_decisions", "label_set_decisions",
           "LabelSetDecisions", "outside_probability", "abstain_to_ancestor", "OUTSIDE", "UNCERTAIN"]

#: The label of a nucleus whose probability is mostly on leaves the label set does not cover.
OUTSIDE = "outside label set"
#: The label of a nucleus whose best label at a label set is below the abstention threshold.
UNCERTAIN = "uncertain"


def aggregate_instance_probabilities(labels, coords, values, n_instances, *, fallback=None):
    """Mean class probabilities of every instance over the sample points inside it.

    Parameters
    ----------
    labels : ndarray of int, (H, W)
        Instance label image; instance ``i`` (0-based) has id ``i + 1``.
    coords : ndarray of int, (N, 2)
        Image coordinates (row, column) of the sample points (e.g. the pixels of the
        prediction grid).
    values : ndarray, (N, C)
        Class probabilities at the sample points.
    n_instances : int
    fallback : ndarray, (n_instances, C), optional
        Used for instances that contain no sample point (tiny objects); default zeros.

    Returns
    -------
    ndarray, (n_instances, C)
    """
    values = np.asarray(values, np.float64)
    C = values.shape[-1]
    out = np.zeros((n_instances, C), np.float64) if fallback is None else np.array(fallback, np.float64)
    if n_instances == 0 or len(values) == 0:
        return out.astype(np.float32)
    coords = np.asarray(coords, np.int64)
    H, W = labels.shape
    inside = (coords[:, 0] >= 0) & (coords[:, 0] < H) & (coords[:, 1] >= 0) & (coords[:, 1] < W)
    ids = np.zeros(len(coords), np.int64)
    ids[inside] = labels[coords[inside, 0], coords[inside, 1]]
    keep = (ids > 0) & (ids <= n_instances)
    ids, vals = ids[keep], values[keep]
    counts = np.bincount(ids, minlength=n_instances + 1)[1:]
    sums = np.stack([np.bincount(ids, weights=vals[:, c], minlength=n_instances + 1)[1:] for c in range(C)], -1)
    has = counts > 0
    out[has] = sums[has] / counts[has, None]
    return out.astype(np.float32)


def leaf_decisions(class_prob, tree: ClassTree):
    """Leaf class index (1-based) and name of every instance, ignoring the background channel.

    Detected objects are nuclei by construction, so the decision is the most probable
    leaf; the background mass stays visible in the node probabilities.
    """
    p = np.asarray(class_prob)
    if p.shape[0] == 0:
        return np.zeros(0, np.int64), []
    idx = 1 + np.argmax(p[:, 1:], axis=1)
    return idx, [tree.leaves[i - 1] for i in idx]


def outside_probability(class_prob, label_set: LabelSet) -> np.ndarray:
    """Summed probability of the leaves no label of ``label_set`` covers, ``(n,)`` (0 for a full cover)."""
    p = np.asarray(class_prob, np.float64)
    tree = label_set.tree
    if p.shape[-1] != tree.n_classes + 1:
        raise ValueError(f"class_prob has {p.shape[-1]} channels, expected {tree.n_classes + 1}")
    covered = label_set.covered_leaves()
    cols = [tree.leaf_index(leaf) for leaf in tree.leaves if leaf not in covered]
    return p[:, cols].sum(axis=1) if cols else np.zeros(p.shape[0])


class LabelSetDecisions:
    """Every nucleus's label at one label set (see :func:`label_set_decisions`).

    Attributes
    ----------
    label_set : LabelSet
    names : list of str
        The most probable of the set's labels and :data:`OUTSIDE` (the mass of the
        leaves no label covers).
    prob : ndarray, (n,)
        Probability of that label (or of the outside mass), background included in the
        whole: the columns of the table.
    outside : ndarray, (n,)
        Probability of the leaves outside the label set.
    label_prob : ndarray, (n, len(label_set) + 1)
        Column 0 background, column ``k`` label ``label_set.labels[k-1]``.
    conditional : ndarray, (n,)
        ``prob`` given that the object is a nucleus (``prob / (1 - p_background)``),
        what the abstention threshold is compared with.
    abstained : list of str or None
        With a threshold: ``names``, or :data:`UNCERTAIN` where ``conditional`` is below it.
    """

    def __init__(self, label_set, names, prob, outside, label_prob, conditional, abstained):
        self.label_set, self.names, self.prob, self.outside = label_set, names, prob, outside
        self.label_prob, self.conditional, self.abstained = label_prob, conditional, abstained

    def __len__(self):
        return len(self.names)


def label_set_decisions(class_prob, label_set: LabelSet, *, abstain: float | None = None) -> LabelSetDecisions:
    """Label of every instance at a label set, with the mass outside it and optional abstention.

    Parameters
    ----------
    class_prob : array_like, (n, n_classes + 1)
        Leaf probabilities, column 0 background.
    label_set : LabelSet
    abstain : float, optional
        Threshold in (0, 1]: a nucleus whose chosen label has a nucleus-conditional
        probability below it is :data:`UNCERTAIN` in ``abstained``.

    Returns
    -------
    LabelSetDecisions
    """
    if abstain is not None and not (0 < abstain <= 1):
        raise ValueError(f"abstain threshold must be in (0, 1], got {abstain}")
    lp = label_set.label_probabilities(class_prob)
    n = lp.shape[0]
    outside = outside_probability(class_prob, label_set).astype(np.float64)
    if n == 0:
        return LabelSetDecisions(label_set, [], np.zeros(0), outside, lp, np.zeros(0), [] if abstain else None)
    cand = np.concatenate([lp[:, 1:].astype(np.float64), outside[:, None]], axis=1)
    k = np.argmax(cand, axis=1)  # ties go to the label (it comes first)
    names = [OUTSIDE if i == len(label_set) else label_set.labels[i] for i in k]
    prob = cand[np.arange(n), k]
    nucleus = np.maximum(1.0 - np.asarray(class_prob, np.float64)[:, 0], 1e-12)
    cond = np.clip(prob / nucleus, 0.0, 1.0)
    abstained = None
    if abstain is not None:
        abstained = [nm if c >= abstain else UNCERTAIN for nm, c in zip(names, cond)]
    return LabelSetDecisions(label_set, names, prob, outside, lp, cond, abstained)


def label_decisions(class_prob, label_set: LabelSet):
    """Label of every instance at a dataset's label set, from summed leaf probabilities.

    Returns
    -------
    names : list of str
        The label with the largest summed probability (background excluded), or
        :data:`OUTSIDE` when the leaves no label covers hold more (see
        :func:`label_set_decisions`).
    label_prob : ndarray, (n, len(label_set) + 1)
        Column 0 background, column ``k`` label ``label_set.labels[k-1]``.
    """
    d = label_set_decisions(class_prob, label_set)
    return d.names, d.label_prob


def abstain_to_ancestor(class_prob, tree: ClassTree, threshold: float):
    """Deepest node on the most probable leaf's path whose probability reaches ``threshold``.

    Probabilities are conditional on being a nucleus (background mass removed). A
    leaf below ``threshold`` gives way to its parent, and so on up to the root, whose
    conditional probability is 1.

    Returns
    -------
    list of str
    """
    if not (0 < threshold <= 1):
        raise ValueError(f"abstain threshold must be in (0, 1], got {threshold}")
    p = np.asarray(class_prob, np.float64)
    if p.shape[0] == 0:
        return []
    nodes = tree.node_probabilities(p)[:, 1:]  # drop background column
    nucleus = np.maximum(1.0 - p[:, 0], 1e-12)
    cond = nodes / nucleus[:, None]
    col = {n: i for i, n in enumerate(tree.nodes)}
    _, leaves = leaf_decisions(p, tree)
    out = []
    for r, leaf in enumerate(leaves):
        node = leaf
        while cond[r, col[node]] < threshold and tree.parent(node) is not None:
            node = tree.parent(node)
        out.append(node)
    return out
