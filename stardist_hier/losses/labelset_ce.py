"""Label-set cross entropy (Eq. 2 of Parulekar, Kanwat et al., BIOIMAGING 2024)."""

from __future__ import annotations

import tensorflow as tf

from ._label_space import EPS, _expand_like, label_space
from .variants import check_variant

__all__ = ["labelset_crossentropy"]


def labelset_crossentropy(*, variant: str = "marginal", eps: float = EPS):
    """Per-pixel ``-w_k log(sum_{j in S_k} y_j)`` for the pixel's label ``k``.

    ``S_k`` is the leaf set of the label in the sample's own cut, ``y`` the full softmax
    (not renormalised over the dataset's labels), ``w_k`` the label's weight. With the
    identity cut this equals StarDist's ``weighted_categorical_crossentropy``.
    ``variant`` changes how coarse labels are scored (:mod:`.variants`; default
    ``"marginal"``, the formula above).

    Returns
    -------
    callable
        Keras loss ``loss(y_true, y_pred) -> (B, H, W)``; ignored pixels give 0.
    """

    check_variant(variant)

    def labelset_ce(y_true, y_pred):
        ls = label_space(y_true, y_pred, variant)
        if variant == "marginal":  # the formula as written (one slot per pixel)
            w = _expand_like(ls.w, ls.t)
            logp = tf.math.log(tf.clip_by_value(ls.p, eps, 1.0 - eps))
            return -tf.reduce_sum(w * ls.t * logp, axis=-1)
        logp = tf.math.log(tf.clip_by_value(ls.pt, eps, 1.0 - eps))
        return -ls.mask * ls.pixel_weight() * logp

    return labelset_ce
