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

The names live in modules by concept, all re-exported here (import them from here):
:mod:`stardist_hier.class_tree` (the tree), :mod:`stardist_hier.label_sets`,
:mod:`stardist_hier.taxonomy` (taxonomies, the default one),
:mod:`stardist_hier.taxonomy_files` (reading JSON/YAML files) and
:mod:`stardist_hier.colors` (display colours).
"""

from __future__ import annotations

from .class_tree import BACKGROUND, IGNORE, MAX_TREE_DEPTH, ClassTree  # noqa: F401
from .colors import PALETTE as _PALETTE  # noqa: F401 (the names below: importable from here as before)
from .colors import hex_color as _hex  # noqa: F401
from .colors import parse_color as _parse_color  # noqa: F401
from .errors import LabelSetError, TreeError
from .label_sets import LABEL_SET_KEYS, LabelSet  # noqa: F401
from .taxonomy import TAXONOMY_KEYS, Taxonomy, default_taxonomy  # noqa: F401
from .taxonomy_files import COLORS_KEY, _FileNotFound  # noqa: F401
from .taxonomy_files import read_mapping as _read_mapping  # noqa: F401
from .taxonomy_files import with_colors as _with_colors  # noqa: F401

__all__ = [
    "ClassTree",
    "LabelSet",
    "Taxonomy",
    "TreeError",
    "LabelSetError",
    "IGNORE",
    "default_taxonomy",
]

