"""Tissue structures and candidate nucleus positions for each placement rule.

The ``_draw_*`` functions draw a structure (gland lumen, vessel, fat vacuole) onto the
canvas and return candidate positions around it; the ``_*_candidates`` functions return
candidates for the other rules (some also draw their eosinophilic surroundings). Each
candidate is ``(cy, cx, phi, kappa)``: centre, orientation and axis curvature, where
None lets :func:`~stardist_hier.synthetic.nucleus._place` draw them.
"""

from __future__ import annotations

import math

import numpy as np

from .nucleus import _place

# Nuclei are drawn in this order of placement rule (earlier ones win overlaps).
_PLACEMENT_ORDER = ("gland", "vessel", "fat", "nest", "bundle", "aligned", "necrosis",
                    "focus", "scatter")


def _uniform_points(rng, shape, n, margin=4.0):
    h, w = shape
    return np.column_stack([rng.uniform(-margin, h + margin, n), rng.uniform(-margin, w + margin, n)])


def _fill(cv, leaf, st, candidates, n):
    """Place up to ``n`` nuclei from candidates ``[(cy, cx, phi, kappa)]``; return count."""
    placed = 0
    for cy, cx, phi, kappa in candidates:
        if placed >= n:
            break
        placed += _place(cv, leaf, st, cy, cx, phi, kappa)
    return placed


def _draw_glands(cv, n, st, rng):
    """Glands: white lumen lined by radially oriented nuclei. Returns candidates."""
    sc = cv.scale
    h, w = cv.shape
    cands = []
    remaining = n
    gap = 2.5 * sc
    a_n = st.radius * sc
    b_n = a_n / st.elongation
    while remaining > 0 and len(cands) < 4 * n:
        k = int(rng.integers(12, 32))          # ring capacity; small counts fill an arc
        ring = k * 2.15 * b_n / (2 * np.pi)
        la = max(ring - a_n - gap, rng.uniform(6, 14) * sc)
        lb = la * rng.uniform(0.6, 1.0)
        lphi = rng.uniform(0, np.pi)
        gy, gx = rng.uniform(0.1 * h, 0.9 * h), rng.uniform(0.1 * w, 0.9 * w)
        cv.clear_ellipse(gy, gx, la, lb, lphi, irregularity=0.05)
        ra, rb = la + gap + a_n, lb + gap + a_n
        circ = math.pi * (3 * (ra + rb) - math.sqrt((3 * ra + rb) * (ra + 3 * rb)))
        m = max(3, int(circ / (2.1 * b_n)))
        t0 = rng.uniform(0, 2 * np.pi)
        cph, sph = math.cos(lphi), math.sin(lphi)
        for t in t0 + np.arange(m) * 2 * np.pi / m:
            px, py = ra * math.cos(t), rb * math.sin(t)
            dx, dy = px * cph - py * sph, px * sph + py * cph
            nx, ny = rb * math.cos(t), ra * math.sin(t)          # outward normal (local)
            ndx, ndy = nx * cph - ny * sph, nx * sph + ny * cph
            cands.append((gy + dy, gx + dx, math.atan2(ndy, ndx), 0.0))
        remaining -= m
    return cands


def _draw_vessels(cv, n, st, rng):
    """Small vessels: lumen with red cells, lined by curved endothelial nuclei."""
    sc = cv.scale
    h, w = cv.shape
    cands = []
    b_n = st.radius * sc / st.elongation
    remaining = n
    while remaining > 0:
        k = int(min(remaining, rng.integers(1, 5)))
        la = rng.uniform(5, 12) * sc
        lb = la * rng.uniform(0.55, 1.0)
        lphi = rng.uniform(0, np.pi)
        vy, vx = rng.uniform(0, h), rng.uniform(0, w)
        cv.clear_ellipse(vy, vx, la, lb, lphi)
        # red blood cells
        for _ in range(int(rng.poisson(la * lb / (14 * sc * sc)))):
            rr, ang = math.sqrt(rng.random()) * 0.75, rng.uniform(0, 2 * np.pi)
            px, py = la * rr * math.cos(ang), lb * rr * math.sin(ang)
            ry = vy + px * math.sin(lphi) + py * math.cos(lphi)
            rx = vx + px * math.cos(lphi) - py * math.sin(lphi)
            win = cv.window(ry, rx, 4 * sc)
            if win is not None:
                sl, yy, xx = win
                rbc = np.clip((3.2 * sc - np.sqrt(yy * yy + xx * xx)) / 0.8, 0, 1)
                cv.eadd[sl] += np.float32(0.9) * rbc
        cph, sph = math.cos(lphi), math.sin(lphi)
        ra, rb = la + b_n + 0.5, lb + b_n + 0.5
        for t in rng.uniform(0, 2 * np.pi) + np.arange(k) * 2 * np.pi / k + rng.normal(0, 0.3, k):
            px, py = ra * math.cos(t), rb * math.sin(t)
            dx, dy = px * cph - py * sph, px * sph + py * cph
            tx, ty = -ra * math.sin(t), rb * math.cos(t)          # tangent (local)
            tdx, tdy = tx * cph - ty * sph, tx * sph + ty * cph
            phi = math.atan2(tdy, tdx)
            r_loc = math.hypot(dx, dy)
            # bend the nucleus around the lumen: its ends move towards the vessel centre
            vnx, vny = -math.sin(phi), math.cos(phi)
            sign = 1.0 if (-dx * vnx - dy * vny) > 0 else -1.0
            cands.append((vy + dy, vx + dx, phi, sign / (2 * r_loc)))
        remaining -= k
    return cands


