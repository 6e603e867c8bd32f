"""Couplings to StarDist's block-wise prediction internals (``stardist.big``, stardist 0.9.2).

This module is the only place where :mod:`stardist_hier.predict` touches
``stardist.big`` and the private parts of ``StarDistBase.predict_instances_big``;
it mirrors the loop body of ``predict_instances_big`` so that streaming prediction
(:mod:`stardist_hier.predict.pipeline`) yields exactly the same nuclei, without
ever allocating a full-size label image. Kept apart from ``_stardist_compat.py``
(training seams); the project rule "couplings live in one marked place" applies to
both files.

Seams used (all from stardist 0.9.2):

* ``stardist.big.BlockND.cover`` / ``Block.cover`` / ``Block`` construction,
* ``BlockND.read``, ``BlockND.crop_context``, ``BlockND.filter_objects``,
* ``stardist.big._grid_divisible`` and ``StarDistBase._axes_div_by`` /
  ``_axes_tile_overlap`` (the default ``context``),
* the keyword arguments ``predict_instances_big`` forces on ``predict_instances``,
* for the overlapped pipeline (:func:`forward_block`, :func:`instances_block`): the two
  halves of ``StarDistBase._predict_instances_generator`` (``predict_sparse``, then
  ``_instances_from_prediction``) with the arguments ``predict_instances`` passes them,
  and ``keras_model.predict`` replaced by a cached ``tf.function`` of the same network
  (:func:`compiled_predict`; bit-identical outputs, measured and tested).
"""

from __future__ import annotations

import contextlib
from itertools import product

import numpy as np

__all__ = ["BlockParams", "block_params", "cover", "predict_block", "ObjectTooLarge", "axes_div_by",
           "axes_tile_overlap", "grid_divisible", "forward_block", "instances_block", "filter_block",
           "compiled_predict", "block_regions", "activation_elements", "predict_instances_forced"]


def axes_div_by(model, axes) -> list:
    """StarDist's ``_axes_div_by``: what each axis of ``axes`` must be divisible by (the grid)."""
    return model._axes_div_by(axes)


def axes_tile_overlap(model, axes) -> list:
    """StarDist's ``_axes_tile_overlap``: the network's receptive field along each axis of ``axes``."""
    return model._axes_tile_overlap(axes)


def grid_divisible(grid, value) -> int:
    """``stardist.big._grid_divisible``, silent: ``value`` rounded up to a multiple of ``grid``."""
    from stardist.big import _grid_divisible

    return _grid_divisible(grid, value, verbose=False)


class ObjectTooLarge(RuntimeError):
    """A predicted object is larger than ``min_overlap`` (StarDist's ``filter_objects`` refused it)."""


class BlockParams(tuple):
    """``(block_size, min_overlap, context)`` per spatial axis (Y, X), grid-divisible."""

    __slots__ = ()

    @property
    def block_size(self):
        return self[0]

    @property
    def min_overlap(self):
        return self[1]

    @property
    def context(self):
        return self[2]


def block_params(model, *, block_size, min_overlap, context=None) -> BlockParams:
    """StarDist's block parameters for axes ``YX``, exactly as ``predict_instances_big`` derives them.

    Parameters
    ----------
    model : StarDist2D
        The model (its grid and receptive field give divisibility and default context).
    block_size, min_overlap : int or pair of int
        Block size and guaranteed overlap (target pixels).
    context : int, pair of int or None
        Context discarded on each side; ``None``: the network's receptive field.
    """
    from stardist.big import _grid_divisible

    grid = model._axes_div_by("YX")
    if context is None:
        context = model._axes_tile_overlap("YX")

    def pair(v):
        return [int(v)] * 2 if np.isscalar(v) else [int(x) for x in v]

    bs, mo, ct = pair(block_size), pair(min_overlap), pair(context)
    bs = tuple(_grid_divisible(g, v, verbose=False) for v, g in zip(bs, grid))
    mo = tuple(_grid_divisible(g, v, verbose=False) for v, g in zip(mo, grid))
    ct = tuple(_grid_divisible(g, v, verbose=False) for v, g in zip(ct, grid))
    for b, o, c in zip(bs, mo, ct):
        if not o + 2 * c < b:
            raise ValueError(f"block size {b} must exceed min_overlap + 2 * context = {o + 2 * c}")
    return BlockParams((bs, mo, ct))


