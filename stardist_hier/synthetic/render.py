"""Stroma and cytoplasm around the nuclei, and the Beer-Lambert rendering of a tile."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from .canvas import _Canvas, _smooth_noise, _upsample
from .domains import DomainParams

def _background(cv: _Canvas, rng):
    """Eosin stroma with wavy collagen fibres and some white space (tears, loose tissue)."""
    h, w = cv.shape
    sc = cv.scale
    low = _smooth_noise(rng, cv.shape, 24 * sc)
    mid = _smooth_noise(rng, cv.shape, 7 * sc)
    base = rng.uniform(0.16, 0.3)
    cv.eosin += np.float32(base) * (1 + np.float32(0.18) * low) + np.float32(0.04) * mid
    cv.hbg += np.float32(0.04) + np.float32(0.015) * low
    # white space where the low-frequency field is high (a few % of the tile on average)
    z = rng.uniform(1.8, 4.0)
    white = np.clip((z - low) / 0.25, 0, 1)
    np.minimum(cv.clear, white, out=cv.clear)
    cv.low, cv.mid = low, mid


def _epithelial_cytoplasm(cv: _Canvas, styles):
    """Amphophilic cytoplasm around epithelial nuclei (glands and nests)."""
    ids = [i + 1 for i, l in enumerate(cv.leaves) if styles[l].placement in ("gland", "nest")]
    if not ids:
        return
    lut = np.zeros(len(cv.leaves) + 1, np.float32)
    lut[ids] = 1
    epi = lut[cv.labels]
    # blur on a half-resolution grid (the blur is wide), then interpolate back
    h, w = cv.shape
    cyto = ndi.gaussian_filter(epi[::2, ::2], 2.25 * cv.scale, truncate=3.0)
    cyto = _upsample(_upsample(cyto, h, 2, 0), w, 2, 1)
    cyto = np.clip(cyto * 5, 0, 1)
    cv.eosin += np.float32(0.22) * cyto * (1 + np.float32(0.1) * cv.coarse)
    cv.hbg += np.float32(0.07) * cyto


def _render(cv: _Canvas, domain: DomainParams, rng, theta0):
    """Beer-Lambert colour, optical blur and noise."""
    h, w = cv.shape
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    # collagen fibres: 1-D noise across the fibre direction theta0, warped by a smooth
    # field so that fibres wave, and faded in and out by another one
    lam = 1.6 * domain.scale
    n1 = max(16, int((h + w) / lam) + 64)
    prof = ndi.gaussian_filter1d(rng.standard_normal(n1).astype(np.float32), 1.0)
    prof /= prof.std() + 1e-6
    across = (yy * np.float32(math.cos(theta0)) - xx * np.float32(math.sin(theta0))
              + np.float32(6 * domain.scale) * cv.low)
    across = across / np.float32(lam) + np.float32(n1 / 2 - (h + w) / (2 * lam))
    np.clip(across, 0, n1 - 1.001, out=across)
    i0 = across.astype(np.intp)
    frac = across - i0
    fib = prof.take(i0) * (1 - frac) + prof.take(i0 + 1) * frac   # linear interpolation
    fade = np.clip(0.75 + 0.35 * cv.mid, 0, 1)
    fib = np.float32(1) + np.float32(0.3) * fib * fade
    clear = cv.clear
    eosin = cv.eosin * fib * clear + cv.eadd
    hema = np.where(cv.labels > 0, cv.hnuc, cv.hbg * clear)

    j = domain.stain_jitter
    hv = np.abs(np.asarray(domain.stain_h) + rng.normal(0, j, 3))
    ev = np.abs(np.asarray(domain.stain_e) + rng.normal(0, j, 3))
    hv, ev = hv / np.linalg.norm(hv), ev / np.linalg.norm(ev)
    hg = domain.h_gain * math.exp(rng.normal(0, 3 * j))
    eg = domain.e_gain * math.exp(rng.normal(0, 3 * j))
    hv = (hv * hg * -math.log(10)).astype(np.float32)
    ev = (ev * eg * -math.log(10)).astype(np.float32)
    img = hema[..., None] * hv                              # minus optical density ...
    img += eosin[..., None] * ev
    np.exp(img, out=img)                                    # ... to transmitted light
    img *= np.asarray(domain.background, np.float32)
    if domain.blur > 0:
        img = ndi.gaussian_filter(img, (domain.blur, domain.blur, 0))
    if domain.noise > 0:
        u = rng.random(img.shape, dtype=np.float32)
        u -= np.float32(0.5)
        u *= np.float32(domain.noise * math.sqrt(12))         # uniform, of std ``noise``
        img += u
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)
