"""Tissue mask of a slide from a low-resolution level (no TensorFlow).

Glass is bright and grey, stained tissue is coloured: Otsu's threshold on the HSV
saturation of a thumbnail separates them (scikit-image). The mask is dilated by a
margin so nuclei at the tissue edge keep their context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .reader import SlideReader

__all__ = ["TissueMask", "tissue_mask", "thumbnail"]


@dataclass
class TissueMask:
    """A boolean mask over a slide and the level-0 pixels each mask pixel spans.

    Attributes
    ----------
    mask : ndarray of bool, (h, w)
    scale : (float, float)
        Level-0 pixels per mask pixel along rows and columns.
    threshold : float
        The saturation threshold used.
    """

    mask: np.ndarray
    scale: tuple
    threshold: float

    @property
    def fraction(self) -> float:
        """Fraction of the slide covered by tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def any_in(self, top: float, left: float, bottom: float, right: float) -> bool:
        """Whether any tissue lies in the level-0 rectangle ``[top, bottom) x [left, right)``."""
        sy, sx = self.scale
        h, w = self.mask.shape
        r0, r1 = max(0, int(math.floor(top / sy))), min(h, int(math.ceil(bottom / sy)))
        c0, c1 = max(0, int(math.floor(left / sx))), min(w, int(math.ceil(right / sx)))
        return bool(r1 > r0 and c1 > c0 and self.mask[r0:r1, c0:c1].any())


def thumbnail(reader: SlideReader, *, max_size: int = 2048, strip: int = 512) -> tuple:
    """``(image, (scale_y, scale_x))``: the coarsest level, reduced to at most ``max_size`` per side.

    A level larger than ``max_size`` is read in strips of ``strip`` rows and reduced by
    an integer block mean, so memory stays bounded even for a one-level slide.
    """
    level = reader.level_count - 1
    lh, lw = reader.level_shapes[level]
    k = max(1, int(math.ceil(max(lh, lw) / max_size)))
    if k == 1:
        img = reader.read(level, 0, 0, lh, lw)
    else:
        oh, ow = lh // k, lw // k
        if oh == 0 or ow == 0:
            k, oh, ow = 1, lh, lw
        rows = []
        step = max(1, strip // k) * k
        for top in range(0, oh * k, step):
            n = min(step, oh * k - top)
            a = reader.read(level, top, 0, n, ow * k).astype(np.float32)
            a = a.reshape(n // k, k, ow, k, a.shape[-1]).mean(axis=(1, 3))
            rows.append(a)
        img = np.clip(np.rint(np.concatenate(rows)), 0, 255).astype(np.uint8)
    h0, w0 = reader.level_shapes[0]
    return img, (h0 / img.shape[0], w0 / img.shape[1])


def tissue_mask(reader: SlideReader, *, max_size: int = 2048, min_saturation: float = 0.05,
                dilate: int = 2, thumb: tuple | None = None) -> TissueMask:
    """Tissue mask by Otsu's threshold on saturation of a low-resolution thumbnail.

    Parameters
    ----------
    reader : SlideReader
    max_size : int
        Longest side of the thumbnail.
    min_saturation : float
        Floor of the threshold, so a slide of almost only glass is not split in half.
    dilate : int
        Dilation radius in thumbnail pixels.
    thumb : tuple, optional
        ``(image, scale)`` of :func:`thumbnail`, when already read (``max_size`` is then unused).
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    img, scale = thumbnail(reader, max_size=max_size) if thumb is None else thumb
    if img.shape[-1] >= 3:
        rgb = img[..., :3].astype(np.float32)
        mx, mn = rgb.max(axis=-1), rgb.min(axis=-1)
        sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    else:  # grey: darker than glass
        sat = 1 - img[..., 0].astype(np.float32) / 255
    if float(sat.max() - sat.min()) < 1e-3:
        t = min_saturation
    else:
        t = max(float(threshold_otsu(sat)), min_saturation)
    mask = sat > t
    if dilate > 0 and mask.any():
        mask = ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=int(dilate))
    return TissueMask(mask, scale, float(t))
