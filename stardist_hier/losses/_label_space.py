"""Projection of a class-head prediction onto each sample's label set (TensorFlow).

Every loss in this package is written against a :class:`LabelSpace`: the target and
the prediction re-expressed per *label slot* of the sample's cut, where slot 0 is
background and slot ``k`` the ``k``-th label of the sample's dataset. A slot's
predicted probability is the sum of the softmax probabilities of its leaves,
``Y_k = sum_{j in S_k} y_j``, over the *full* softmax (never renormalised over the
dataset's labels). Summation is linear, so the gradient reaching the leaves of a
slot is the same for all of them.

How coarse labels are scored is a *variant* (:mod:`.variants`): the exact marginal
above (Eq. 2, default), probabilities renormalised over the leaves the sample's label
set covers, coarse-labelled pixels ignored by the class loss, or coarse labels
replaced by the root label.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

EPS = 1e-7


class LabelSpace(NamedTuple):
    """Target and prediction per label slot.

    Attributes
    ----------
    t : Tensor (B, ..., K)
        One-hot label of every pixel over the ``K = C`` slots (0 for ignored pixels).
    p : Tensor (B, ..., K)
        Predicted probability of every slot, ``sum_{j in S_k} y_j``.
    mask : Tensor (B, ...)
        1 for pixels that count, 0 for ignored pixels.
    w : Tensor (B, K)
        Loss weight of every slot.
    valid : Tensor (B, K)
        1 for slots that hold a label of the sample's set (background included).
    """

    t: tf.Tensor
    p: tf.Tensor
    mask: tf.Tensor
    w: tf.Tensor
    valid: tf.Tensor
    pt: tf.Tensor | None = None
    covered: tf.Tensor | None = None

    def pixel_weight(self):
        """Weight of every pixel's label, ``(B, ...)``."""
        w = _expand_like(self.w, self.t)
        return tf.reduce_sum(self.t * w, axis=-1)

    def spatial_axes(self):
        return tuple(range(1, len(self.t.shape) - 1))


def _expand_like(v, ref):
    """Reshape a ``(B, K)`` tensor to broadcast against ``(B, ..., K)``."""
    nd = len(ref.shape)
    shape = tf.concat([tf.shape(v)[:1], tf.ones([nd - 2], tf.int32), tf.shape(v)[-1:]], axis=0)
    return tf.reshape(v, shape)


def label_space(y_true, y_pred, variant: str = "marginal") -> LabelSpace:
    """Build the :class:`LabelSpace` of a packed target (:mod:`stardist_hier.targets`).

    ``y_pred`` is renormalised like StarDist's own class loss (``y / sum(y + eps)``).
    ``variant`` (:data:`.variants.VARIANTS`) sets how coarse labels are scored; besides
    the slots, the result holds ``pt``, the probability of every pixel's target
    ``(B, ...)``, and ``covered``, the predicted mass on the sample's label set
    (background included) ``(B, ...)``.
    """
    from .variants import check_variant

    check_variant(variant)
    y_true = tf.cast(y_true, y_pred.dtype)
    C = y_pred.shape[-1]
    if y_true.shape[-1] is not None and C is not None and y_true.shape[-1] != 3 * C:
        raise ValueError(
            f"class target has {y_true.shape[-1]} channels, expected 3 * (n_classes + 1) = {3 * C}: "
            "build it with stardist_hier.targets.class_target")
    member, assign, weights = tf.split(y_true, 3, axis=-1)
    B = tf.shape(y_true)[0]
    assign_s = tf.reshape(assign, [B, -1, C])[:, 0, :]      # (B, C) label index per channel
    weight_s = tf.reshape(weights, [B, -1, C])[:, 0, :]     # (B, C) weight per channel
    M = tf.one_hot(tf.cast(tf.round(assign_s), tf.int32), depth=C, dtype=y_pred.dtype)  # (B, C, K); -1 -> 0 row
    size = tf.reduce_sum(M, axis=1)                          # (B, K) leaves per slot
    valid = tf.cast(size > 0, y_pred.dtype)
    w = tf.math.divide_no_nan(tf.einsum("bj,bjk->bk", weight_s, M), size)

    mask = tf.cast(tf.reduce_min(member, axis=-1) >= 0, y_pred.dtype)
    y = y_pred / tf.reduce_sum(y_pred + EPS, axis=-1, keepdims=True)
    # a pixel's label is coarse when it covers more than one leaf (background is one leaf)
    coarse = mask * tf.cast(tf.reduce_sum(tf.maximum(member, 0), axis=-1) > 1.5, y_pred.dtype)
    if variant == "renormalised":
        covered_ch = _expand_like(tf.cast(assign_s >= 0, y.dtype), y)
        y = y / tf.maximum(tf.reduce_sum(covered_ch * y, axis=-1, keepdims=True), EPS)
    elif variant == "ignore_coarse":
        mask = mask * (1.0 - coarse)
    flat = lambda x: tf.reshape(x, [B, -1, C])
    p = tf.reshape(tf.einsum("bnj,bjk->bnk", flat(y), M), tf.shape(y_pred))
    counts = tf.reshape(tf.einsum("bnj,bjk->bnk", flat(tf.maximum(member, 0)), M), tf.shape(y_pred))
    t = tf.minimum(counts, 1.0) * mask[..., None]
    pt = tf.reduce_sum(t * p, axis=-1)
    covered = tf.reduce_sum(_expand_like(valid, p) * p, axis=-1)
    if variant == "root":
        # the label of a coarse pixel becomes the root: every foreground leaf, covered or not
        fg = tf.reduce_sum(y[..., 1:], axis=-1)
        pt = coarse * fg + (1.0 - coarse) * pt
        covered = coarse + (1.0 - coarse) * covered
    return LabelSpace(t=t, p=p, mask=mask, w=w, valid=valid, pt=pt, covered=covered)
