"""Class annotations of instances: per-pixel class maps or ``{instance id: class}`` mappings.

Class values may be integers or strings; ``None`` and ``0`` mean "no class" (the
instance still counts for binary metrics but for no class).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .labels import check_label_image, check_same_shape
from .overlap import index_instances

__all__ = ["class_map", "instance_classes", "class_values"]


def _is_unclassified(v) -> bool:
    return v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v == 0)


def _check_map(labels: np.ndarray, classes, name: str) -> np.ndarray:
    cls = check_label_image(classes, name=name)
    check_same_shape(labels, cls, names=("labels", name))
    return cls


def class_values(classes, *, name: str = "classes") -> set:
    """Set of class values used by one annotation (pixel map or mapping), "no class" excluded."""
    if isinstance(classes, Mapping):
        return {v for v in classes.values() if not _is_unclassified(v)}
    return {int(v) for v in index_instances(check_label_image(classes, name=name))[1]}


def sorted_classes(values) -> list:
    """Class values in a stable order: numeric order for integers, else by name."""
    values = list(values)
    if all(isinstance(v, (int, np.integer)) for v in values):
        return sorted(int(v) for v in values)
    return sorted(values, key=str)


def class_map(labels, classes, *, codes: Mapping, name: str = "classes") -> np.ndarray:
    """Per-pixel class codes of one image.

    Parameters
    ----------
    labels : ndarray of int
        Instance label image.
    classes : ndarray of int or mapping
        Per-pixel class map of the same shape as ``labels``, or ``{instance id: class}``
        (keys may be ints or digit strings, as read from JSON; instances missing from
        the mapping have no class).
    codes : mapping
        ``{class value: code}`` with codes ``1..n``; values not in it get code 0.
    name : str, optional
        Argument name for error messages.

    Returns
    -------
    ndarray of intp, same shape as ``labels``
        Class code of every pixel; 0 on background and unclassified instances.
    """
    labels = np.asarray(labels)
    if isinstance(classes, Mapping):
        idx, ids, _ = index_instances(labels)
        by_id = {_instance_id(k, name): v for k, v in classes.items()}
        lut = np.zeros(len(ids) + 1, np.intp)
        for k, i in enumerate(ids, start=1):
            v = by_id.get(int(i))
            lut[k] = 0 if _is_unclassified(v) else codes.get(v, 0)
        return lut[idx].reshape(labels.shape)
    cls = _check_map(labels, classes, name)
    idx, values, _ = index_instances(cls)
    lut = np.zeros(len(values) + 1, np.intp)
    lut[1:] = [codes.get(int(v), 0) for v in values]
    out = lut[idx].reshape(labels.shape)
    out[labels == 0] = 0
    return out


def instance_classes(labels, classes, *, name: str = "classes") -> dict:
    """``{instance id: class}`` for every instance of ``labels``.

    A pixel class map is reduced by majority vote inside each instance (ties go to
    the smaller class value; an instance whose pixels are all class 0 gets ``None``).
    A mapping is returned restricted to the instances present, missing ones as ``None``.
    """
    labels = check_label_image(labels, name="labels")
    idx, ids, _ = index_instances(labels)
    if isinstance(classes, Mapping):
        by_id = {_instance_id(k, name): v for k, v in classes.items()}
        return {int(i): (None if _is_unclassified(by_id.get(int(i))) else by_id.get(int(i))) for i in ids}
    cidx, values, _ = index_instances(_check_map(labels, classes, name))
    ncls = len(values) + 1
    hist = np.bincount(idx * ncls + cidx, minlength=(len(ids) + 1) * ncls).reshape(len(ids) + 1, ncls)[1:]
    hist[:, 0] = 0
    best = hist.argmax(axis=1)
    return {int(i): (int(values[b - 1]) if b > 0 else None) for i, b in zip(ids, best)}


def _instance_id(key, name: str) -> int:
    try:
        i = int(key)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: instance id {key!r} is not an integer") from None
    if i < 0:
        raise ValueError(f"{name}: negative instance id {i}")
    return i
