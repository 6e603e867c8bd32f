"""The canvas a tile is drawn on, smooth random fields and nucleus outline geometry."""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np
from scipy import ndimage as ndi

def _upsample(a, n_out, f, axis):
    """Linear interpolation of ``a`` along ``axis`` from a grid of spacing ``f`` px."""
    pos = np.arange(n_out, dtype=np.float64) / f
    i0 = np.minimum(pos.astype(np.int64), a.shape[axis] - 2)
    frac = (pos - i0).astype(np.float32)
    shape = [1, 1]
    shape[axis] = n_out
    frac = frac.reshape(shape)
    return np.take(a, i0, axis) * (1 - frac) + np.take(a, i0 + 1, axis) * frac


def _smooth_noise(rng, shape, sigma, *, white=None) -> np.ndarray:
    """Zero-mean unit-variance Gaussian random field with correlation length ``sigma`` px.

    Long correlation lengths are filtered on a coarse grid and interpolated linearly.
    ``white`` (full-resolution white noise) is filtered instead of drawing new noise.
    """
    h, w = shape
    f = 1 if white is not None else max(1, int(sigma // 3))
    if white is None:
        white = rng.standard_normal((h // f + 2, w // f + 2), dtype=np.float32)
    small = ndi.gaussian_filter(white, sigma / f, mode="wrap")
    if f > 1:
        out = _upsample(_upsample(small, h, f, 0), w, f, 1)
    else:
        out = small[:h, :w].copy()
    out -= out.mean()
    sd = out.std()
    return out / sd if sd > 0 else out


class _Canvas:
    """Concentration maps and the instance image of one tile being drawn."""

    def __init__(self, rng, shape, scale, max_overlap):
        self.rng = rng
        self.shape = shape
        self.scale = scale
        self.max_overlap = max_overlap
        h, w = shape
        self.labels = np.zeros(shape, np.int32)
        self.hnuc = np.zeros(shape, np.float32)
        self.hbg = np.zeros(shape, np.float32)
        self.eosin = np.zeros(shape, np.float32)
        self.eadd = np.zeros(shape, np.float32)   # added after clearing (red cells, membranes)
        self.clear = np.ones(shape, np.float32)   # 1 tissue, 0 empty space (lumen, fat, tears)
        self.forbid = None
        white = rng.standard_normal(shape, dtype=np.float32)
        self.fine = _smooth_noise(rng, shape, 0.7, white=white)
        self.coarse = _smooth_noise(rng, shape, 1.6, white=white)
        self.low = self.mid = None                # smooth random fields of the background
        self.leaves: list = []

    # ---- helpers
    def window(self, cy, cx, r):
        """Clipped bounding box around a centre: (slices, yy, xx) or None if outside."""
        h, w = self.shape
        y0, y1 = max(0, int(math.floor(cy - r))), min(h, int(math.ceil(cy + r)) + 1)
        x0, x1 = max(0, int(math.floor(cx - r))), min(w, int(math.ceil(cx + r)) + 1)
        if y0 >= y1 or x0 >= x1:
            return None
        yy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy))[:, None]
        xx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx))[None, :]
        return (slice(y0, y1), slice(x0, x1)), yy, xx

    def clear_ellipse(self, cy, cx, a, b, phi, *, irregularity=0.0, membrane=0.0):
        """Empty an elliptical region (lumen, vacuole) with a soft edge."""
        win = self.window(cy, cx, a * (1 + 2 * irregularity) + 3)
        if win is None:
            return
        sl, yy, xx = win
        coeffs, _ = _fourier(self.rng, irregularity, 4)
        rho, _ = _rho(yy, xx, a, b, phi, 2.0, 0.0, coeffs)
        c = np.clip((rho - 0.92) / 0.16, 0, 1)
        np.minimum(self.clear[sl], c, out=self.clear[sl])
        if membrane:
            self.eadd[sl] += membrane * np.exp(-((rho - 1.0) / 0.04) ** 2)


# outline perturbations are tabulated at _N_ANGLES polar angles, harmonics up to _K_MAX
_N_ANGLES = 128
_K_MAX = 12


def _harmonics():
    """Per number of harmonics n (k = 2..n+1): rows ``cos(k a)`` then ``-sin(k a)`` (read-only)."""
    ang = -np.pi + 2 * np.pi * (np.arange(_N_ANGLES) + 0.5) / _N_ANGLES
    out = {}
    for n in range(1, _K_MAX):
        ka = np.outer(np.arange(2, n + 2), ang)
        m = np.concatenate([np.cos(ka), -np.sin(ka)]).astype(np.float32)
        m.flags.writeable = False
        out[n] = m
    weights = {n: (1 / np.sqrt(2 * np.tile(np.arange(1, n + 1), 2))).astype(np.float32) for n in out}
    return MappingProxyType(out), MappingProxyType(weights)


_HARMONICS, _HARMONIC_WEIGHTS = _harmonics()


def _fourier(rng, amp, kmax):
    """Random radial outline perturbation ``1 + sum_k Re(z_k exp(i k theta))``, k = 2..kmax.

    The ``z_k`` are complex Gaussian with variance ``amp**2 / (k - 1)``, scaled down so
    that ``sum |z_k| <= 0.6``.

    Returns
    -------
    table : ndarray of float32, shape (128,), or None
        The perturbation sampled at polar angles ``-pi + 2 pi (j + 0.5) / 128``.
    total : float
        ``sum |z_k|``, which bounds the perturbation.
    """
    if amp <= 0 or kmax < 2:
        return None, 0.0
    n = min(int(kmax), _K_MAX) - 1
    z = rng.standard_normal(2 * n, dtype=np.float32) * _HARMONIC_WEIGHTS[n] * np.float32(amp)
    tot = float(np.sqrt(z[:n] ** 2 + z[n:] ** 2).sum())
    if tot > 0.6:
        z *= np.float32(0.6 / tot)
        tot = 0.6
    return 1 + z @ _HARMONICS[n], tot


def _rho(yy, xx, a, b, phi, tip, kappa, table):
    """Normalised radius (``<= 1`` inside) and polar angle of a bent superellipse.

    ``u``, ``v`` are coordinates along and across the major axis (angle ``phi``); the
    axis is bent to ``v = kappa * u**2``; the outline is ``|u/a|**tip + (v/b)**2 = 1``
    perturbed radially by ``table`` (see :func:`_fourier`; None: no perturbation).
    """
    c, s = np.float32(math.cos(phi)), np.float32(math.sin(phi))
    u = xx * c + yy * s
    v = yy * c - xx * s
    if kappa:
        v = v - np.float32(kappa) * u * u
    un = u * np.float32(1 / a)
    vn = v * np.float32(1 / b)
    if tip == 2.0:
        f = un * un + vn * vn
    else:
        f = np.abs(un) ** np.float32(tip) + vn * vn
    rho = np.sqrt(f)
    theta = np.arctan2(vn, un)
    if table is not None:
        idx = (theta * np.float32(_N_ANGLES / (2 * np.pi)) + np.float32(_N_ANGLES / 2)).astype(np.intp)
        rho /= table.take(idx, mode="wrap")
    return rho, theta
