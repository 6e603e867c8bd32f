"""A lazy array view of a slide at a target pixel size (no TensorFlow).

:class:`SlideArray` looks like a ``(H, W, C)`` float32 NumPy array at the model's
pixel size; indexing it with slices reads only that region from the best pyramid
level, resamples it and normalises it with the model's fitted normalisation levels
(:class:`stardist_hier.normalization.Levels`, fitted once per image or slide;
default: divided by 255, ``[0, 1]``). StarDist's ``Block.read``
indexes it like an array, so block-wise prediction streams over a slide without
ever holding the full-resolution image.

Resampling is computed per output pixel from absolute coordinates (area averaging
when shrinking, bilinear when enlarging) and rounded to 8 bits, so a region read
alone is bit-identical to the same region cut out of a read of the whole image.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from .reader import SlideReader

__all__ = ["SlideArray", "choose_level", "resample_taps"]

_SNAP = 1e-3  # relative tolerance under which a level's pixel size counts as the target's


def choose_level(reader: SlideReader, downsample: float) -> tuple:
    """``(level, factor)``: the finest-detail level not finer than needed, and the remaining factor.

    ``factor`` = level pixels per output pixel (>= 1 except when even level 0 is
    coarser than the target, then < 1: upsampling); snapped to exactly 1 within 0.1 %.
    """
    best = 0
    for i, d in enumerate(reader.level_downsamples):
        if d <= downsample * (1 + _SNAP):
            if d >= reader.level_downsamples[best]:
                best = i
    f = downsample / reader.level_downsamples[best]
    if abs(f - 1) < _SNAP:
        f = 1.0
    return best, f


def resample_taps(start: int, stop: int, factor: float, n_in: int) -> tuple:
    """Source indices and weights of output pixels ``start..stop-1`` along one axis.

    Output pixel ``r`` covers source interval ``[r * factor, (r + 1) * factor)``.
    ``factor > 1``: area weights (overlap lengths); ``factor < 1``: bilinear at the
    pixel centre ``(r + 0.5) * factor - 0.5``. Returns ``(idx, w)``, both ``(n, taps)``.
    """
    r = np.arange(start, stop, dtype=np.float64)
    if factor >= 1:
        taps = int(math.ceil(factor)) + 1
        a, b = r * factor, (r + 1) * factor
        k0 = np.floor(a).astype(np.int64)
        idx = k0[:, None] + np.arange(taps)[None, :]
        lo = np.maximum(idx, a[:, None])
        hi = np.minimum(idx + 1, b[:, None])
        w = np.clip(hi - lo, 0, None) / factor
    else:
        s = (r + 0.5) * factor - 0.5
        k0 = np.floor(s).astype(np.int64)
        t = s - k0
        idx = np.stack([k0, k0 + 1], axis=1)
        w = np.stack([1 - t, t], axis=1)
    idx = np.clip(idx, 0, n_in - 1)
    w[w < 1e-12] = 0
    return idx, w


def _apply_taps(src: np.ndarray, idx: np.ndarray, w: np.ndarray, axis: int) -> np.ndarray:
    src = np.moveaxis(src, axis, 0)
    out = np.zeros((idx.shape[0],) + src.shape[1:], np.float32)
    ww = w.astype(np.float32)
    extra = (slice(None),) + (None,) * (src.ndim - 1)
    for t in range(idx.shape[1]):
        out += ww[:, t][extra] * src[idx[:, t]].astype(np.float32)
    return np.moveaxis(out, 0, axis)


class SlideArray:
    """A slide at a target pixel size, as a lazily read, normalised ``(H, W, C)`` float32 array.

    Parameters
    ----------
    reader : SlideReader
        The slide or image.
    downsample : float
        Level-0 pixels per output pixel (``target_mpp / slide_mpp``); 1: native.
    levels : stardist_hier.normalization.Levels, optional
        The normalisation applied to every region read (fitted once for the whole
        image or slide, never per region). Default: divided by 255 (``[0, 1]``).

    Attributes
    ----------
    downsample : float
        As given.
    level : int
        The pyramid level read.
    factor : float
        Level pixels per output pixel (1: no resampling).
    scale : float
        Level-0 pixels per output pixel actually used (``factor * level downsample``).
    shape : tuple
        ``(H, W, C)`` at the output pixel size.
    """

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, reader: SlideReader, *, downsample: float = 1.0, levels=None):
        if not (downsample > 0 and math.isfinite(downsample)):
            raise InputError(f"{reader.path}: invalid downsample {downsample}")
        if levels is None:
            from ..normalization import Normalization

            levels = Normalization("divide", by=255.0).fit()
        self.levels = levels
        self.reader = reader
        self.downsample = float(downsample)
        self.level, self.factor = choose_level(reader, float(downsample))
        self.scale = self.factor * reader.level_downsamples[self.level]
        lh, lw = reader.level_shapes[self.level]
        if self.factor == 1.0:
            h, w = lh, lw
        else:
            h, w = int(math.floor(lh / self.factor + 1e-9)), int(math.floor(lw / self.factor + 1e-9))
        if h < 1 or w < 1:
            raise InputError(f"{reader.path}: image of {lh}x{lw} pixels is empty at downsample {downsample:g}")
        self.shape = (h, w, reader.channels)

    def to_level0(self, rc: np.ndarray) -> np.ndarray:
        """Output-pixel coordinates (row, column; pixel centres) -> level-0 pixel coordinates."""
        return (np.asarray(rc, np.float64) + 0.5) * self.scale - 0.5

    @property
    def offset(self) -> float:
        """Level-0 offset added after multiplying output coordinates by :attr:`scale`."""
        return 0.5 * self.scale - 0.5

    def read_uint8(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        """Output pixels ``[top:top+height, left:left+width]`` as uint8 ``(h, w, C)``."""
        H, W, _ = self.shape
        if not (0 <= top and 0 <= left and height >= 0 and width >= 0 and top + height <= H and left + width <= W):
            raise IndexError(f"region {(top, left, height, width)} outside {self.shape[:2]}")
        if height == 0 or width == 0:
            return np.zeros((height, width, self.shape[2]), np.uint8)
        if self.factor == 1.0:
            return self.reader.read(self.level, top, left, height, width)
        lh, lw = self.reader.level_shapes[self.level]
        iy, wy = resample_taps(top, top + height, self.factor, lh)
        ix, wx = resample_taps(left, left + width, self.factor, lw)
        y0, y1 = int(iy.min()), int(iy.max()) + 1
        x0, x1 = int(ix.min()), int(ix.max()) + 1
        src = self.reader.read(self.level, y0, x0, y1 - y0, x1 - x0)
        out = _apply_taps(src, iy - y0, wy, axis=0)
        out = _apply_taps(out, ix - x0, wx, axis=1)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        if len(key) != 3:
            raise IndexError(f"too many indices for a 3-D SlideArray: {key}")
        spans = []
        for k, n in zip(key[:2], self.shape[:2]):
            if not isinstance(k, slice) or k.step not in (None, 1):
                raise IndexError("SlideArray supports only contiguous slices along Y and X")
            a, b, _ = k.indices(n)
            spans.append((a, max(a, b)))
        (t, b), (l, r) = spans
        x = self.read_uint8(t, l, b - t, r - l)
        return self.levels.apply(x)[:, :, key[2]]

    def __array__(self, dtype=None, copy=None):
        a = self[:, :, :]
        return a if dtype is None else a.astype(dtype)

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return f"SlideArray({self.reader!r}, shape={self.shape}, level={self.level}, factor={self.factor:g})"
