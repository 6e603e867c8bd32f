"""Taxonomies: a class tree with named label sets, and the default one (no TensorFlow).

A :class:`Taxonomy` bundles a tree with named label sets; the default one
(:func:`default_taxonomy`) ships as ``stardist_hier/data/default_taxonomy.yaml``.
Files are read by :mod:`stardist_hier.taxonomy_files`. Import from :mod:`stardist_hier.tree`.
"""

from __future__ import annotations

from importlib import resources
from typing import Mapping

from .class_tree import ClassTree
from .errors import LabelSetError, TreeError
from .label_sets import LabelSet
from .taxonomy_files import COLORS_KEY, read_mapping, with_colors

__all__ = ["Taxonomy", "default_taxonomy", "TAXONOMY_KEYS"]

TAXONOMY_KEYS = ("tree", "label_sets", "name", "description", "colors")


# ----------------------------------------------------------------------- taxonomy
class Taxonomy:
    """A class tree with named label sets.

    Parameters
    ----------
    tree : ClassTree
    label_sets : mapping of str to LabelSet
    """

    #: Pickles and ``repr`` name the class where it is imported from, :mod:`stardist_hier.tree`.
    __module__ = "stardist_hier.tree"

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
            tree = ClassTree.from_dict(with_colors(d["tree"], d.get(COLORS_KEY)))
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
        return cls.from_dict(read_mapping(path), source=str(path))

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