def cover(model, shape, params: BlockParams, *, channels: int):
    """The blocks covering an image of ``shape`` (H, W), axes ``YXC``.

    Along an axis longer than the block size this is ``BlockND.cover`` exactly as in
    ``predict_instances_big``; an axis that fits in one block gets a single block (where
    StarDist would refuse). Returns a tuple of ``stardist.big.BlockND``.
    """
    from stardist.big import Block, BlockND

    grid = model._axes_div_by("YX")
    per_axis = []
    for size, b, o, c, g in zip(shape, params.block_size, params.min_overlap, params.context, grid):
        if size > b:
            per_axis.append(Block.cover(size, b, o, c, g, verbose=False))
        else:
            one = Block(size, 0, 0, None)
            one.freeze()
            per_axis.append([one])
    # the channel axis: a single block holding every channel
    chan = Block.cover(int(channels), int(channels), 0, 0, 1, verbose=False)
    return tuple(BlockND(i, blocks, "YXC") for i, blocks in enumerate(product(*per_axis, chan)))


def _forced_kwargs(predict_kwargs) -> dict:
    kwargs = dict(predict_kwargs)
    kwargs.update(axes="YXC", overlap_label=None, return_labels=True, return_predict=False,
                  show_tile_progress=False)
    return kwargs


def predict_block(model, block, image, *, predict_kwargs):
    """``predict_instances`` on one block, then StarDist's filter for the block's responsibility.

    The same calls, in the same order and with the same forced keyword arguments, as
    the loop body of ``StarDistBase.predict_instances_big`` (stardist 0.9.2), without
    the label image write. Returns the filtered result dict (coordinates global, in
    the pixels of ``image``).

    Raises
    ------
    ObjectTooLarge
        When an object in an overlap region is larger than ``min_overlap``.
    """
    labels, polys = predict_instances_forced(model, block.read(image, axes="YXC"), predict_kwargs=predict_kwargs)
    return filter_block(block, labels, polys)


def predict_instances_forced(model, x, *, predict_kwargs) -> tuple:
    """``model.predict_instances(x)`` with the keyword arguments ``predict_instances_big`` forces."""
    return model.predict_instances(x, **_forced_kwargs(predict_kwargs))


def filter_block(block, labels, polys) -> dict:
    """StarDist's ``crop_context`` and ``filter_objects`` of one block's ``(labels, polys)``.

    Raises
    ------
    ObjectTooLarge
        When an object in an overlap region is larger than ``min_overlap``.
    """
    from stardist.big import NotFullyVisible

    labels = block.crop_context(labels, axes="YX")
    try:
        _, polys = block.filter_objects(labels, polys, axes="YX")
    except (RuntimeError, NotFullyVisible) as e:
        raise ObjectTooLarge(str(e)) from None
    return polys


def block_regions(block) -> tuple:
    """``((top, left, bottom, right) read, (top, left, bottom, right) own)`` of a block, in image pixels.

    *read*: the pixels read for the block (its region and its context on each side);
    *own*: the block's region without the context (``crop_context``): every nucleus the
    block is responsible for lies in it.
    """
    (ry, rx), (wy, wx) = block.slice_read("YX"), block.slice_write("YX")
    return (ry.start, rx.start, ry.stop, rx.stop), (wy.start, wx.start, wy.stop, wx.stop)


# ------------------------------------------------------------ the overlapped pipeline's halves
def forward_block(model, x, *, predict_kwargs) -> tuple:
    """The first half of ``predict_instances`` on one block read into memory: the network
    and StarDist's sparse candidate selection (``predict_sparse``), as
    ``_predict_instances_generator`` calls it for ``predict_instances(x, **forced)``.

    Holds no state between blocks: safe to run in a thread while :func:`instances_block`
    runs on an earlier block in another. Returns ``(shape, sparse)`` for :func:`instances_block`.
    """
    kw = _forced_kwargs(predict_kwargs)
    shape = tuple(int(s) for s in x.shape[:2])
    sparse = model.predict_sparse(x, axes=kw["axes"], normalizer=None, n_tiles=kw.get("n_tiles"),
                                  prob_thresh=kw.get("prob_thresh"), show_tile_progress=False)
    return shape, sparse


