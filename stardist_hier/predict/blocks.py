"""Block size from the model: a memory estimate per block and the ``block_size="auto"`` choice.

A block of side ``B`` is read with its context ``c`` on each side, so the network sees
``n = B + 2c`` pixels per side. What one block in flight holds (bytes), for a network
whose layer outputs sum to ``A`` elements per input pixel (all layers, counted with
:func:`~stardist_hier.models._stardist_big_compat.activation_elements`: an upper bound,
as TensorFlow frees intermediate tensors):

``n**2 * (4 * A + 4 * C * (read_ahead + 2) + 8)``

(``4 * A``: float32 activations; ``C`` channels of float32 input for the blocks read
ahead, the one in the network and the one in NMS; ``8``: the block's int32 label image
and its cropped copy.) Measured for the tiny benchmark model (16 base filters, U-Net
depth 2, grid 2, ``A`` = 107.75; ``benchmarks/bench_predict.py --memory-estimate``): the
peak resident memory of ``predict_instances`` on one block grew by 85 MB at ``n`` = 592
and 362 MB at ``n`` = 1104, against estimates of 163 MB and 566 MB (docs/SCALING.md).

``block_size="auto"`` takes the largest of :data:`CANDIDATES` whose estimate stays
within ``memory`` (default :data:`DEFAULT_BLOCK_MEMORY`): larger blocks repeat less
context and overlap (at 1024 px with 128 overlap the blocks read 2.1 to 2.25 times the
slide's pixels, at 2048 px 1.4 to 1.56 times). The choice depends on the model and
``memory`` only, never on the machine, so the same command gives the same blocks (and
nuclei) everywhere. No TensorFlow is imported by this module itself; the model is.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["CANDIDATES", "DEFAULT_BLOCK_MEMORY", "block_memory", "auto_block_size"]

#: Block sizes ``block_size="auto"`` chooses from (pixels at the model's pixel size).
CANDIDATES = (512, 1024, 1536, 2048, 3072, 4096)
#: Memory per block in flight that ``block_size="auto"`` may use (bytes).
DEFAULT_BLOCK_MEMORY = 3 * 2**30


def _context(model, context) -> int:
    from ..models import _stardist_big_compat as big

    if context is None:
        context = big.axes_tile_overlap(model, "YX")
    grid = big.axes_div_by(model, "YX")
    vals = [context] * 2 if np.isscalar(context) else list(context)
    return max(big.grid_divisible(g, int(v)) for g, v in zip(grid, vals))


def block_memory(model, block_size: int, *, context=None, read_ahead: int = 2) -> int:
    """Estimated bytes one block of side ``block_size`` holds while predicted (see the module doc).

    Parameters
    ----------
    model : StarDist2DHier
    block_size : int
        Block side at the model's pixel size.
    context : int or pair of int, optional
        Default the network's receptive field (as :func:`plan_prediction`).
    read_ahead : int
        Blocks read ahead of the network (:func:`~stardist_hier.predict.predict_nuclei`).
    """
    from ..models import _stardist_big_compat as big

    n = int(block_size) + 2 * _context(model, context)
    ref = 256 * int(np.lcm.reduce([int(g) for g in big.axes_div_by(model, "YX")]))
    per_px = big.activation_elements(model, (ref, ref)) / ref**2  # layer outputs scale with the pixels
    channels = int(model.config.n_channel_in)
    return int(n * n * (4 * per_px + 4 * channels * (int(read_ahead) + 2) + 8))


def auto_block_size(model, *, min_overlap=128, context=None, memory: int = DEFAULT_BLOCK_MEMORY,
                    read_ahead: int = 2) -> int:
    """The largest of :data:`CANDIDATES` whose :func:`block_memory` fits in ``memory`` bytes.

    A candidate too small for ``min_overlap + 2 * context`` is never chosen.

    Raises
    ------
    InputError
        No candidate fits (naming ``memory`` and the smallest estimate).
    """
    ctx = _context(model, context)
    mo = max([int(min_overlap)] * 2 if np.isscalar(min_overlap) else [int(v) for v in min_overlap])
    best, smallest = None, None
    for b in CANDIDATES:
        if b <= mo + 2 * ctx:
            continue
        need = block_memory(model, b, context=context, read_ahead=read_ahead)
        smallest = need if smallest is None else min(smallest, need)
        if need <= memory:
            best = b
    if best is None:
        raise InputError(f"block_size='auto': no block size of {list(CANDIDATES)} fits in {memory / 2**20:.0f} MiB "
                         f"(the smallest needs {(smallest or 0) / 2**20:.0f} MiB); give --block-size")
    return best
