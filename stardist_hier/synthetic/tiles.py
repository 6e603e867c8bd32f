"""One synthetic H&E tile: :func:`make_tile`."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .canvas import _Canvas
from .domains import _NEUTRAL_DOMAIN_KW, DomainParams
from .placement import (_PLACEMENT_ORDER, _aligned_candidates, _bundle_candidates, _draw_fat,
                        _draw_glands, _draw_vessels, _fill, _focus_candidates,
                        _necrosis_candidates, _nest_candidates, _uniform_points)
from .render import _background, _epithelial_cytoplasm, _render
from .styles import LeafStyle, default_leaf_styles

def make_tile(leaf_probs=None, *, rng, size=256, domain: DomainParams | None = None,
              styles: Mapping[str, LeafStyle] | None = None, n_nuclei: int | None = None):
    """Draw one synthetic H&E tile.

    Parameters
    ----------
    leaf_probs : mapping of str to float, optional
        Relative frequency of each leaf on this tile (normalised here). Default: the
        domain's class mix, or all leaves of ``styles`` equally.
    rng : numpy.random.Generator
        Source of randomness (the only one used).
    size : int or (int, int)
        Tile height and width in pixels.
    domain : DomainParams, optional
        Stain, scale, noise and blur. Default: a neutral domain (Macenko reference stains).
    styles : mapping of str to LeafStyle, optional
        Leaf appearances; default :func:`default_leaf_styles`.
    n_nuclei : int, optional
        Number of nuclei to attempt; default Poisson with mean
        ``domain.nuclei_per_tile * domain.density * area / 256**2 / domain.scale**2``.
        Fewer may be drawn where space runs out.

    Returns
    -------
    image : ndarray, (H, W, 3) uint8
        RGB tile.
    labels : ndarray, (H, W) int32
        Instance labels 1..n, 0 background; each pixel belongs to at most one nucleus.
    leaf_of_instance : dict of int to str
        ``{instance id: leaf name}``.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    shape = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
    if len(shape) != 2 or min(shape) < 16:
        raise ValueError(f"size must be an int or (height, width) of at least 16, got {size!r}")
    domain = domain if domain is not None else DomainParams(**_NEUTRAL_DOMAIN_KW)
    styles = default_leaf_styles() if styles is None else styles
    if leaf_probs is None:
        leaf_probs = domain.leaf_probs or {l: 1.0 for l in styles}
    probs = {l: float(p) for l, p in dict(leaf_probs).items() if p > 0}
    unknown = [l for l in probs if l not in styles]
    if unknown:
        raise ValueError(f"make_tile: no LeafStyle for leaf/leaves {unknown}; known: {', '.join(styles)}")
    if any(not np.isfinite(p) for p in probs.values()):
        raise ValueError("make_tile: leaf probabilities must be finite")
    sc = domain.scale
    h, w = shape
    if n_nuclei is None:
        mean = domain.nuclei_per_tile * domain.density * h * w / 256 ** 2 / sc ** 2
        n_nuclei = int(rng.poisson(mean))
    leaves = list(probs)
    counts = dict(zip(leaves, rng.multinomial(n_nuclei, np.array([probs[l] for l in leaves]) /
                                              sum(probs.values())))) if leaves else {}

    cv = _Canvas(rng, shape, sc, domain.max_overlap)
    _background(cv, rng)
    theta0 = rng.uniform(0, np.pi)

    # structures first (they decide where nuclei go), then nuclei by placement order
    cands = {}
    for leaf in leaves:
        st, n = styles[leaf], counts[leaf]
        if n == 0:
            continue
        if st.placement == "gland":
            cands[leaf] = _draw_glands(cv, n, st, rng)
        elif st.placement == "vessel":
            cands[leaf] = _draw_vessels(cv, n, st, rng)
        elif st.placement == "fat":
            cands[leaf] = _draw_fat(cv, n, st, rng)
    cv.forbid = cv.clear < 0.5

    k = 1 + int(rng.poisson(1.0))
    foci = [(rng.uniform(0, h), rng.uniform(0, w), rng.uniform(10, 28) * sc) for _ in range(k)]
    for placement in _PLACEMENT_ORDER:
        for leaf in leaves:
            st, n = styles[leaf], counts[leaf]
            if n == 0 or st.placement != placement:
                continue
            if placement in ("gland", "vessel", "fat"):
                c = cands[leaf]
            elif placement == "nest":
                c = _nest_candidates(cv, n, st, rng)
            elif placement == "focus":
                c = _focus_candidates(cv, n, st, rng, foci)
            elif placement == "aligned":
                c = _aligned_candidates(cv, n, st, rng, theta0)
            elif placement == "bundle":
                c = _bundle_candidates(cv, n, st, rng)
            elif placement == "necrosis":
                c = _necrosis_candidates(cv, n, st, rng)
            else:
                c = [(p[0], p[1], None, None) for p in _uniform_points(rng, shape, 3 * n + 2)]
            _fill(cv, leaf, st, c, n)

    _epithelial_cytoplasm(cv, styles)
    image = _render(cv, domain, rng, theta0)
    return image, cv.labels, {i + 1: l for i, l in enumerate(cv.leaves)}
