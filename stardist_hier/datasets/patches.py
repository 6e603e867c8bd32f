"""Fixed-size patches from :class:`Sample` records.

Rules:

- **Grid**: along each axis of length ``L`` with patch size ``S`` and overlap ``O``
  (pixels, ``0 <= O < S``) the stride is ``S - O``; origins are ``0, S-O, 2(S-O), ...``
  and the last patch is aligned to the end (origin ``L - S``) so that every pixel is
  covered: ``ceil((L - S) / (S - O)) + 1`` patches (1 when ``L <= S``).
- **Padding**: an axis shorter than ``S`` is padded at its end (bottom / right). The
  image is padded with ``pad_mode`` (``"reflect"``, default, keeps texture statistics;
  ``"constant"`` pads with 0); labels are padded with 0 and the padding is marked in
  the ignore mask, so it is neither nucleus nor background for the losses.
- **Instances cut by the patch border** (some of their pixels lie outside the
  window, in the image): ``cut="keep"`` (default, as in the paper) keeps their
  visible part; ``cut="ignore"`` removes them from the labels and marks their
  visible pixels as ignore (``-1`` in :meth:`Sample.training_labels`). Instances
  touching the *image* border are not "cut" by a patch. ``meta["n_cut"]`` counts
  cut instances under both policies.
- Instance ids are relabelled per patch to 1..n; ``classes`` follow. Every patch has
  a boolean ``ignore`` mask (all False when nothing is ignored). ``meta`` is the
  parent's plus ``patch_origin`` (y, x), ``patch_size`` and ``image_shape``.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

import numpy as np

from .instances import relabel_sequential
from .record import Sample

__all__ = ["patch_origins", "patch_grid", "extract_patches", "iter_patches"]


def _pair(v, name) -> tuple:
    t = (v, v) if np.isscalar(v) else tuple(v)
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v!r}")
    return int(t[0]), int(t[1])


def patch_origins(length: int, *, size: int, overlap: int = 0) -> list:
    """Patch start positions along one axis (rules in the module docstring)."""
    if size < 1:
        raise ValueError(f"patch size must be positive, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, size) = [0, {size}), got {overlap}")
    if length <= size:
        return [0]
    stride = size - overlap
    n = math.ceil((length - size) / stride) + 1
    return [i * stride for i in range(n - 1)] + [length - size]


def patch_grid(shape, *, size=256, overlap=0) -> list:
    """``[(y0, x0), ...]`` patch origins for an image of ``shape`` (H, W, ...)."""
    (sy, sx), (oy, ox) = _pair(size, "size"), _pair(overlap, "overlap")
    return [(y, x) for y in patch_origins(int(shape[0]), size=sy, overlap=oy)
            for x in patch_origins(int(shape[1]), size=sx, overlap=ox)]


def _pad(a, ph, pw, mode):
    if ph == 0 and pw == 0:
        return a
    width = [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2)
    if mode == "reflect" and min(a.shape[:2]) < 2:
        mode = "edge"
    return np.pad(a, width, mode=mode)


def extract_patches(sample: Sample, *, size=256, overlap=0, cut: str = "keep",
                    pad_mode: str = "reflect") -> Iterator[Sample]:
    """Yield fixed-size patches of one sample (rules in the module docstring).

    Parameters
    ----------
    sample : Sample
    size : int or (int, int)
        Patch height and width (default 256 x 256).
    overlap : int or (int, int)
        Overlap of neighbouring patches in pixels.
    cut : {"keep", "ignore"}
        Policy for instances cut by the patch border.
    pad_mode : {"reflect", "constant"}
        How the image is padded when it is smaller than a patch.

    Yields
    ------
    Sample
    """
    if cut not in ("keep", "ignore"):
        raise ValueError(f"cut must be 'keep' or 'ignore', got {cut!r}")
    if pad_mode not in ("reflect", "constant"):
        raise ValueError(f"pad_mode must be 'reflect' or 'constant', got {pad_mode!r}")
    sy, sx = _pair(size, "size")
    img, lab = sample.image, sample.labels
    h, w = lab.shape
    ign = sample.ignore
    total = np.bincount(lab.ravel()) if lab.size else np.zeros(1, np.int64)
    for y0, x0 in patch_grid(lab.shape, size=(sy, sx), overlap=overlap):
        y1, x1 = min(y0 + sy, h), min(x0 + sx, w)
        pl = lab[y0:y1, x0:x1]
        pi = img[y0:y1, x0:x1]
        pg = np.zeros(pl.shape, bool) if ign is None else ign[y0:y1, x0:x1]
        counts = np.bincount(pl.ravel(), minlength=total.size)
        visible = np.flatnonzero(counts[1:]) + 1
        cut_ids = visible[counts[visible] < total[visible]]
        if cut == "ignore" and cut_ids.size:
            drop = np.isin(pl, cut_ids)
            pl = np.where(drop, 0, pl)
            pg = pg | drop
        ph, pw = sy - pl.shape[0], sx - pl.shape[1]
        pi = _pad(pi, ph, pw, pad_mode)
        pl = np.pad(pl, [(0, ph), (0, pw)])
        pg = np.pad(pg, [(0, ph), (0, pw)], constant_values=True)
        new, old = relabel_sequential(pl)
        classes = {k: sample.classes.get(int(o)) for k, o in enumerate(old, 1)}
        meta = dict(sample.meta, patch_origin=(y0, x0), patch_size=(sy, sx), image_shape=(h, w),
                    n_cut=int(cut_ids.size))
        yield Sample(image=np.ascontiguousarray(pi), labels=new, classes=classes, label_set=sample.label_set,
                     ignore=np.ascontiguousarray(pg), meta=meta)


def iter_patches(samples: Iterable[Sample], **kwargs) -> Iterator[Sample]:
    """Patches of every sample in turn (keyword options of :func:`extract_patches`)."""
    for s in samples:
        yield from extract_patches(s, **kwargs)
