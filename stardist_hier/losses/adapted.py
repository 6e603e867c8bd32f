"""Adapting any probability-based loss to label sets.

A loss written against :class:`~stardist_hier.losses._label_space.LabelSpace`
(per-slot targets ``t`` and summed probabilities ``p``) works for every cut. Two
examples: soft Dice and focal cross entropy.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from ._label_space import EPS, LabelSpace, _expand_like, label_space

__all__ = ["label_set_loss", "dice", "focal_crossentropy"]


def label_set_loss(fn):
    """Turn ``fn(ls: LabelSpace) -> Tensor`` into a Keras loss ``(y_true, y_pred)``.

    Examples
    --------
    >>> @label_set_loss
    ... def brier(ls):
    ...     return ls.mask * tf.reduce_sum((ls.t - ls.p) ** 2, axis=-1)
    """

    @functools.wraps(fn)
    def loss(y_true, y_pred):
        return fn(label_space(y_true, y_pred))

    return loss


def dice(*, eps: float = 1.0):
    """Soft Dice per image over the labels present in it: ``(B,)``."""

    def _dice(ls: LabelSpace):
        axes = ls.spatial_axes()
        m = ls.mask[..., None]
        inter = tf.reduce_sum(m * ls.t * ls.p, axis=axes)
        tsum = tf.reduce_sum(m * ls.t, axis=axes)
        psum = tf.reduce_sum(m * ls.p, axis=axes)
        d = 1.0 - (2.0 * inter + eps) / (tsum + psum + eps)
        present = ls.valid * tf.cast(tsum > 0, d.dtype)
        return tf.math.divide_no_nan(tf.reduce_sum(present * ls.w * d, axis=-1), tf.reduce_sum(present, axis=-1))

    return label_set_loss(_dice)


def focal_crossentropy(*, gamma: float = 2.0, eps: float = EPS):
    """Focal cross entropy ``-w_k (1 - Y_k)^gamma log Y_k`` per pixel (Lin et al. 2017)."""

    def _focal_ce(ls: LabelSpace):
        p = tf.clip_by_value(ls.p, eps, 1.0 - eps)
        w = _expand_like(ls.w, ls.t)
        return -tf.reduce_sum(w * ls.t * tf.pow(1.0 - p, gamma) * tf.math.log(p), axis=-1)

    return label_set_loss(_focal_ce)
