"""Coarse-to-fine class trees and dataset label sets (no TensorFlow).

A :class:`ClassTree` orders nucleus classes from the root ("nucleus") down to the
leaves. The network predicts one softmax channel per leaf plus channel 0 for
background, so a leaf's *class index* is its 1-based position in
:attr:`ClassTree.leaves`.

A :class:`LabelSet` is what one dataset uses to label its nuclei: every label
names one tree node, a union of nodes, or marks an ignore region. Labels of one
set must not share leaves, but need not cover every leaf.

A :class:`Taxonomy` bundles a tree with named label sets; the default one
(:func:`default_taxonomy`) ships as ``stardist_hier/data/default_taxonomy.yaml``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from .errors import UserError, shorten

__all__ = [
    "ClassTree",
    "LabelSet",
    "Taxonomy",
    "TreeError",
    "LabelSetError",
    "IGNORE",
    "default_taxonomy",
]

#: Marker used in label-set mappings for labels whose nuclei are ignored
#: (neither trained on nor scored), e.g. MoNuSAC "Ambiguous".
IGNORE = "ignore"

BACKGROUND = "background"

#: Deepest class tree accepted (levels below the root); real trees have a handful.
MAX_TREE_DEPTH = 50


LABEL_SET_KEYS = ("labels", "codes", "weights", "name")
TAXONOMY_KEYS = ("tree", "label_sets", "name", "description", "colors")


class TreeError(UserError):
    """Raised for an invalid class tree."""


class LabelSetError(UserError):
    """Raised for an invalid label set or an unknown label."""


# --------------------------------------------------------------------------- tree
class ClassTree:
    """A rooted tree of class names whose leaves are the model's classes.

    Parameters
    ----------
    parents : mapping of str to str or None
        ``{node: parent}`` for every node; exactly one node (the root) has parent
        ``None``. Child order is the order in which nodes appear in the mapping.
    colors : mapping of str to str, optional
        Display colour of some nodes, ``{node: "#rrggbb"}`` (or ``[r, g, b]`` with
        0-255 integers). Nodes without one get a shade of their parent's colour, or
        a colour of a fixed palette (see :meth:`color`). Colours are presentation
        only: they take no part in tree equality.

    Notes
    -----
    Build trees with :meth:`from_dict`, :meth:`from_json`, :meth:`from_yaml` or
    :meth:`from_file`. A tree is immutable once built.
    """

    def __init__(self, parents: Mapping[str, str | None], *, colors: Mapping | None = None):
        parents = dict(parents)
        if len(parents) == 0:
            raise TreeError("class tree is empty: it needs a root and at least one leaf")
        for node, parent in parents.items():
            if not isinstance(node, str) or node == "":
                raise TreeError(f"class tree: node names must be non-empty strings, got {node!r}")
            if node in (BACKGROUND, IGNORE):
                raise TreeError(f"class tree: {node!r} is reserved and cannot name a node")
            if parent is not None and parent not in parents:
                raise TreeError(f"class tree: node {node!r} has unknown parent {parent!r}")
        roots = [n for n, p in parents.items() if p is None]
        if len(roots) != 1:
            raise TreeError(f"class tree must have exactly one root, found {len(roots)}: {roots}")
        # cycle check: walking up from every node must reach the root (and not too far)
        depth = {}
        for node in parents:
            path = [node]
            seen = {node}
            p = parents[node]
            while p is not None and p not in depth:
                if p in seen:
                    raise TreeError(f"class tree has a cycle through node {p!r}")
                seen.add(p)
                path.append(p)
                p = parents[p]
            d = -1 if p is None else depth[p]
            for n in reversed(path):
                d += 1
                depth[n] = d
                if d > MAX_TREE_DEPTH:
                    raise TreeError(f"class tree is more than {MAX_TREE_DEPTH} levels deep (at node "
                                    f"{shorten(n)}); refused")
        self._parent = parents
        self._root = roots[0]
        self._children: dict[str, list[str]] = {n: [] for n in parents}
        for node, parent in parents.items():
            if parent is not None:
                self._children[parent].append(node)
        # depth-first pre-order: nodes, and leaves in that order
        order: list[str] = []
        todo = [self._root]
        while todo:  # iterative: no recursion limit
            n = todo.pop()
            order.append(n)
            todo.extend(reversed(self._children[n]))
        self._nodes = tuple(order)
        self._leaves = tuple(n for n in order if not self._children[n])
        if self._leaves == (self._root,):
            raise TreeError("class tree needs at least one leaf below the root")
        self._leaf_index = {leaf: i + 1 for i, leaf in enumerate(self._leaves)}
        self._leaf_sets = {}
        for n in reversed(order):
            if self._children[n]:
                s = frozenset().union(*(self._leaf_sets[c] for c in self._children[n]))
            else:
                s = frozenset((n,))
            self._leaf_sets[n] = s
        self._colors: dict[str, tuple] = {}
        for node, value in dict(colors or {}).items():
            if node not in parents:
                raise TreeError(f"class tree colors: unknown node {node!r}; known nodes: {', '.join(self._nodes)}")
            self._colors[node] = _parse_color(value, where=f"class tree colors: node {node!r}")
        self._color_cache: dict[str, tuple] = {}

    # ---- construction
    @classmethod
    def from_dict(cls, d: Mapping) -> "ClassTree":
        """Build a tree from nested mappings.

        ``{"nucleus": {"epithelial": ["normal", "tumor"], "other": None}}``: a
        mapping's keys are children, a list holds leaves, ``None`` (or an empty
        mapping or list) marks a leaf. The top level must have a single key, the root,
        plus optionally ``"colors": {node: "#rrggbb"}`` (see :meth:`color`), as
        :meth:`to_dict` writes it for a tree with colours.
        A mapping ``{"parents": {...}}`` (optionally with ``"colors"``) is also accepted.
        """
        if not isinstance(d, Mapping):
            raise TreeError(f"class tree must be a mapping, got {type(d).__name__}")
        if len(d) == 0:
            raise TreeError("class tree is empty: it needs a root and at least one leaf")
        colors = None
        if len(d) >= 2 and COLORS_KEY in d:
            colors = d[COLORS_KEY]
            if colors is not None and not isinstance(colors, Mapping):
                raise TreeError(f"class tree: {COLORS_KEY!r} must map node names to '#rrggbb', got {colors!r}")
            d = {k: v for k, v in d.items() if k != COLORS_KEY}
        if set(d.keys()) == {"parents"} and isinstance(d["parents"], Mapping):
            return cls(d["parents"], colors=colors)
        if len(d) != 1:
            raise TreeError(f"class tree must have a single root at the top level, found {list(d.keys())}")
        parents: dict[str, str | None] = {}

        def add(name, parent):
            if not isinstance(name, str):
                raise TreeError(f"class tree: node names must be strings, got {shorten(name)}")
            if name in parents:
                raise TreeError(f"class tree: duplicate node name {shorten(name)}")
            parents[name] = parent

        (root, sub), = d.items()
        todo = [(root, sub, None, 0)]  # iterative, depth-first pre-order (no recursion limit)
        while todo:
            name, sub, parent, level = todo.pop()
            add(name, parent)
            if level > MAX_TREE_DEPTH:
                raise TreeError(f"class tree is more than {MAX_TREE_DEPTH} levels deep (at node "
                                f"{shorten(name)}); refused")
            children = []
            if sub is None:
                pass
            elif isinstance(sub, Mapping):
                children = [(k, v) for k, v in sub.items()]
            elif isinstance(sub, (list, tuple)):
                for item in sub:
                    if isinstance(item, Mapping):
                        children += [(k, v) for k, v in item.items()]
                    else:
                        children.append((item, None))
            else:
                raise TreeError(f"class tree: children of {shorten(name)} must be a mapping, list or null, "
                                f"got {shorten(sub)}")
            todo.extend((k, v, name, level + 1) for k, v in reversed(children))
        return cls(parents, colors=colors)

    @classmethod
    def from_json(cls, text: str) -> "ClassTree":
        """Build a tree from a JSON string (see :meth:`from_dict`)."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_yaml(cls, text: str) -> "ClassTree":
        """Build a tree from a YAML string (see :meth:`from_dict`); duplicate keys are refused."""
        from .io import load_yaml

        try:
            d = load_yaml(text, where="class tree YAML")
        except UserError as e:
            raise TreeError(str(e)) from None
        return cls.from_dict(d)

    @classmethod
    def from_file(cls, path) -> "ClassTree":
        """Read a tree from a ``.json``, ``.yaml`` or ``.yml`` file.

        A file holding a whole taxonomy (keys ``tree`` and ``label_sets``) is accepted too.
        """
        d = _read_mapping(path)
        if "tree" in d:
            d = _with_colors(d["tree"], d.get(COLORS_KEY))
        try:
            return cls.from_dict(d)
        except TreeError as e:
            raise TreeError(f"{path}: {e}") from None

    def to_dict(self) -> dict:
        """Nested-mapping form, accepted by :meth:`from_dict` (round-trips exactly).

        The explicitly given colours, if any, ride along under the key ``"colors"``
        next to the root, so they are saved in a model's ``config.json``.
        """
        d = self._structure_dict()
        if self._colors:
            d[COLORS_KEY] = {n: _hex(c) for n, c in self._colors.items()}
        return d

    def _structure_dict(self) -> dict:
        def sub(n):
            ch = self._children[n]
            return {c: sub(c) for c in ch} if ch else None

        return {self._root: sub(self._root)}

    @property
    def colors(self) -> dict:
        """Explicitly given colours, ``{node: "#rrggbb"}`` (nodes without one are absent)."""
        return {n: _hex(c) for n, c in self._colors.items()}

    def color(self, node: str) -> tuple:
        """Display colour of a node as an ``(r, g, b)`` tuple of 0-255 integers.

        A node's own colour (``colors``) if it has one; otherwise a shade of its
        parent's colour (siblings spread from darker to lighter); a child of the root
        without a colour takes a colour of a fixed palette by its position. The root
        defaults to grey. Deterministic: the same tree always gives the same colours.
        """
        self._check(node)
        if node not in self._color_cache:
            self._color_cache[node] = self._derive_color(node)
        return self._color_cache[node]

    def _derive_color(self, node: str) -> tuple:
        if node in self._colors:
            return self._colors[node]
        parent = self._parent[node]
        if parent is None:
            return (128, 128, 128)
        siblings = self._children[parent]
        i = siblings.index(node)
        if parent == self._root and self._root not in self._colors:
            return _PALETTE[i % len(_PALETTE)]
        base = np.asarray(self.color(parent), np.float64)
        n = len(siblings)
        t = 0.0 if n == 1 else -0.35 + 0.7 * i / (n - 1)  # -0.35 darker ... +0.35 lighter
        rgb = base + (255.0 - base) * t if t >= 0 else base * (1.0 + t)
        return tuple(int(round(v)) for v in np.clip(rgb, 0, 255))

    def to_json(self) -> str:
        """JSON string of :meth:`to_dict`."""
        return json.dumps(self.to_dict())

    # ---- queries
    @property
    def root(self) -> str:
        """Name of the root node."""
        return self._root

    @property
    def nodes(self) -> tuple:
        """All node names in depth-first pre-order (root first)."""
        return self._nodes

    @property
    def leaves(self) -> tuple:
        """Leaf names; leaf ``leaves[i]`` is class index ``i + 1`` (0 is background)."""
        return self._leaves

    @property
    def n_classes(self) -> int:
        """Number of leaves (the model's ``n_classes``; the softmax has one more channel)."""
        return len(self._leaves)

    def __contains__(self, name) -> bool:
        return name in self._parent

    def __eq__(self, other) -> bool:
        # colours are presentation only: trees with the same structure are equal
        return isinstance(other, ClassTree) and self._structure_dict() == other._structure_dict()

    def __hash__(self):
        return hash(json.dumps(self._structure_dict()))

    def __repr__(self) -> str:
        return f"ClassTree(root={self._root!r}, n_nodes={len(self._nodes)}, n_leaves={len(self._leaves)})"

    def _check(self, name) -> str:
        if name not in self._parent:
            raise TreeError(f"unknown tree node {name!r}; known nodes: {', '.join(self._nodes)}")
        return name

    def parent(self, name: str):
        """Parent of ``name`` (``None`` for the root)."""
        return self._parent[self._check(name)]

    def children(self, name: str) -> tuple:
        """Children of ``name`` in tree order."""
        return tuple(self._children[self._check(name)])

    def is_leaf(self, name: str) -> bool:
        return not self._children[self._check(name)]

    def ancestors(self, name: str) -> tuple:
        """Ancestors of ``name`` from its parent up to the root."""
        out = []
        p = self._parent[self._check(name)]
        while p is not None:
            out.append(p)
            p = self._parent[p]
        return tuple(out)

    def depth(self, name: str) -> int:
        """Number of edges between ``name`` and the root."""
        return len(self.ancestors(name))

    def leaf_set(self, name: str) -> frozenset:
        """Names of the leaves under ``name`` (a leaf's set is itself)."""
        return self._leaf_sets[self._check(name)]

    def leaf_index(self, leaf: str) -> int:
        """Class index (1-based) of a leaf."""
        self._check(leaf)
        if leaf not in self._leaf_index:
            raise TreeError(f"{leaf!r} is not a leaf of the class tree")
        return self._leaf_index[leaf]

    def leaf_indices(self, name: str) -> tuple:
        """Sorted class indices (1-based) of the leaves under ``name``."""
        return tuple(sorted(self._leaf_index[x] for x in self.leaf_set(name)))

    def node_matrix(self) -> np.ndarray:
        """0/1 matrix of shape ``(len(nodes) + 1, n_classes + 1)``.

        Row 0 is background (column 0 only); row ``r`` (``r >= 1``) is node
        ``nodes[r-1]`` with ones at the class indices of its leaves. Multiplying leaf
        probabilities by its transpose gives the probability of every node.
        """
        if getattr(self, "_node_matrix", None) is None:
            m = np.zeros((len(self._nodes) + 1, self.n_classes + 1), np.float32)
            m[0, 0] = 1
            for r, n in enumerate(self._nodes, start=1):
                m[r, list(self.leaf_indices(n))] = 1
            m.setflags(write=False)
            self._node_matrix = m
        return self._node_matrix

    def node_names(self) -> tuple:
        """Row names of :meth:`node_matrix`: ``("background",) + nodes``."""
        return (BACKGROUND,) + self._nodes

    def node_probabilities(self, leaf_prob) -> np.ndarray:
        """Probability of every node (and background) from leaf probabilities.

        Parameters
        ----------
        leaf_prob : array_like, shape (..., n_classes + 1)
            Softmax output with channel 0 = background.

        Returns
        -------
        ndarray, shape (..., len(nodes) + 1)
            Columns as in :meth:`node_names`.
        """
        p = np.asarray(leaf_prob, np.float32)
        if p.shape[-1] != self.n_classes + 1:
            raise ValueError(
                f"leaf_prob has {p.shape[-1]} channels, expected n_classes + 1 = {self.n_classes + 1}")
        return p @ self.node_matrix().T

    def cover(self, leaves: Iterable[str]) -> tuple:
        """Smallest set of nodes whose leaf sets are exactly a union equal to ``leaves``."""
        target = frozenset(leaves)
        out = []

        def visit(n):
            s = self._leaf_sets[n]
            if s <= target:
                out.append(n)
            elif s & target:
                for c in self._children[n]:
                    visit(c)

        visit(self._root)
        return tuple(out)


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


