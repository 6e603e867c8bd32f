"""Per-instance class decisions on the class tree (no TensorFlow).

The network predicts a softmax over background and the tree's leaves at every pixel
of its output grid. An instance's class is decided from the probabilities
*aggregated over its pixels* (:func:`aggregate_instance_probabilities`), then read at
any level of the tree: the leaf, the probability of every node, the label of any
dataset's label set (:func:`label_decisions`), or the deepest confident node
(:func:`abstain_to_ancestor`).
"""

from __future__ import annotations

import numpy as np

from .tree import ClassTree, LabelSet

__all__ = ["aggregate_instance_probabilities", "leaf_decisions", "label_decisions",
           "abstain_to_ancestor"]


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


def label_decisions(class_prob, label_set: LabelSet):
    """Label of every instance at a dataset's label set, from summed leaf probabilities.

    Returns
    -------
    names : list of str
        The label with the largest summed probability (background excluded).
    label_prob : ndarray, (n, len(label_set) + 1)
        Column 0 background, column ``k`` label ``label_set.labels[k-1]``.
    """
    lp = label_set.label_probabilities(class_prob)
    if lp.shape[0] == 0:
        return [], lp
    k = np.argmax(lp[:, 1:], axis=1)
    return [label_set.labels[i] for i in k], lp


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
