"""Training a :class:`~stardist_hier.StarDist2DHier` under a ``tf.distribute`` strategy.

Not a separate code path: the model's Keras model is built (``_build``) and compiled
(``prepare_for_training``, optimizer included) inside ``strategy.scope()``; Keras 3
remembers the strategy of a model built in a scope, so the ordinary ``train`` /
:func:`~stardist_hier.training.train_episodes` / ``evaluate`` calls run data-parallel.
``config.train_batch_size`` is the **global** batch: every step splits it evenly over
the replicas (it must be divisible by their number).

Choose the strategy with ``Config2DHier(hier_distribute=...)`` or
``StarDist2DHier(..., distribute=...)``:

``None`` / ``"none"``
    No strategy (the default; exactly the single-device code path).
``"mirrored"``
    :class:`tf.distribute.MirroredStrategy` over all GPUs of this machine (over the
    logical CPU devices when there is no GPU and the CPU was split, see
    :func:`split_cpu`; a single device otherwise).
``"multiworker"``
    :class:`tf.distribute.MultiWorkerMirroredStrategy` over the machines described by
    the ``TF_CONFIG`` environment variable (a single worker without it). It must be
    created before any other TensorFlow operation runs; see ``docs/SCALING.md``.
a ``tf.distribute.Strategy``
    Used as is (only as a ``distribute=`` argument; not stored in ``config.json``).

Loss reduction
--------------
Keras 3 computes every compiled loss per replica, reduces it with
``"sum_over_batch_size"`` (the mean over all elements the loss function returns) and
multiplies it by ``1 / num_replicas``; the gradients of the replicas are summed. For a
loss that returns a value per pixel or per image this is exactly the loss of the
global batch (the replicas' shards are equally large), which covers all class-head
losses of :mod:`stardist_hier.losses` (``ce`` and ``focal_tversky`` ``"pixel"``: per
pixel; ``focal_tversky`` ``"region"``, ``dice``: per image; ``combine``: either).

StarDist's own two losses are not of that kind, and :func:`global_batch_losses`
replaces them while a strategy is set:

* ``prob_loss`` returns a *scalar* (the mean binary cross entropy over the
  non-ignored pixels). Keras returns scalar losses unreduced and therefore unscaled,
  so under ``R`` replicas the probability loss would enter the gradient, and the logged
  ``prob_loss``, ``R`` times too large. The replacement returns the sum over the
  replica's valid pixels divided by the replicas' mean count (an all-reduce), as a
  one-element tensor that Keras scales: the exact global-batch value.
* ``dist_loss`` is a masked mean normalised by the fraction of foreground pixels
  *of the batch* (``mean(mask)``); per replica that fraction is the shard's, so the
  average over replicas is a mean of ratios, not the global ratio. The replacement
  renormalises each replica's term by the global fraction (an all-reduce), leaving
  the background-regularisation term (additive over pixels) as it is.

Both replacements are the identity when no strategy with more than one replica is
active (cross-replica context, e.g. Keras' symbolic build, or a single replica).
"""

from __future__ import annotations

import contextlib

__all__ = ["STRATEGIES", "resolve", "strategy_scope", "num_replicas", "global_batch_losses", "split_cpu",
           "check_optimizer", "check_batch_size", "predict_on_one_device", "describe"]

#: the names accepted by ``Config2DHier(hier_distribute=...)``
STRATEGIES = ("none", "mirrored", "multiworker")

_CACHE = {}


def is_valid_name(value) -> bool:
    return value is None or value in STRATEGIES


def resolve(spec):
    """The strategy for ``spec`` (a name of :data:`STRATEGIES`, ``None`` or a strategy).

    Named strategies are created once per process and shared (TensorFlow allows one
    ``MultiWorkerMirroredStrategy`` per process; variables of one strategy cannot be
    used under another). Returns ``None`` for ``None`` / ``"none"``.
    """
    if spec is None or (isinstance(spec, str) and spec == "none"):
        return None
    import tensorflow as tf

    if isinstance(spec, tf.distribute.Strategy):
        return spec
    if spec not in STRATEGIES:
        raise ValueError(f"distribute: expected one of {STRATEGIES}, None or a tf.distribute.Strategy, got {spec!r}")
    if spec not in _CACHE:
        if spec == "mirrored":
            devices = None
            if not tf.config.list_physical_devices("GPU"):
                cpus = tf.config.list_logical_devices("CPU")
                if len(cpus) > 1:
                    devices = [d.name for d in cpus]
            _CACHE[spec] = tf.distribute.MirroredStrategy(devices=devices)
        else:
            _CACHE[spec] = tf.distribute.MultiWorkerMirroredStrategy()
    return _CACHE[spec]