# ----------------------------------------------------------------------- taxonomy
class Taxonomy:
    """A class tree with named label sets.

    Parameters
    ----------
    tree : ClassTree
    label_sets : mapping of str to LabelSet
    """

    def __init__(self, tree: ClassTree, label_sets: Mapping[str, LabelSet] | None = None):
        self.tree = tree
        self._sets = dict(label_sets or {})
        for k, ls in self._sets.items():
            if ls.tree != tree:
                raise LabelSetError(f"label set {k!r} is defined on a different tree")

    @classmethod
    def from_dict(cls, d: Mapping, *, source: str = "taxonomy") -> "Taxonomy":
        """Build from ``{"tree": ..., "label_sets": {name: {"labels": ...} | {"same_as": other}}}``.

        An optional top-level ``"colors": {node: "#rrggbb"}`` gives the tree's display
        colours (:meth:`ClassTree.color`).
        """
        if not isinstance(d, Mapping) or "tree" not in d:
            raise TreeError(f"{source}: expected a mapping with key 'tree'")
        try:
            tree = ClassTree.from_dict(_with_colors(d["tree"], d.get(COLORS_KEY)))
        except TreeError as e:
            raise TreeError(f"{source}: {e}") from None
        extra = [k for k in d if k not in TAXONOMY_KEYS]
        if extra:
            from .errors import did_you_mean

            raise TreeError(f"{source}: unknown key {extra[0]!r}{did_you_mean(extra[0], TAXONOMY_KEYS)}; "
                            f"known: {', '.join(TAXONOMY_KEYS)}")
        if d.get("label_sets") is not None and not isinstance(d["label_sets"], Mapping):
            raise LabelSetError(f"{source}: 'label_sets' must be a mapping {{name: label set}}")
        raw = dict(d.get("label_sets") or {})
        sets = {}
        for name, spec in raw.items():
            if isinstance(spec, Mapping) and "same_as" in spec:
                other = spec["same_as"]
                if not isinstance(other, str) or other not in raw or not isinstance(raw[other], Mapping) \
                        or "same_as" in raw[other]:
                    raise LabelSetError(f"{source}: label set {name!r}: same_as names unknown label set {other!r}")
                spec = dict(raw[other], name=name)
            try:
                sets[name] = LabelSet.from_dict(tree, spec, name=name)
            except LabelSetError as e:
                raise LabelSetError(f"{source}: {e}") from None
        return cls(tree, sets)

    @classmethod
    def from_file(cls, path) -> "Taxonomy":
        """Read a taxonomy from a JSON or YAML file."""
        return cls.from_dict(_read_mapping(path), source=str(path))

    def to_dict(self) -> dict:
        return {"tree": self.tree.to_dict(),
                "label_sets": {k: {kk: vv for kk, vv in v.to_dict().items() if kk != "name"}
                               for k, v in self._sets.items()}}

    def __getitem__(self, name: str) -> LabelSet:
        if name == "root" and "root" not in self._sets:
            return LabelSet.root(self.tree)
        try:
            return self._sets[name]
        except KeyError:
            raise LabelSetError(
                f"unknown label set {name!r}; known: {', '.join(self._sets)}") from None

    def __contains__(self, name) -> bool:
        return name in self._sets

    def names(self) -> tuple:
        return tuple(self._sets)


