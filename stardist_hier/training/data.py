"""Several datasets' training and validation images in one place (no TensorFlow).

:class:`MultiDataset` concatenates the training images of all datasets into the one
``X``/``Y``/``classes``/``label_sets`` list that :meth:`StarDist2DHier.train` takes, and
remembers which indices belong to which dataset (the ``groups`` of a
:class:`~stardist_hier.training.DatasetMixer`). Validation images stay per dataset,
so every episode can be validated on its own datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..tree import LabelSet

__all__ = ["Part", "MultiDataset", "normalize_image"]


def normalize_image(img, pmin=1.0, pmax=99.8, *, normalization=None):
    """One image normalised for training or prediction, float32.

    Parameters
    ----------
    img : array_like, (H, W) or (H, W, C)
    pmin, pmax : float
        Percentiles of the default normalisation (per channel), when ``normalization`` is not given.
    normalization : dict or Normalization, optional
        A model's ``hier_normalize`` (:mod:`stardist_hier.normalization`); it wins over
        ``pmin``/``pmax``. This is :func:`stardist_hier.normalization.normalize`, the
        function every prediction path applies too.
    """
    from ..normalization import Normalization, normalize

    if normalization is None:
        normalization = Normalization("percentile", float(pmin), float(pmax), "per-channel")
    return normalize(img, normalization)


@dataclass
class Part:
    """Images of one dataset (or split): parallel lists.

    Attributes
    ----------
    X : list of ndarray
        Images (normalised float32).
    Y : list of ndarray
        Instance label images (int32; negative = ignore).
    classes : list of dict
        ``{instance id: label name or None}`` per image.
    label_sets : list of LabelSet
        The label set of every image.
    names : list of str
        A name per image (for overlays and error messages).
    """

    X: list
    Y: list
    classes: list
    label_sets: list
    names: list = field(default_factory=list)

    def __post_init__(self):
        n = len(self.X)
        if not (len(self.Y) == len(self.classes) == len(self.label_sets) == n):
            raise ValueError(f"Part: {n} images, {len(self.Y)} label images, {len(self.classes)} class dicts, "
                             f"{len(self.label_sets)} label sets")
        if not self.names:
            self.names = [f"image {i}" for i in range(n)]
        for ls in self.label_sets:
            if not isinstance(ls, LabelSet):
                raise TypeError(f"Part: label sets must be LabelSet objects, got {type(ls).__name__}")

    def __len__(self):
        return len(self.X)

    @classmethod
    def from_samples(cls, samples, taxonomy, *, normalize=True, label_set=None) -> "Part":
        """Build from :class:`~stardist_hier.datasets.record.Sample` records.

        ``label_set`` (a LabelSet) overrides the samples' own label set names.
        ``normalize``: ``True`` (the default normalisation), a model's ``hier_normalize``
        (dict or :class:`~stardist_hier.normalization.Normalization`), or ``False`` (as float32).
        """
        X, Y, C, L, N = [], [], [], [], []
        spec = None if (normalize is True or normalize is False) else normalize
        for i, s in enumerate(samples):
            ls = label_set if label_set is not None else taxonomy[s.label_set]
            X.append(normalize_image(s.image, normalization=spec) if normalize is not False
                     else np.asarray(s.image, np.float32))
            Y.append(s.training_labels())
            C.append(dict(s.classes))
            L.append(ls)
            N.append(str(s.meta.get("name") or f"{s.meta.get('dataset', 'image')} {s.meta.get('index', i)}"))
        return cls(X, Y, C, L, N)

    @classmethod
    def concat(cls, parts: Sequence["Part"]) -> "Part":
        out = cls([], [], [], [], [])
        for p in parts:
            out.X += list(p.X)
            out.Y += list(p.Y)
            out.classes += list(p.classes)
            out.label_sets += list(p.label_sets)
            out.names += list(p.names)
        return out


class MultiDataset:
    """Training and validation parts of named datasets.

    Parameters
    ----------
    train : mapping of str to Part
        Training images of every dataset.
    val : mapping of str to Part
        Validation images of every dataset (same names as ``train``).

    Attributes
    ----------
    X, Y, classes, label_sets : list
        All training images, dataset after dataset (in the order of ``train``).
    groups : dict of str to ndarray
        Indices of every dataset's images in those lists.
    """

    def __init__(self, train: Mapping[str, Part], val: Mapping[str, Part]):
        if not train:
            raise ValueError("MultiDataset needs at least one dataset")
        missing = [k for k in train if k not in val or len(val[k]) == 0]
        if missing:
            raise ValueError(f"datasets without validation images: {missing}")
        for k, p in train.items():
            if len(p) == 0:
                raise ValueError(f"dataset {k!r} has no training images")
        self.train = dict(train)
        self.val = {k: val[k] for k in train}
        all_train = Part.concat(list(self.train.values()))
        self.X, self.Y, self.classes, self.label_sets = all_train.X, all_train.Y, all_train.classes, \
            all_train.label_sets
        self.groups, start = {}, 0
        for k, p in self.train.items():
            self.groups[k] = np.arange(start, start + len(p))
            start += len(p)

    @property
    def names(self) -> tuple:
        return tuple(self.train)

    def validation(self, names=None) -> Part:
        """The validation images of ``names`` (default all datasets), concatenated."""
        names = self.names if names is None else names
        return Part.concat([self.val[k] for k in names])

    def __repr__(self):
        return "MultiDataset(" + ", ".join(f"{k}: {len(self.train[k])} train / {len(self.val[k])} val"
                                           for k in self.train) + ")"
