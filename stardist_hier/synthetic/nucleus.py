"""One nucleus: outline and lobes, overlap and connectivity rules, chromatin, cytoplasm."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from .canvas import _Canvas, _fourier, _rho
from .styles import LeafStyle

def _place(cv: _Canvas, leaf: str, st: LeafStyle, cy, cx, phi=None, kappa=None) -> bool:
    """Try to draw one nucleus of ``leaf`` centred at (cy, cx); True if drawn."""
    rng = cv.rng
    sc = cv.scale
    iy, ix = int(round(cy)), int(round(cx))
    if 0 <= iy < cv.shape[0] and 0 <= ix < cv.shape[1] and (cv.labels[iy, ix] or cv.forbid[iy, ix]):
        return False  # quick rejection: the centre is taken
    a = st.radius * sc * math.exp(st.radius_sd * rng.standard_normal())
    e = max(1.0, st.elongation + st.elongation_sd * rng.standard_normal())
    b = max(a / e, 1.1 * sc if st.lobes == 1 else 0.8)
    if phi is None:
        phi = rng.uniform(0, np.pi)
    else:
        phi = phi + st.orientation_sd * rng.standard_normal()
    if kappa is None:
        kappa = st.bend * (1 if rng.random() < 0.5 else -1) * (0.5 + rng.random())
    if st.lobes == 1:
        # quick rejection: probes half-way along the axes lie on taken pixels, so the
        # overlap would be too large
        h, w = cv.shape
        cph, sph = math.cos(phi), math.sin(phi)
        for du, dv in ((0.55 * a, 0.0), (-0.55 * a, 0.0), (0.0, 0.55 * b), (0.0, -0.55 * b)):
            py, px = int(round(cy + du * sph + dv * cph)), int(round(cx + du * cph - dv * sph))
            if 0 <= py < h and 0 <= px < w and (cv.labels[py, px] or cv.forbid[py, px]):
                return False
    coeffs, irr = _fourier(rng, st.irregularity, st.harmonics)
    n_lobes = st.lobes
    if st.lobes_jitter:
        n_lobes = max(2, n_lobes + int(rng.integers(-st.lobes_jitter, st.lobes_jitter + 1)))
    if n_lobes == 1:
        reach = a * (1 + irr) + abs(kappa) * a * a + 1.5
        centres = ((0.0, 0.0),)
    else:
        spacing = 1.45 * a
        lk = 0.25 / a * (1 if rng.random() < 0.5 else -1)
        us = (np.arange(n_lobes) - (n_lobes - 1) / 2) * spacing
        us = us + rng.normal(0, 0.15 * a, n_lobes)
        vs = lk * us * us + rng.normal(0, 0.15 * a, n_lobes)
        cph, sph = math.cos(phi), math.sin(phi)
        centres = tuple((float(u * sph + v * cph), float(u * cph - v * sph)) for u, v in zip(us, vs))
        reach = max(math.hypot(dy, dx) for dy, dx in centres) + a * (1 + irr) + 1.5
    win = cv.window(cy, cx, reach)
    if win is None:
        return False
    sl, yy, xx = win
    if n_lobes == 1:
        rho, theta = _rho(yy, xx, a, b, phi, st.tip, kappa, coeffs)
    else:
        rho = theta = None
        for dy, dx in centres:
            r_i, t_i = _rho(yy - np.float32(dy), xx - np.float32(dx), a, b,
                            phi + rng.normal(0, 0.5), st.tip, 0.0, coeffs)
            if rho is None:
                rho, theta = r_i, t_i
            else:
                closer = r_i < rho
                rho = np.where(closer, r_i, rho)
                theta = np.where(closer, t_i, theta)
    full = rho <= 1
    area = int(np.count_nonzero(full))
    expected = math.pi * a * b * n_lobes * (0.8 if n_lobes > 1 else 1.0)
    min_area = max(6.0 * sc * sc, 0.25 * expected)
    if area < min_area:
        return False
    if np.any(full & cv.forbid[sl]):
        return False
    lab = cv.labels[sl]
    occupied = full & (lab > 0)
    n_occ = int(np.count_nonzero(occupied))
    if n_occ > cv.max_overlap * area:
        return False
    mask = full & ~occupied if n_occ else full
    if n_occ and area - n_occ < min_area:
        return False
    h, w = cv.shape
    clipped = min(cy, cx) < reach or cy + reach > h - 1 or cx + reach > w - 1
    if n_occ or clipped or n_lobes > 1 or st.tip < 2 or kappa or b < 3 or irr > 0.25:
        # clipping, lobes and thin, pointed, bent or very irregular outlines may break
        # a rasterised nucleus (4-connectivity): drop stray pixels, reject real splits
        cc, n_cc = ndi.label(mask)
        if n_cc != 1:
            sizes = np.bincount(cc.ravel())
            sizes[0] = 0
            keep = int(sizes.argmax())
            if sizes[keep] < 0.9 * (area - n_occ) or sizes[keep] < min_area:
                return False
            mask = cc == keep

    # chromatin
    d = st.darkness * math.exp(st.darkness_sd * rng.standard_normal())
    fine, coarse = cv.fine[sl], cv.coarse[sl]
    val = 1 + np.float32(st.fine_texture) * fine + np.float32(st.coarse_texture) * coarse
    if st.rim:
        val *= np.float32(1 - st.rim) + np.float32(1.8 * st.rim) * (rho * rho * rho)
    if st.clock:
        n_spokes = int(rng.integers(6, 9))
        val *= 1 + np.float32(st.clock) * np.cos(n_spokes * theta + np.float32(rng.uniform(0, 6.3))) \
            * np.clip(rho * 2.5 - 1.2, 0, 1)
    if st.fragmented:
        thr = np.float32(rng.uniform(-0.4, 0.2))
        val *= np.where(coarse > thr, np.float32(1 + 0.3 * st.fragmented),
                        np.float32(1 - 0.75 * st.fragmented))
    val *= 1 + np.float32(0.15) * (rho > 0.8)
    n_nucleoli = int(rng.poisson(st.nucleoli)) if st.nucleoli else 0
    for _ in range(n_nucleoli):
        ang, rr = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.5 * b)
        r0 = max(0.9, 0.13 * b) * (0.8 + 0.4 * rng.random())
        dy, dx = rr * math.sin(ang), rr * math.cos(ang)
        val += np.float32(st.nucleolus_strength) * np.exp(
            -((yy - np.float32(dy)) ** 2 + (xx - np.float32(dx)) ** 2) / np.float32(2 * r0 * r0))
    val = np.maximum(val * np.float32(d), np.float32(0.05))

    nid = len(cv.leaves) + 1
    lab[mask] = nid
    cv.hnuc[sl][mask] = val[mask]
    cv.leaves.append(leaf)

    if st.cytoplasm:
        _cytoplasm(cv, st, cy, cx, a, b, phi, n_lobes)
    return True


def _cytoplasm(cv: _Canvas, st: LeafStyle, cy, cx, a, b, phi, n_lobes):
    """Draw the cytoplasm around a nucleus (not part of the instance)."""
    rng = cv.rng
    ext = a * (1 + 0.7 * (n_lobes - 1)) if n_lobes > 1 else math.sqrt(a * b)
    rc = st.cytoplasm * ext * (0.9 + 0.2 * rng.random())
    ang = rng.uniform(0, 2 * np.pi)
    off = st.cytoplasm_offset * rc
    ccy, ccx = cy + off * math.sin(ang), cx + off * math.cos(ang)
    win = cv.window(ccy, ccx, rc * 1.3 + 2)
    if win is None:
        return
    sl, yy, xx = win
    rho, _ = _rho(yy, xx, rc, rc / (1.05 + 0.25 * rng.random()), rng.uniform(0, np.pi), 2.0, 0.0,
                  _fourier(rng, 0.05, 3)[0])
    prof = np.clip((1.15 - rho) / 0.3, 0, 1)
    if st.cytoplasm_granular:
        g = cv.fine[sl]
        prof = prof * (1 + np.float32(st.cytoplasm_granular) * g)
    if st.cytoplasm_offset:
        # perinuclear hof: a pale zone next to the nucleus on the cytoplasm side
        hy, hx = cy + 0.45 * off * math.sin(ang), cx + 0.45 * off * math.cos(ang)
        dd = ((yy + np.float32(ccy - hy)) ** 2 + (xx + np.float32(ccx - hx)) ** 2) \
            / np.float32((0.35 * rc) ** 2)
        prof = prof * (1 - 0.6 * np.exp(-dd))
    cv.eosin[sl] += np.float32(st.cytoplasm_eosin) * prof
    if st.cytoplasm_hema:
        cv.hbg[sl] += np.float32(st.cytoplasm_hema) * prof