def instances_block(model, shape, sparse, *, predict_kwargs) -> tuple:
    """The second half of ``predict_instances``: NMS, polygons, label image and classes.

    ``StarDistBase._instances_from_prediction`` with the arguments
    ``_predict_instances_generator`` passes it, then what
    :meth:`~stardist_hier.StarDist2DHier.predict_instances` adds (the class head's name,
    the decisions on the tree). Returns ``(labels, polys)`` as ``predict_instances``.
    """
    kw = _forced_kwargs(predict_kwargs)
    multiclass = bool(model._is_multiclass())
    if multiclass:
        prob, dist, prob_class, points = sparse
    else:
        prob, dist, points = sparse
        prob_class = None
    labels, res = model._instances_from_prediction(shape, prob, dist, points=points, prob_class=prob_class,
                                                   prob_thresh=kw.get("prob_thresh"),
                                                   nms_thresh=kw.get("nms_thresh"), scale=None,
                                                   return_labels=True, overlap_label=None, verbose=False)
    decide = getattr(model, "decide", None)
    if multiclass and decide is not None:
        k = model.head_index()
        if k is not None:
            res["class_head"] = model.class_heads[k]
        decide(res, label_sets=None, abstain=None)
    return labels, res


@contextlib.contextmanager
def compiled_predict(model):
    """Run a block with ``model.keras_model.predict`` served by a cached ``tf.function``.

    StarDist calls ``keras_model.predict(x[None])`` once per block (or tile); Keras
    builds a data iterator around every such call (measured 0.45 to 0.61 s per 1216 px
    block against 0.29 to 0.31 s for the same network through a cached ``tf.function``,
    with identical outputs). The concrete function of each input shape is traced once
    and kept on the Keras model (``_hier_forward``), so a slide's blocks (at most a few
    distinct shapes) and later slides reuse it. Inputs are cast as Keras casts them
    (floating arrays to ``float32``). Not re-entrant across threads for *different*
    models sharing one Keras model; the pipeline runs one forward thread per model.
    """
    import tensorflow as tf

    km = model.keras_model
    if "predict" in vars(km):  # already served (nested use, or the one-device patch of a strategy)
        yield
        return
    cache = vars(km).get("_hier_forward")
    if cache is None:
        cache = {"fn": tf.function(lambda t: km(t, training=False), autograph=False), "by_shape": {}}
        object.__setattr__(km, "_hier_forward", cache)

    def predict(x, **_kwargs):
        x = np.asarray(x)
        if np.issubdtype(x.dtype, np.floating) and x.dtype != np.float32:
            x = x.astype(np.float32)
        key = (x.shape, x.dtype.str)
        fn = cache["by_shape"].get(key)
        if fn is None:
            fn = cache["by_shape"][key] = cache["fn"].get_concrete_function(tf.TensorSpec(x.shape, x.dtype))
        ys = fn(tf.constant(x))
        ys = ys if isinstance(ys, (list, tuple)) else [ys]
        return [np.asarray(y) for y in ys]

    object.__setattr__(km, "predict", predict)
    try:
        yield
    finally:
        del km.__dict__["predict"]


def activation_elements(model, shape) -> int:
    """Elements of every layer output of the network for one input of ``shape`` (H, W), summed.

    Symbolic (Keras's ``compute_output_spec`` on a model returning every layer's
    output): nothing is computed and no memory is allocated. The sum is what TensorFlow
    would hold if it freed no intermediate tensor, an upper bound of its working set.
    """
    import keras

    km = model.keras_model
    outs = [layer.output for layer in km.layers if not isinstance(layer, keras.layers.InputLayer)]
    every = keras.Model(km.inputs, outs)
    channels = int(model.config.n_channel_in)
    spec = every.compute_output_spec(keras.KerasTensor((1, int(shape[0]), int(shape[1]), channels)))
    spec = spec if isinstance(spec, (list, tuple)) else [spec]
    return int(sum(int(np.prod(s.shape)) for s in spec))
