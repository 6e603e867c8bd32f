"""One class head per dataset: route each sample's class loss to its own head (TensorFlow).

A model with ``K > 1`` class heads (``Config2DHier.hier_class_heads``, the CellViT++-style
alternative to one shared last layer) outputs ``K`` softmaxes of ``C`` channels side by
side, ``(..., K * C)``. Its class target carries, after the ``3 * C`` channels of
:mod:`stardist_hier.targets`, a one-hot ``(..., K)`` naming the head of the sample's
dataset. :func:`per_head` wraps any class loss of the registry: the loss sees the
sample's own head only, so a head is trained only by the datasets it belongs to.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["per_head", "select_head"]


def select_head(y_true, y_pred, n_channels: int, n_heads: int):
    """``(y_true without the head block, the softmax of each sample's head)``."""
    C, K = int(n_channels), int(n_heads)
    onehot = y_true[..., 3 * C:3 * C + K]
    shape = tf.concat([tf.shape(y_pred)[:-1], [K, C]], axis=0)
    heads = tf.reshape(y_pred, shape)
    chosen = tf.reduce_sum(onehot[..., :, None] * heads, axis=-2)
    return y_true[..., :3 * C], chosen


def per_head(loss, n_channels: int, n_heads: int):
    """The class loss ``loss(y_true, y_pred)`` applied to each sample's own head."""

    def per_head_class_loss(y_true, y_pred):
        t, p = select_head(y_true, y_pred, n_channels, n_heads)
        return loss(t, p)

    per_head_class_loss.__name__ = getattr(loss, "__name__", "class_loss")
    return per_head_class_loss