def strategy_scope(strategy):
    """``strategy.scope()``, or a no-op context for ``None``."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def num_replicas(strategy) -> int:
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def check_optimizer(optimizer, strategy):
    """Refuse an optimizer created outside ``strategy.scope()`` (Keras' TF optimizer keeps
    the strategy it was created under and would update mirrored variables wrongly)."""
    if optimizer is None or strategy is None:
        return
    own = getattr(optimizer, "_distribution_strategy", None)
    if own is not None and own is not strategy:
        raise ValueError("the optimizer was created outside the model's tf.distribute strategy: create it "
                         "inside `with model.strategy.scope():`")


def check_batch_size(batch_size, strategy):
    """``batch_size`` is the global batch; it must split evenly over the replicas."""
    r = num_replicas(strategy)
    if r > 1 and int(batch_size) % r != 0:
        raise ValueError(f"train_batch_size={batch_size} is the global batch and must be divisible by the "
                         f"number of replicas ({r})")


def _replica_context():
    """The replica context when running replicated with more than one replica, else ``None``."""
    import tensorflow as tf

    if tf.distribute.in_cross_replica_context():
        return None
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync <= 1:
        return None
    return ctx


def _replica_mean(ctx, value):
    import tensorflow as tf

    return ctx.all_reduce(tf.distribute.ReduceOp.MEAN, value)


def _replica_sum(ctx, value):
    import tensorflow as tf

    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def global_batch_losses(losses, *, n_rays, reg_weight):
    """Replace StarDist's ``prob_loss`` and ``dist_loss`` (the first two of ``losses``)
    by versions that reduce exactly over replicas (see the module docstring).

    Parameters
    ----------
    losses : list
        ``[prob_loss, dist_loss, (class_loss)]`` as StarDist compiles them.
    n_rays : int
        Number of rays (``dist`` targets carry ``n_rays`` distances, then the mask).
    reg_weight : float
        ``config.train_background_reg`` (StarDist's background regulariser of ``dist``).
    """
    import tensorflow as tf

    prob_orig, dist_orig = losses[0], losses[1]
    eps = 1e-7  # keras.backend.epsilon(), as in StarDist's generic_masked_loss

    def prob_loss(y_true, y_pred):
        ctx = _replica_context()
        if ctx is None:
            return prob_orig(y_true, y_pred)
        y_true = tf.cast(y_true, y_pred.dtype)
        mask = tf.cast(y_true >= 0, y_pred.dtype)
        t = tf.clip_by_value(y_true, 0.0, 1.0)
        p = tf.clip_by_value(y_pred, eps, 1.0 - eps)
        bce = -(t * tf.math.log(p) + (1.0 - t) * tf.math.log(1.0 - p))
        total = tf.reduce_sum(mask * bce)
        count = _replica_mean(ctx, tf.reduce_sum(mask))
        # one element: Keras reduces it (x 1 / replicas); a scalar would not be scaled
        return tf.reshape(tf.math.divide_no_nan(total, count), [1])

    def dist_loss(y_true, y_pred):
        value = dist_orig(y_true, y_pred)
        ctx = _replica_context()
        if ctx is None:
            return value
        mask = tf.cast(y_true[..., n_rays:], y_pred.dtype)
        m_sum, m_n = tf.reduce_sum(mask), tf.cast(tf.size(mask), y_pred.dtype)
        local = tf.math.divide_no_nan(m_sum, m_n)  # an empty shard (last partial batch) gives no NaN
        glob = tf.math.divide_no_nan(_replica_sum(ctx, m_sum), _replica_sum(ctx, m_n))
        reg = 0.0
        if reg_weight > 0:
            reg = reg_weight * tf.reduce_mean((1.0 - mask) * tf.abs(y_pred), axis=-1)
        return (value - reg) * ((local + eps) / (glob + eps)) + reg

    prob_loss.__name__, dist_loss.__name__ = "prob_loss", "dist_loss"
    return [prob_loss, dist_loss, *losses[2:]]


def predict_on_one_device(keras_model):
    """Make ``keras_model.predict`` run on one device, without the model's strategy.

    StarDist predicts one image (or tile) at a time, ``keras_model.predict(x[None])``;
    under a strategy that batch of 1 would be split over the replicas, which fails for
    the empty shards. The patch of Keras's private state lives in
    :func:`stardist_hier.models._stardist_compat.predict_on_one_device`.
    """
    from ._stardist_compat import predict_on_one_device as patch

    return patch(keras_model)


def split_cpu(n: int = 2):
    """Split the first CPU into ``n`` logical devices (to try a strategy without GPUs).

    Must run before TensorFlow initialises its devices (before any TF operation);
    raises ``RuntimeError`` otherwise. Returns the logical CPU device names.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def describe(strategy) -> str:
    """One line: the strategy, its replicas and devices."""
    if strategy is None:
        return "no strategy (single device)"
    devices = getattr(strategy.extended, "worker_devices", ())
    return f"{type(strategy).__name__} with {num_replicas(strategy)} replicas on {', '.join(devices)}"

