"""The record every dataset reader returns (no TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Sample"]


@dataclass
class Sample:
    """One image with instance labels, their class labels and the dataset's label set.

    Attributes
    ----------
    image : ndarray, (H, W, 3) uint8
        RGB image.
    labels : ndarray, (H, W) int32
        Instance label image, 0 = background, instances 1..n.
    classes : dict of int to (str or None)
        Instance id -> label name in ``label_set`` (``None``: ignore this nucleus).
        Segmentation-only data maps every instance to the root label.
    label_set : str
        Name of the dataset's label set in the taxonomy (e.g. ``"pannuke"``).
    ignore : ndarray, (H, W) bool, or None
        Ignore regions (neither trained on nor scored), e.g. MoNuSAC "Ambiguous".
    meta : dict
        ``dataset``, ``source`` (file), ``tissue``, ``split``, ``mpp`` (microns per
        pixel) where known, plus reader-specific keys.
    """

    image: np.ndarray
    labels: np.ndarray
    classes: dict
    label_set: str
    ignore: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def training_labels(self) -> np.ndarray:
        """Instance labels with ignore regions set to -1 (StarDist's "no loss" convention)."""
        y = self.labels.astype(np.int32, copy=True)
        if self.ignore is not None:
            y[self.ignore] = -1
        return y
