"""Validation of instance label images, shared by the readers and the metrics (no TensorFlow)."""

from __future__ import annotations

import numpy as np

__all__ = ["check_label_image"]


def check_label_image(labels, *, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as an integer array, or raise a clear ``ValueError``.

    Parameters
    ----------
    labels : array_like
        Instance label image: 0 is background, every other value one instance.
        Ids need not be contiguous. Boolean masks are read as one instance (id 1).
    name : str, optional
        Name of the argument or file, used in error messages.

    Returns
    -------
    ndarray of int
        ``labels`` itself when it already has an integer dtype; float images holding
        only integer values are converted to ``int64``.

    Raises
    ------
    ValueError
        If ``labels`` is not numeric, holds non-integer or non-finite floats, or holds
        negative values.
    """
    a = np.asarray(labels)
    if a.dtype == bool:
        return a.astype(np.uint8)
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            raise ValueError(f"{name}: float label image holds NaN or infinite values; "
                             "label images must hold non-negative integer instance ids")
        frac = a != np.floor(a)
        if frac.any():
            v = float(a[frac].flat[0])
            raise ValueError(f"{name}: float label image holds non-integer values (e.g. {v!r}); "
                             "label images must hold non-negative integer instance ids")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iu":
        raise ValueError(f"{name}: dtype {a.dtype} is not a label image dtype; "
                         "label images must hold non-negative integer instance ids")
    if a.ndim < 1:
        raise ValueError(f"{name}: label image must be an array, got a scalar")
    if a.dtype.kind == "i" and a.size and a.min() < 0:
        raise ValueError(f"{name}: negative labels (minimum {int(a.min())}); "
                         "label images must hold non-negative integer instance ids")
    return a
