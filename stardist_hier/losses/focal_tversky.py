"""Label-set focal Tversky loss (Eq. 4 of Parulekar, Kanwat et al., BIOIMAGING 2024)."""

from __future__ import annotations

import tensorflow as tf

from ._label_space import _expand_like, label_space
from .variants import check_variant

__all__ = ["focal_tversky", "FORMS"]

FORMS = ("pixel", "region")


def focal_tversky(*, alpha: float = 0.7, gamma: float = 0.75, form: str = "pixel", variant: str = "marginal",
                  eps: float = 1e-6):
    """Focal Tversky loss on label-set probabilities ``Y_k = sum_{j in S_k} y_j``.

    Parameters
    ----------
    alpha : float
        Weight of the target mass in the denominator (``alpha * FN`` and
        ``(1 - alpha) * FP`` in Tversky-index terms); 0.7 as in Abraham & Khan (2018).
    gamma : float
        Focal exponent applied as ``(1 - TI) ** gamma``; 0.75 (= 1 / (4/3)) as recommended
        by Abraham & Khan.
    form : {"pixel", "region"}
        ``"pixel"``: Eq. 4 as written, per pixel ``i``:
        ``w (1 - (sum_k t_ik Y_ik + eps) / (alpha sum_k t_ik + (1 - alpha) sum_k Y_ik + eps)) ** gamma``
        where ``k`` runs over background and the labels of the sample's cut. It is
        additive over pixels, so a batch mixing datasets is exactly the size-weighted
        combination of its parts; this is the default.
        ``"region"``: the usual segmentation form, per image and label over the
        image's pixels, ``(1 - (sum_i t_ik Y_ik + eps) / (alpha sum_i t_ik + (1 - alpha)
        sum_i Y_ik + eps)) ** gamma``, weighted by the label weights and averaged over the
        labels present in the image; better for rare classes, but one value per image.
        Note on ``"pixel"``: with a one-hot target the index is
        ``Y_t / (alpha + (1 - alpha) sum_k Y_k)``; where the dataset's labels cover every
        leaf, ``sum_k Y_k = 1`` and ``alpha`` has no effect (the loss is ``(1 - Y_t) ** gamma``).
    variant : str
        How coarse labels are scored (:mod:`.variants`): ``"marginal"`` (default),
        ``"renormalised"``, ``"ignore_coarse"``, or ``"root"`` (pixel form only; the
        root pixel's denominator is ``alpha + (1 - alpha) * 1``).
    eps : float
        Smoothing constant.

    Returns
    -------
    callable
        Keras loss ``loss(y_true, y_pred)``: ``(B, H, W)`` for ``"pixel"``, ``(B,)`` for ``"region"``.
    """
    if form not in FORMS:
        raise ValueError(f"focal_tversky: form must be one of {FORMS}, got {form!r}")
    if not (0 <= alpha <= 1):
        raise ValueError(f"focal_tversky: alpha must be in [0, 1], got {alpha}")
    if not gamma > 0:
        raise ValueError(f"focal_tversky: gamma must be positive, got {gamma}")
    check_variant(variant)
    if variant == "root" and form != "pixel":
        raise ValueError("focal_tversky: variant 'root' is defined for form='pixel' only")

    def _focal(ti):
        return tf.pow(tf.maximum(1.0 - ti, 1e-12), gamma)

    def focal_tversky_pixel(y_true, y_pred):
        ls = label_space(y_true, y_pred, variant)
        if variant == "marginal":  # the formula as written
            valid = _expand_like(ls.valid, ls.t)
            num = tf.reduce_sum(ls.t * ls.p, axis=-1) + eps
            den = alpha * tf.reduce_sum(ls.t, axis=-1) + (1 - alpha) * tf.reduce_sum(valid * ls.p, axis=-1) + eps
        else:
            num = ls.pt + eps
            den = alpha * ls.mask + (1 - alpha) * ls.covered + eps
        return ls.mask * ls.pixel_weight() * _focal(num / den)

    def focal_tversky_region(y_true, y_pred):
        ls = label_space(y_true, y_pred, variant)
        axes = ls.spatial_axes()
        m = ls.mask[..., None]
        tp = tf.reduce_sum(m * ls.t * ls.p, axis=axes)
        tsum = tf.reduce_sum(m * ls.t, axis=axes)
        psum = tf.reduce_sum(m * ls.p, axis=axes)
        ft = _focal((tp + eps) / (alpha * tsum + (1 - alpha) * psum + eps))
        present = ls.valid * tf.cast(tsum > 0, ft.dtype)
        return tf.math.divide_no_nan(tf.reduce_sum(present * ls.w * ft, axis=-1), tf.reduce_sum(present, axis=-1))

    return focal_tversky_pixel if form == "pixel" else focal_tversky_region
