"""``Nuclei``: the predicted nuclei of one image, tile or slide, as plain arrays (no TensorFlow).

This is the one record that flows from prediction (:mod:`stardist_hier.predict`) to the
writers (GeoJSON, nucleus tables, label images). Coordinates are in **level-0 pixels**
of the input (the full-resolution image or slide), rows then columns, as StarDist's
``coord`` and ``points``. A slide's nuclei arrive as a stream of ``Nuclei`` chunks
(one per tile); writers accept any iterable of chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import classify
from ..tree import ClassTree, LabelSet

__all__ = ["Nuclei"]


@dataclass
class Nuclei:
    """Predicted nuclei in level-0 pixel coordinates.

    Attributes
    ----------
    ids : ndarray of int64, (N,)
        Nucleus ids, unique within one image or slide (1-based).
    coord : ndarray of float32, (N, 2, n_rays)
        Polygon vertices (row, column) of every nucleus.
    points : ndarray of float32, (N, 2)
        Star centre (row, column) of every nucleus.
    prob : ndarray of float32, (N,)
        Object probability.
    class_prob : ndarray of float32, (N, n_classes + 1) or None
        Leaf probabilities, column 0 background (``None`` for a segmentation-only model).
    tree : ClassTree or None
        The model's class tree.
    mpp : float or None
        Level-0 microns per pixel, when known.
    """

    ids: np.ndarray
    coord: np.ndarray
    points: np.ndarray
    prob: np.ndarray
    class_prob: np.ndarray | None = None
    tree: ClassTree | None = None
    mpp: float | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        self.ids = np.asarray(self.ids, np.int64).reshape(-1)
        n = len(self.ids)
        coord = np.asarray(self.coord, np.float32)
        if n:
            self.coord = coord.reshape(n, 2, -1)
        else:
            self.coord = np.zeros((0, 2, coord.shape[-1] if coord.ndim == 3 else 0), np.float32)
        self.points = np.asarray(self.points, np.float32).reshape(n, 2)
        self.prob = np.asarray(self.prob, np.float32).reshape(n)
        if self.class_prob is not None:
            cp = np.asarray(self.class_prob, np.float32)
            if n:
                cp = cp.reshape(n, -1)
            else:
                width = cp.shape[-1] if cp.ndim == 2 else (0 if self.tree is None else self.tree.n_classes + 1)
                cp = cp.reshape(0, width)
            self.class_prob = cp
            if self.tree is not None and self.class_prob.shape[1] != self.tree.n_classes + 1:
                raise ValueError(f"class_prob has {self.class_prob.shape[1]} columns, the tree has "
                                 f"{self.tree.n_classes} leaves (+ background)")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls, *, n_rays: int = 0, tree: ClassTree | None = None, mpp=None) -> "Nuclei":
        ncls = None if tree is None else np.zeros((0, tree.n_classes + 1), np.float32)
        return cls(np.zeros(0, np.int64), np.zeros((0, 2, n_rays), np.float32), np.zeros((0, 2), np.float32),
                   np.zeros(0, np.float32), ncls, tree, mpp)

    @classmethod
    def concatenate(cls, chunks) -> "Nuclei":
        """One ``Nuclei`` from several chunks of the same image (same tree, same mpp)."""
        chunks = list(chunks)
        if not chunks:
            return cls.empty()
        nonempty = [c for c in chunks if len(c)]
        chunks = nonempty or chunks[:1]
        first = chunks[0]
        cp = None if first.class_prob is None else np.concatenate([c.class_prob for c in chunks])
        return cls(np.concatenate([c.ids for c in chunks]), np.concatenate([c.coord for c in chunks]),
                   np.concatenate([c.points for c in chunks]), np.concatenate([c.prob for c in chunks]),
                   cp, first.tree, first.mpp)

    # ------------------------------------------------------------------ geometry
    @property
    def area(self) -> np.ndarray:
        """Polygon area in level-0 pixels (shoelace formula), (N,)."""
        if "area" not in self._cache:
            y, x = self.coord[:, 0].astype(np.float64), self.coord[:, 1].astype(np.float64)
            a = 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1))
            self._cache["area"] = a
        return self._cache["area"]

    @property
    def centroid(self) -> np.ndarray:
        """Polygon centroid (row, column) in level-0 pixels, (N, 2); the star centre for degenerate polygons."""
        if "centroid" not in self._cache:
            y, x = self.coord[:, 0].astype(np.float64), self.coord[:, 1].astype(np.float64)
            y1, x1 = np.roll(y, -1, axis=1), np.roll(x, -1, axis=1)
            cross = x * y1 - x1 * y
            a = cross.sum(axis=1) / 2
            with np.errstate(invalid="ignore", divide="ignore"):
                cy = ((y + y1) * cross).sum(axis=1) / (6 * a)
                cx = ((x + x1) * cross).sum(axis=1) / (6 * a)
            c = np.stack([cy, cx], axis=1)
            bad = ~np.isfinite(c).all(axis=1) | (np.abs(a) < 1e-9)
            c[bad] = self.points[bad]
            self._cache["centroid"] = c
        return self._cache["centroid"]

    # ------------------------------------------------------------------ classes
    def node_prob(self) -> tuple:
        """``(names, probabilities)`` of every tree node (column 0 background), (N, len(nodes) + 1)."""
        self._require_classes()
        return self.tree.node_names(), self.tree.node_probabilities(self.class_prob)

    def leaves(self) -> list:
        """Most probable leaf of every nucleus (background excluded)."""
        self._require_classes()
        return classify.leaf_decisions(self.class_prob, self.tree)[1]

    def labels(self, label_set: LabelSet) -> tuple:
        """``(names, label_prob)`` at a dataset's label set (summed leaf probabilities).

        ``names`` is ``"outside label set"`` where the leaves no label covers hold more
        probability than any label. ``label_prob`` has column 0 background, then one
        column per label of ``label_set``. See :meth:`label_set_decisions` for the
        outside probability and abstention.
        """
        d = self.label_set_decisions(label_set)
        return d.names, d.label_prob

    def label_set_decisions(self, label_set: LabelSet, *, abstain: float | None = None):
        """Labels at a label set with the probability outside it and optional abstention
        (:func:`stardist_hier.classify.label_set_decisions`)."""
        self._require_classes()
        if not isinstance(label_set, LabelSet) or label_set.tree != self.tree:
            raise ValueError(f"label set {getattr(label_set, 'name', label_set)!r} is not on the model's tree")
        return classify.label_set_decisions(self.class_prob, label_set, abstain=abstain)

    def abstain(self, threshold: float) -> list:
        """Deepest node on each nucleus's most probable path whose probability reaches ``threshold``."""
        self._require_classes()
        return classify.abstain_to_ancestor(self.class_prob, self.tree, threshold)

    def _require_classes(self):
        if self.class_prob is None or self.tree is None:
            raise ValueError("these nuclei come from a segmentation-only model: no class probabilities")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_result(cls, res: dict, *, tree=None, offset=(0, 0), scale: float = 1.0, ids=None, mpp=None):
        """From a ``predict_instances`` result dict (``coord``, ``points``, ``prob``, ``class_prob``).

        ``scale`` multiplies coordinates (model pixels -> level-0 pixels) before ``offset``
        (row, column, level-0 pixels) is added. ``ids`` default to ``1..N``.
        """
        coord = np.asarray(res["coord"], np.float32)
        n = len(coord)
        off = np.asarray(offset, np.float32)
        coord = coord * np.float32(scale) + off[None, :, None] if n else coord.reshape(0, 2, coord.shape[-1] if coord.ndim == 3 else 0)
        points = np.asarray(res["points"], np.float32).reshape(n, 2) * np.float32(scale) + off[None, :]
        cp = res.get("class_prob")
        return cls(np.arange(1, n + 1) if ids is None else ids, coord, points,
                   np.asarray(res["prob"], np.float32), None if cp is None else np.asarray(cp, np.float32),
                   tree, mpp)
