"""Synthetic H&E-like slides written as pyramidal tiled TIFF, for tests and benchmarks (no TensorFlow).

Pixels are a pure function of the coordinates and a seed, rendered tile by tile, so
a slide of any size is written without holding it in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["SyntheticSlide", "write_pyramid_tiff"]

_GLASS = np.array([242, 242, 244], np.float32)
_STROMA = np.array([236, 170, 205], np.float32)
_NUCLEUS = np.array([95, 60, 150], np.float32)


class SyntheticSlide:
    """Deterministic pink tissue with purple round nuclei, and blank glass where ``tissue`` says.

    Parameters
    ----------
    shape : (int, int)
        Level-0 ``(height, width)``.
    seed : int
        Seed of the nucleus positions.
    cell : int
        Nuclei are placed at most one per ``cell x cell`` square.
    radius : (float, float)
        Range of nucleus radii (level-0 pixels).
    tissue : callable, optional
        ``tissue(rows, cols) -> bool array``: where tissue is (level-0 pixel centres);
        default everywhere.
    density : float
        Probability that a cell holds a nucleus.
    """

    def __init__(self, shape, *, seed: int = 0, cell: int = 24, radius=(4.0, 7.0), tissue=None,
                 density: float = 0.7):
        self.shape = (int(shape[0]), int(shape[1]))
        self.seed = int(seed)
        self.cell = int(cell)
        self.radius = (float(radius[0]), float(radius[1]))
        self.tissue = tissue
        self.density = float(density)

    def _cell_nuclei(self, cy0, cy1, cx0, cx1):
        out = []
        for cy in range(cy0, cy1):
            for cx in range(cx0, cx1):
                rng = np.random.default_rng([self.seed, cy, cx])
                u = rng.random(4)
                if u[0] > self.density:
                    continue
                r = self.radius[0] + u[1] * (self.radius[1] - self.radius[0])
                m = r + 1
                y = cy * self.cell + m + u[2] * max(0.0, self.cell - 2 * m)
                x = cx * self.cell + m + u[3] * max(0.0, self.cell - 2 * m)
                out.append((y, x, r))
        return out

    def region(self, top: int, left: int, height: int, width: int, *, labels: bool = False):
        """Level-0 pixels of a region, uint8 ``(height, width, 3)``.

        With ``labels``, also the instance label image ``(height, width)`` int32 (nuclei
        numbered in placement order within the region, 0 background).
        """
        rows = np.arange(top, top + height, dtype=np.float32)[:, None] + 0.5
        cols = np.arange(left, left + width, dtype=np.float32)[None, :] + 0.5
        tis = np.ones((height, width), bool) if self.tissue is None else np.asarray(
            self.tissue(np.broadcast_to(rows, (height, width)), np.broadcast_to(cols, (height, width))), bool)
        img = np.empty((height, width, 3), np.float32)
        img[:] = _GLASS
        img[tis] = _STROMA
        lab = np.zeros((height, width), np.int32) if labels else None
        if tis.any():
            nuc = np.zeros((height, width), bool)
            c = self.cell
            for i, (y, x, r) in enumerate(self._cell_nuclei(top // c, (top + height) // c + 1, left // c,
                                                            (left + width) // c + 1), start=1):
                y0, y1 = max(top, int(y - r) - 1), min(top + height, int(y + r) + 2)
                x0, x1 = max(left, int(x - r) - 1), min(left + width, int(x + r) + 2)
                if y1 <= y0 or x1 <= x0:
                    continue
                yy = rows[y0 - top:y1 - top] - y
                xx = cols[:, x0 - left:x1 - left] - x
                disk = yy ** 2 + xx ** 2 <= r * r
                nuc[y0 - top:y1 - top, x0 - left:x1 - left] |= disk
                if lab is not None:
                    sub = lab[y0 - top:y1 - top, x0 - left:x1 - left]
                    sub[disk & tis[y0 - top:y1 - top, x0 - left:x1 - left]] = i
            nuc &= tis
            img[nuc] = _NUCLEUS
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        return (img, lab) if labels else img


def write_pyramid_tiff(path, slide, *, mpp: float = 0.5, downsamples=(1, 4, 16), tile: int = 256,
                       compression: str = "zlib") -> Path:
    """Write ``slide`` (a :class:`SyntheticSlide` or an ``(H, W, 3)`` uint8 array) as a pyramidal tiled TIFF.

    Levels are successive pages (reduced-resolution pages after the first), with
    ``XResolution``/``YResolution`` in pixels per centimetre, which both OpenSlide
    (generic tiled TIFF) and tiffslide read, pixel size included.

    Parameters
    ----------
    path : str or Path
    slide : SyntheticSlide or ndarray
    mpp : float
        Level-0 microns per pixel.
    downsamples : sequence of int
        Integer downsample of every level (first 1); a level is the block mean of level 0.
    tile : int
        Tile size (multiple of 16).
    """
    import tifffile

    path = Path(path)
    if isinstance(slide, np.ndarray):
        arr = slide

        def region(t, left, h, w):
            return arr[t:t + h, left:left + w]

        shape = arr.shape[:2]
    else:
        region, shape = slide.region, slide.shape
    H, W = shape

    def tiles(d):
        h, w = H // d, W // d
        for ty in range(0, h, tile):
            for tx in range(0, w, tile):
                th, tw = min(tile, h - ty), min(tile, w - tx)
                a = np.asarray(region(ty * d, tx * d, th * d, tw * d), np.float32)
                if d > 1:
                    a = a.reshape(th, d, tw, d, 3).mean(axis=(1, 3))
                out = np.full((tile, tile, 3), 255, np.uint8)
                out[:th, :tw] = np.clip(np.rint(a), 0, 255).astype(np.uint8)
                yield out

    with tifffile.TiffWriter(path, bigtiff=H * W * 3 > 2 ** 31) as tw:
        for i, d in enumerate(downsamples):
            h, w = H // d, W // d
            if h < 1 or w < 1:
                break
            res = 1e4 / (mpp * d)
            tw.write(tiles(int(d)), shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb",
                     compression=compression, subfiletype=0 if i == 0 else 1,
                     resolution=(res, res), resolutionunit="CENTIMETER")
    return path
