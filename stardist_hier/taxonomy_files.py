"""Reading taxonomy and tree files (JSON or YAML) into mappings (no TensorFlow).

:func:`read_mapping` is the one reader of ``.json``/``.yaml``/``.yml`` taxonomy and tree
files (duplicate keys refused); :func:`with_colors` folds a taxonomy's top-level
``colors`` into its tree mapping. Used by :meth:`stardist_hier.tree.ClassTree.from_file`
and :meth:`stardist_hier.tree.Taxonomy.from_file`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from .errors import TreeError, UserError

__all__ = ["COLORS_KEY", "read_mapping", "with_colors"]

#: Key of the optional node colours in tree and taxonomy mappings.
COLORS_KEY = "colors"


def with_colors(tree_spec, colors):
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


def read_mapping(path) -> dict:
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