def _draw_fat(cv, n, st, rng):
    """Fat: large white vacuoles with thin membranes; crescent nuclei at the rim of some."""
    sc = cv.scale
    h, w = cv.shape
    b_n = st.radius * sc / st.elongation
    n_vac = n + int(rng.poisson(max(n, 1)))
    vac = []
    tries = 0
    while len(vac) < n_vac and tries < 30 * n_vac:
        tries += 1
        r = rng.uniform(22, 40) * sc
        cy, cx = rng.uniform(-10, h + 10), rng.uniform(-10, w + 10)
        if all(math.hypot(cy - y, cx - x) > 0.97 * (r + rr) for y, x, rr in vac):
            vac.append((cy, cx, r))
    for cy, cx, r in vac:
        cv.clear_ellipse(cy, cx, r, r * rng.uniform(0.85, 1.0), rng.uniform(0, np.pi),
                         irregularity=0.04, membrane=0.35)
    cands = []
    for cy, cx, r in vac:
        for _ in range(3):
            ang = rng.uniform(0, 2 * np.pi)
            d = r + 0.9 * b_n + 1.5
            py, px = cy + d * math.sin(ang), cx + d * math.cos(ang)
            phi = ang + np.pi / 2
            vnx, vny = -math.sin(phi), math.cos(phi)
            sign = 1.0 if ((cx - px) * vnx + (cy - py) * vny) > 0 else -1.0
            cands.append((py, px, phi, sign / (2 * d)))
    # one candidate per vacuole first, then the second and third tries
    return cands[0::3] + cands[1::3] + cands[2::3]


def _nest_candidates(cv, n, st, rng):
    sc = cv.scale
    k = 1 + int(n > 20) + int(n > 45)
    counts = rng.multinomial(n, np.full(k, 1 / k))
    h, w = cv.shape
    out = []
    a = st.radius * sc
    for m in counts:
        cy, cx = rng.uniform(0.15 * h, 0.85 * h), rng.uniform(0.15 * w, 0.85 * w)
        sd = max(1.0, math.sqrt(m)) * a * 0.85
        pts = rng.normal(0, 1, (3 * m + 3, 2)) * [sd * rng.uniform(0.7, 1.3), sd]
        ang = rng.uniform(0, np.pi)
        c, s = math.cos(ang), math.sin(ang)
        pts = pts @ np.array([[c, s], [-s, c]])
        # inner points first: the nest grows from its centre outwards
        pts = pts[np.argsort((pts ** 2).sum(1))]
        out.extend((cy + p[0], cx + p[1], None, None) for p in pts)
    return out


def _focus_candidates(cv, n, st, rng, foci):
    h, w = cv.shape
    m_focus = rng.binomial(n, 0.7)
    out = []
    for _ in range(3 * m_focus):
        fy, fx, sd = foci[int(rng.integers(len(foci)))]
        out.append((fy + rng.normal(0, sd), fx + rng.normal(0, sd), None, None))
    pts = _uniform_points(rng, cv.shape, 3 * (n - m_focus) + 2)
    out = out + [(p[0], p[1], None, None) for p in pts]
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def _aligned_candidates(cv, n, st, rng, theta0):
    pts = _uniform_points(rng, cv.shape, 3 * n + 3)
    return [(p[0], p[1], theta0, None) for p in pts]


def _bundle_candidates(cv, n, st, rng):
    h, w = cv.shape
    sc = cv.scale
    theta = rng.uniform(0, np.pi)
    width = rng.uniform(30, 60) * sc
    py, px = rng.uniform(0.2 * h, 0.8 * h), rng.uniform(0.2 * w, 0.8 * w)
    c, s = math.cos(theta), math.sin(theta)
    # eosinophilic smooth-muscle band
    yy = np.arange(h, dtype=np.float32)[:, None] - np.float32(py)
    xx = np.arange(w, dtype=np.float32)[None, :] - np.float32(px)
    dist = np.abs(yy * np.float32(c) - xx * np.float32(s))
    band = np.clip((width / 2 + 4 - dist) / 8, 0, 1)
    cv.eosin += np.float32(0.25) * band * (1 + np.float32(0.15) * cv.coarse)
    L = math.hypot(h, w)
    t = rng.uniform(-L / 2, L / 2, 3 * n + 3)
    o = rng.uniform(-width / 2, width / 2, 3 * n + 3)
    ys, xs = py + t * s + o * c, px + t * c - o * s
    keep = (ys > -10) & (ys < h + 10) & (xs > -10) & (xs < w + 10)
    return [(y, x, theta, None) for y, x in zip(ys[keep], xs[keep])]


def _necrosis_candidates(cv, n, st, rng):
    h, w = cv.shape
    sc = cv.scale
    cy, cx = rng.uniform(0.1 * h, 0.9 * h), rng.uniform(0.1 * w, 0.9 * w)
    sd = max(12 * sc, math.sqrt(n) * 6 * sc)
    # pink granular debris around the necrotic focus
    yy = np.arange(h, dtype=np.float32)[:, None] - np.float32(cy)
    xx = np.arange(w, dtype=np.float32)[None, :] - np.float32(cx)
    blob = np.exp(-(yy * yy + xx * xx) / np.float32(2 * (1.4 * sd) ** 2))
    cv.eosin += np.float32(0.18) * blob * (1 + np.float32(0.3) * cv.fine)
    cv.hbg += np.float32(0.12) * blob * np.maximum(cv.coarse - 1, 0)
    pts = rng.normal(0, sd, (3 * n + 3, 2))
    return [(cy + p[0], cx + p[1], None, None) for p in pts]
