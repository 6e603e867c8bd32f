"""The class tree: :class:`ClassTree` (no TensorFlow).

A :class:`ClassTree` orders nucleus classes from the root ("nucleus") down to the
leaves. The network predicts one softmax channel per leaf plus channel 0 for
background, so a leaf's *class index* is its 1-based position in
:attr:`ClassTree.leaves`. Import it from :mod:`stardist_hier.tree`.
"""

from __future__ import annotations

import json
from typing import Mapping

import numpy as np

from .colors import PALETTE, ROOT_COLOR, child_color, hex_color, parse_color
from .errors import TreeError, UserError, shorten
from .taxonomy_files import COLORS_KEY, read_mapping, with_colors

__all__ = ["ClassTree", "IGNORE", "BACKGROUND", "MAX_TREE_DEPTH"]

#: Marker used in label-set mappings for labels whose nuclei are ignored
#: (neither trained on nor scored), e.g. MoNuSAC "Ambiguous".
IGNORE = "ignore"

BACKGROUND = "background"

#: Deepest class tree accepted (levels below the root); real trees have a handful.
MAX_TREE_DEPTH = 50


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

    #: Pickles and ``repr`` name the class where it is imported from, :mod:`stardist_hier.tree`.
    __module__ = "stardist_hier.tree"

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
            self._colors[node] = parse_color(value, where=f"class tree colors: node {node!r}")
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
        d = read_mapping(path)
        if "tree" in d:
            d = with_colors(d["tree"], d.get(COLORS_KEY))
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
            d[COLORS_KEY] = {n: hex_color(c) for n, c in self._colors.items()}
        return d

    def _structure_dict(self) -> dict:
        def sub(n):
            ch = self._children[n]
            return {c: sub(c) for c in ch} if ch else None

        return {self._root: sub(self._root)}

    @property
    def colors(self) -> dict:
        """Explicitly given colours, ``{node: "#rrggbb"}`` (nodes without one are absent)."""
        return {n: hex_color(c) for n, c in self._colors.items()}

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
            return ROOT_COLOR
        siblings = self._children[parent]
        i = siblings.index(node)
        if parent == self._root and self._root not in self._colors:
            return PALETTE[i % len(PALETTE)]
        return child_color(self.color(parent), i, len(siblings))

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
