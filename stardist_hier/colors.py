"""Display colours of class-tree nodes and label-set labels (no TensorFlow, no matplotlib).

The one place for colour logic: :meth:`stardist_hier.tree.ClassTree.color` derives a
node's colour with :func:`child_color` and :data:`PALETTE`; :mod:`stardist_hier.plotting`
colours labels with :func:`distinct_label_colors` (its public :func:`label_colors` and
:func:`node_colors` are re-exported there).
"""

from __future__ import annotations

import numpy as np

from .errors import TreeError

__all__ = ["PALETTE", "OUTSIDE_COLOR", "UNCERTAIN_COLOR", "ROOT_COLOR", "parse_color", "hex_color", "child_color",
           "common_ancestor", "node_colors", "distinct_label_colors"]

#: Colours of the root's children that have none of their own, and of labels whose
#: colour is taken by an earlier label (Tableau 10).
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))

#: Colour of the decision "outside the label set" (:data:`stardist_hier.classify.OUTSIDE`).
OUTSIDE_COLOR = (150, 150, 150)
#: Colour of the decision "uncertain" (:data:`stardist_hier.classify.UNCERTAIN`).
UNCERTAIN_COLOR = (90, 90, 90)
#: Colour of a root without a colour of its own.
ROOT_COLOR = (128, 128, 128)


def parse_color(value, *, where: str) -> tuple:
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


def hex_color(rgb) -> str:
    """``(r, g, b)`` -> ``"#rrggbb"``."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def child_color(parent_rgb, i: int, n: int) -> tuple:
    """Colour of the ``i``-th of ``n`` siblings without a colour: a shade of the parent's.

    Siblings spread from darker (``-35%``) to lighter (``+35%``); an only child takes
    its parent's colour.
    """
    base = np.asarray(parent_rgb, np.float64)
    t = 0.0 if n == 1 else -0.35 + 0.7 * i / (n - 1)  # -0.35 darker ... +0.35 lighter
    rgb = base + (255.0 - base) * t if t >= 0 else base * (1.0 + t)
    return tuple(int(round(v)) for v in np.clip(rgb, 0, 255))


def common_ancestor(tree, nodes) -> str:
    """The lowest common ancestor of ``nodes`` (one of them when it is an ancestor of the others)."""
    paths = [(n,) + tree.ancestors(n) for n in nodes]
    common = set(paths[0]).intersection(*map(set, paths[1:]))
    return next(n for n in paths[0] if n in common)


def node_colors(tree, nodes=None) -> dict:
    """``{node: (r, g, b)}`` for ``nodes`` (default every node of ``tree``), from :meth:`ClassTree.color`."""
    return {n: tuple(tree.color(n)) for n in (tree.nodes if nodes is None else nodes)}


def distinct_label_colors(label_set) -> dict:
    """A distinct ``(r, g, b)`` colour for every label of ``label_set``, in the order of its labels.

    A label naming one tree node takes that node's colour; a union of nodes takes the
    colour of their lowest common ancestor. Labels whose colour is already taken by an
    earlier label get the next unused colour of :data:`PALETTE`.
    """
    tree = label_set.tree
    out, used = {}, set()
    for lab in label_set.labels:
        nodes = label_set.nodes(lab)
        c = tuple(tree.color(nodes[0] if len(nodes) == 1 else common_ancestor(tree, nodes)))
        if c in used:
            c = next((p for p in PALETTE if p not in used), c)
        out[lab] = c
        used.add(c)
    return out