def default_taxonomy() -> Taxonomy:
    """The default tree and dataset label sets (``data/default_taxonomy.yaml``)."""
    from .io import load_yaml

    text = resources.files("stardist_hier").joinpath("data/default_taxonomy.yaml").read_text()
    return Taxonomy.from_dict(load_yaml(text, where="default_taxonomy.yaml"), source="default_taxonomy.yaml")


#: Key of the optional node colours in tree and taxonomy mappings.
COLORS_KEY = "colors"

#: Colours of the root's children that have none of their own (Tableau 10).
_PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def _parse_color(value, *, where: str) -> tuple:
    """``"#rrggbb"`` or ``[r, g, b]`` (0-255) -> ``(r, g, b)`` ints; ``TreeError`` naming ``where``."""
    if isinstance(value, str):
        v = value.strip().lstrip("#")
        if len(v) == 6:
            try:
                return tuple(int(v[k:k + 2], 16) for k in (0, 2, 4))
            except ValueError:
                pass
    elif isinstance(value, (list, tuple)) and len(value) == 3:
        try:
            rgb = tuple(int(c) for c in value)
        except (TypeError, ValueError):
            rgb = None
        if rgb is not None and all(0 <= c <= 255 for c in rgb) and \
                all(float(c) == float(v) for c, v in zip(rgb, value)):
            return rgb
    raise TreeError(f"{where}: colour must be '#rrggbb' or [r, g, b] with integers 0-255, got {value!r}")


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _with_colors(tree_spec, colors):
    """A tree mapping with the taxonomy-level ``colors`` added (the tree's own win)."""
    if not colors or not isinstance(tree_spec, Mapping):
        return tree_spec
    if not isinstance(colors, Mapping):
        raise TreeError(f"{COLORS_KEY!r} must map node names to '#rrggbb', got {colors!r}")
    merged = dict(colors)
    merged.update(tree_spec.get(COLORS_KEY) or {})
    return {**{k: v for k, v in tree_spec.items() if k != COLORS_KEY}, COLORS_KEY: merged}


class _FileNotFound(TreeError, FileNotFoundError):
    """A taxonomy or tree file that does not exist (a user error, and a ``FileNotFoundError``)."""


def _read_mapping(path) -> dict:
    """A JSON/YAML file's top-level mapping; duplicate keys refused (:class:`TreeError` naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise _FileNotFound(f"{path}: no such file")
    if path.suffix.lower() == ".json":
        def no_duplicates(pairs):
            seen = {}
            for k, v in pairs:
                if k in seen:
                    raise TreeError(f"{path}: duplicate key {k!r}")
                seen[k] = v
            return seen

        try:
            d = json.loads(path.read_text(), object_pairs_hook=no_duplicates)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
            if isinstance(e, TreeError):
                raise
            why = "nested too deeply" if isinstance(e, RecursionError) else e
            raise TreeError(f"{path}: could not parse: {why}") from None
    else:
        from .io import load_yaml

        try:
            d = load_yaml(path)
        except UserError as e:
            raise TreeError(str(e)) from None
    if not isinstance(d, Mapping):
        raise TreeError(f"{path}: expected a mapping at the top level, got {type(d).__name__}")
    return d
