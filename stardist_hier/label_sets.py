"""Dataset label sets: :class:`LabelSet` (no TensorFlow).

A :class:`LabelSet` is what one dataset uses to label its nuclei: every label
names one tree node, a union of nodes, or marks an ignore region. Labels of one
set must not share leaves, but need not cover every leaf. Import it from
:mod:`stardist_hier.tree`.
"""

from __future__ import annotations

import json
from typing import Mapping

import numpy as np

from .class_tree import BACKGROUND, IGNORE, ClassTree
from .errors import LabelSetError, shorten

__all__ = ["LabelSet", "LABEL_SET_KEYS"]

LABEL_SET_KEYS = ("labels", "codes", "weights", "name")


# --------------------------------------------------------------------- label sets
class LabelSet:
    """One dataset's labels, each mapped onto the class tree.

    Parameters
    ----------
    tree : ClassTree
        The class tree.
    labels : mapping of str to (str, list of str, or ``"ignore"``)
        ``{label name: node | [node, ...] | "ignore"}``. A list is a union of nodes.
        ``"ignore"`` (or ``None``) marks nuclei with this label as ignore regions.
    name : str, optional
        Name of the label set (e.g. the dataset).
    codes : mapping of int to str, optional
        Integer codes of the labels as written in the dataset's files.
    weights : mapping of str to float, optional
        Per-label class weights for the losses (default 1 for every label).

    Raises
    ------
    LabelSetError
        Empty set, duplicate or unknown names, unknown nodes, overlapping labels,
        codes naming unknown labels, non-positive weights.
    """

    #: Pickles and ``repr`` name the class where it is imported from, :mod:`stardist_hier.tree`.
    __module__ = "stardist_hier.tree"

    def __init__(self, tree: ClassTree, labels: Mapping, *, name: str = "labels",
                 codes: Mapping | None = None, weights: Mapping | None = None):
        if not isinstance(tree, ClassTree):
            raise TypeError(f"label set {name!r}: tree must be a ClassTree, got {type(tree).__name__}")
        self.tree = tree
        self.name = str(name)
        if labels is not None and not isinstance(labels, Mapping):
            raise LabelSetError(f"label set {self.name!r}: 'labels' must be a mapping {{label: tree node}}, "
                                f"got {type(labels).__name__}")
        if labels is None or len(labels) == 0:
            raise LabelSetError(f"label set {self.name!r} is empty: it needs at least one label")
        self._nodes: dict[str, tuple] = {}
        self._leaves: dict[str, frozenset] = {}
        self._ignore: list[str] = []
        seen_lower = {}
        for label, target in labels.items():
            if not isinstance(label, str) or label == "":
                raise LabelSetError(f"label set {self.name!r}: label names must be non-empty strings, "
                                    f"got {shorten(label)}")
            key = label.strip().lower()
            if key == BACKGROUND:
                raise LabelSetError(f"label set {self.name!r}: a label cannot be named {label!r} (reserved: "
                                    f"class index 0 and column 0 of every probability table are the background); "
                                    f"rename it")
            if key in seen_lower:
                raise LabelSetError(
                    f"label set {self.name!r}: duplicate label name {label!r} (also {seen_lower[key]!r})")
            seen_lower[key] = label
            if target is None or (isinstance(target, str) and target.lower() == IGNORE):
                self._ignore.append(label)
                continue
            if not isinstance(target, (str, list, tuple)) or (
                    not isinstance(target, str) and not all(isinstance(n, str) for n in target)):
                raise LabelSetError(
                    f"label set {self.name!r}: label {label!r} must map to a tree node name, a list of node "
                    f"names or 'ignore', got {target!r}")
            nodes = (target,) if isinstance(target, str) else tuple(target)
            if len(nodes) == 0:
                raise LabelSetError(f"label set {self.name!r}: label {label!r} names no tree node")
            for n in nodes:
                if n not in tree:
                    raise LabelSetError(
                        f"label set {self.name!r}: label {label!r} maps to unknown tree node {n!r}; "
                        f"known nodes: {', '.join(tree.nodes)}")
            leaves = frozenset().union(*(tree.leaf_set(n) for n in nodes))
            for other, ol in self._leaves.items():
                common = leaves & ol
                if common:
                    raise LabelSetError(
                        f"label set {self.name!r}: label {label!r} overlaps label {other!r} "
                        f"(shared leaves: {', '.join(sorted(common))})")
            self._nodes[label] = nodes
            self._leaves[label] = leaves
        if not self._leaves:
            raise LabelSetError(f"label set {self.name!r} has only ignore labels: it needs at least one class label")
        for what, m in (("codes", codes), ("weights", weights)):
            if m is not None and not isinstance(m, Mapping):
                raise LabelSetError(f"label set {self.name!r}: {what!r} must be a mapping, got {type(m).__name__}")
        self._codes: dict[int, str] = {}
        for code, label in dict(codes or {}).items():
            try:
                icode = int(code)
            except (TypeError, ValueError):
                raise LabelSetError(f"label set {self.name!r}: code {code!r} is not an integer") from None
            if not isinstance(label, str) or (label not in self._leaves and label not in self._ignore):
                raise LabelSetError(f"label set {self.name!r}: code {icode} names unknown label {label!r}")
            self._codes[icode] = label
        self._weights = {lab: 1.0 for lab in self._leaves}
        for lab, w in dict(weights or {}).items():
            if lab not in self._leaves:
                raise LabelSetError(f"label set {self.name!r}: weight given for unknown label {lab!r}")
            try:
                w = float(w)
            except (TypeError, ValueError):
                raise LabelSetError(f"label set {self.name!r}: weight of label {lab!r} must be a number, "
                                    f"got {w!r}") from None
            if not (np.isfinite(w) and w > 0):
                raise LabelSetError(f"label set {self.name!r}: weight of label {lab!r} must be positive, got {w}")
            self._weights[lab] = w

    # ---- construction
    @classmethod
    def from_dict(cls, tree: ClassTree, d: Mapping, *, name: str | None = None) -> "LabelSet":
        """Build from ``{"labels": {...}, "codes": {...}, "weights": {...}, "name": ...}``."""
        if not isinstance(d, Mapping) or "labels" not in d:
            raise LabelSetError(f"label set {name!r}: expected a mapping with key 'labels', got {d!r}")
        extra = [k for k in d if k not in LABEL_SET_KEYS]
        if extra:
            from .errors import did_you_mean

            raise LabelSetError(f"label set {d.get('name', name)!r}: unknown key {extra[0]!r}"
                                f"{did_you_mean(extra[0], LABEL_SET_KEYS)}; known: {', '.join(LABEL_SET_KEYS)}")
        return cls(tree, d["labels"], name=d.get("name", name or "labels"),
                   codes=d.get("codes"), weights=d.get("weights"))

    @classmethod
    def root(cls, tree: ClassTree, *, name: str = "root") -> "LabelSet":
        """Segmentation-only label set: one label, the root (``"nucleus"`` by default)."""
        return cls(tree, {tree.root: tree.root}, name=name, codes={1: tree.root})

    @classmethod
    def leaves_of(cls, tree: ClassTree, *, name: str = "leaves") -> "LabelSet":
        """The identity cut: one label per leaf, coded by its class index."""
        return cls(tree, {leaf: leaf for leaf in tree.leaves}, name=name,
                   codes={tree.leaf_index(leaf): leaf for leaf in tree.leaves})

    def to_dict(self) -> dict:
        """Plain-JSON form, accepted by :meth:`from_dict`."""
        labels = {}
        for lab in self.labels + tuple(self._ignore):
            if lab in self._ignore:
                labels[lab] = IGNORE
            else:
                nodes = self._nodes[lab]
                labels[lab] = nodes[0] if len(nodes) == 1 else list(nodes)
        d = {"name": self.name, "labels": labels}
        if self._codes:
            d["codes"] = {str(k): v for k, v in self._codes.items()}
        if any(w != 1.0 for w in self._weights.values()):
            d["weights"] = dict(self._weights)
        return d

    # ---- queries
    @property
    def labels(self) -> tuple:
        """Class labels in order (ignore labels excluded). Label ``labels[k-1]`` has index ``k``."""
        return tuple(self._leaves.keys())

    @property
    def ignore_labels(self) -> tuple:
        return tuple(self._ignore)

    @property
    def codes(self) -> dict:
        return dict(self._codes)

    @property
    def weights(self) -> dict:
        return dict(self._weights)

    def __len__(self) -> int:
        return len(self._leaves)

    def __repr__(self) -> str:
        return f"LabelSet({self.name!r}, labels={list(self.labels)}, ignore={self._ignore})"

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelSet) and self.tree == other.tree and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def resolve(self, label) -> str | None:
        """Label name for a name or integer code; ``None`` for an ignore label.

        Raises
        ------
        LabelSetError
            If ``label`` is neither a label name nor a code of this set.
        """
        if isinstance(label, (bool, np.bool_)):
            raise LabelSetError(f"label set {self.name!r}: {label!r} is not a label name or code")
        if isinstance(label, (int, np.integer)):
            if int(label) not in self._codes:
                raise LabelSetError(
                    f"label set {self.name!r}: unknown label code {int(label)}; known codes: "
                    f"{sorted(self._codes)}")
            label = self._codes[int(label)]
        if isinstance(label, str):
            if label in self._leaves:
                return label
            if label in self._ignore:
                return None
        raise LabelSetError(
            f"label set {self.name!r}: unknown label {label!r}; known labels: "
            f"{', '.join(self.labels + self.ignore_labels)}")

    def nodes(self, label) -> tuple:
        """Tree nodes a label names."""
        lab = self.resolve(label)
        return () if lab is None else self._nodes[lab]

    def leaf_set(self, label) -> frozenset:
        """Leaves a label names (empty for an ignore label)."""
        lab = self.resolve(label)
        return frozenset() if lab is None else self._leaves[lab]

    def leaf_indices(self, label) -> tuple:
        return tuple(sorted(self.tree.leaf_index(x) for x in self.leaf_set(label)))

    def index(self, label) -> int | None:
        """1-based index of a label in :attr:`labels` (``None`` for ignore labels)."""
        lab = self.resolve(label)
        return None if lab is None else self.labels.index(lab) + 1

    def covered_leaves(self) -> frozenset:
        """Union of the leaves of all labels."""
        return frozenset().union(*self._leaves.values())

    def membership_matrix(self) -> np.ndarray:
        """0/1 matrix ``(len(self) + 1, n_classes + 1)``.

        Row 0 is background (column 0); row ``k`` holds the leaves of label ``labels[k-1]``.
        """
        m = np.zeros((len(self) + 1, self.tree.n_classes + 1), np.float32)
        m[0, 0] = 1
        for k, lab in enumerate(self.labels, start=1):
            m[k, list(self.leaf_indices(lab))] = 1
        return m

    def leaf_assignment(self) -> np.ndarray:
        """Label index of every softmax channel: ``(n_classes + 1,)`` int array.

        Channel 0 (background) gets 0, a leaf covered by label ``k`` gets ``k``
        (1-based), an uncovered leaf gets -1. This is the per-sample "cut" that the
        losses receive.
        """
        a = np.full(self.tree.n_classes + 1, -1, np.int32)
        a[0] = 0
        for k, lab in enumerate(self.labels, start=1):
            a[list(self.leaf_indices(lab))] = k
        return a

    def label_weights(self, leaf_weights=None) -> np.ndarray:
        """Loss weight of background and every label: ``(len(self) + 1,)``.

        A label's weight is its own weight times the mean of ``leaf_weights`` over its
        leaves (``leaf_weights`` has ``n_classes + 1`` entries, index 0 background; default all 1).
        """
        lw = np.ones(self.tree.n_classes + 1, np.float32) if leaf_weights is None else \
            np.asarray(leaf_weights, np.float32)
        if lw.shape != (self.tree.n_classes + 1,):
            raise ValueError(f"leaf_weights must have n_classes + 1 = {self.tree.n_classes + 1} entries, got {lw.shape}")
        w = np.empty(len(self) + 1, np.float32)
        w[0] = lw[0]
        for k, lab in enumerate(self.labels, start=1):
            w[k] = self._weights[lab] * lw[list(self.leaf_indices(lab))].mean()
        return w

    def label_probabilities(self, leaf_prob) -> np.ndarray:
        """Probability of background and of every label from leaf probabilities.

        Parameters
        ----------
        leaf_prob : array_like, shape (..., n_classes + 1)

        Returns
        -------
        ndarray, shape (..., len(self) + 1); column 0 background, column k label ``labels[k-1]``.
        Leaves covered by no label contribute to no column.
        """
        p = np.asarray(leaf_prob, np.float32)
        if p.shape[-1] != self.tree.n_classes + 1:
            raise ValueError(f"leaf_prob has {p.shape[-1]} channels, expected {self.tree.n_classes + 1}")
        return p @ self.membership_matrix().T
