"""Positive combinations of class losses."""

from __future__ import annotations

import tensorflow as tf

__all__ = ["combine"]


def combine(losses: dict, weights: dict):
    """Weighted sum ``sum_n weights[n] * losses[n]`` of Keras losses.

    Per-pixel losses ``(B, ...)`` and per-image losses ``(B,)`` can be mixed: when any
    term is per image, per-pixel terms are first averaged over each image's pixels
    (ignored pixels included, as Keras' own mean does), so every term keeps its scale.
    """
    if not losses:
        raise ValueError("combine: no loss given")
    for n, w in weights.items():
        if not (w > 0):
            raise ValueError(f"combine: weight of {n!r} must be positive, got {w}")

    names = tuple(losses)

    def combined_class_loss(y_true, y_pred):
        vals = [float(weights[n]) * losses[n](y_true, y_pred) for n in names]
        if len(vals) == 1:
            return vals[0]
        if len({len(v.shape) for v in vals}) > 1:
            vals = [tf.reduce_mean(tf.reshape(v, [tf.shape(v)[0], -1]), axis=1) for v in vals]
        return tf.add_n(vals)

    return combined_class_loss
