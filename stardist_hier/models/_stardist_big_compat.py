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
* the keyword arguments ``predict_instances_big`` forces on ``predict_instances``.
"""

from __future__ import annotations

from itertools import product

import numpy as np

__all__ = ["BlockParams", "block_params", "cover", "predict_block", "ObjectTooLarge", "axes_div_by",
           "axes_tile_overlap", "grid_divisible"]


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
    from stardist.big import NotFullyVisible

    kwargs = dict(predict_kwargs)
    kwargs.update(axes="YXC", overlap_label=None, return_labels=True, return_predict=False,
                  show_tile_progress=False)
    labels, polys = model.predict_instances(block.read(image, axes="YXC"), **kwargs)
    labels = block.crop_context(labels, axes="YX")
    try:
        _, polys = block.filter_objects(labels, polys, axes="YX")
    except (RuntimeError, NotFullyVisible) as e:
        raise ObjectTooLarge(str(e)) from None
    return polys
