"""Checks for instance label images and per-image sequences of them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..label_image import check_label_image

__all__ = ["check_label_image", "check_same_shape", "as_image_list", "as_annotation_list", "check_pairs"]


def check_same_shape(a: np.ndarray, b: np.ndarray, *, names=("gt", "pred")) -> None:
    """Raise ``ValueError`` naming both arguments if ``a`` and ``b`` differ in shape."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {names[0]} has shape {a.shape}, {names[1]} has shape {b.shape}")


def as_image_list(images, *, name: str) -> list:
    """Turn one label image or a sequence of them into a list of checked arrays.

    A 2-D array is one image; any other array is iterated over its first axis (a
    stack of images, as in :func:`stardist.matching.matching_dataset`); lists and
    tuples hold one image each (pass a 3-D volume inside a list).
    """
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = [images]
    elif isinstance(images, (str, bytes, Mapping)) or np.isscalar(images):
        raise ValueError(f"{name}: expected a label image or a sequence of label images, "
                         f"got {type(images).__name__}")
    return [check_label_image(x, name=f"{name}[{i}]") for i, x in enumerate(images)]


def check_pairs(gt: list, pred: list, *, names=("gt", "pred")) -> None:
    """Raise ``ValueError`` unless both lists have the same length and shapes agree pairwise."""
    if len(gt) != len(pred):
        raise ValueError(f"{names[0]} has {len(gt)} images but {names[1]} has {len(pred)}")
    for i, (g, p) in enumerate(zip(gt, pred)):
        check_same_shape(g, p, names=(f"{names[0]}[{i}]", f"{names[1]}[{i}]"))


def as_annotation_list(annotations, n: int, *, name: str) -> list:
    """Per-image annotations (class maps, ``{id: class}`` mappings, probability arrays) as a list.

    A mapping or a 2-D array is the annotation of a single image; anything else is
    iterated. Raises ``ValueError`` unless there are ``n`` entries.
    """
    if isinstance(annotations, Mapping) or (isinstance(annotations, np.ndarray) and annotations.ndim == 2):
        annotations = [annotations]
    annotations = list(annotations)
    if len(annotations) != n:
        raise ValueError(f"{name} has {len(annotations)} entries for {n} images")
    return annotations
