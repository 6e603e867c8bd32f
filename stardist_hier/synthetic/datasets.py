"""Synthetic datasets labelled with their label sets: :func:`generate_dataset`, :func:`generate_benchmark`."""

from __future__ import annotations

import zlib
from dataclasses import asdict
from typing import Mapping

import numpy as np

from ..datasets.record import Sample
from ..tree import default_taxonomy
from .domains import DATASET_NAMES, DomainParams, domain_params
from .styles import LeafStyle, default_leaf_styles
from .tiles import make_tile

def _dataset_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def generate_dataset(name: str, n_tiles: int, *, seed: int, size=256, taxonomy=None,
                     domain: DomainParams | Mapping | None = None,
                     styles: Mapping[str, LeafStyle] | None = None) -> list:
    """Generate one synthetic dataset labelled with its label set.

    Parameters
    ----------
    name : str
        ``"pannuke"``, ``"monusac"`` or ``"consep"`` (any name if ``domain`` is a
        :class:`DomainParams`).
    n_tiles : int
        Number of tiles.
    seed : int
        Seed; the same seed, name and options give identical arrays. Tile ``i`` does
        not depend on ``n_tiles``.
    size : int or (int, int)
        Tile size in pixels.
    taxonomy : Taxonomy, optional
        Tree and label sets; default :func:`stardist_hier.tree.default_taxonomy`.
    domain : DomainParams or mapping, optional
        The domain, or overrides of the default domain of ``name`` (e.g. ``{"scale": 1.3}``).
    styles : mapping of str to LeafStyle, optional
        Leaf appearances; default :func:`default_leaf_styles`.

    Returns
    -------
    list of Sample
        ``classes`` maps every instance to a label of ``domain.label_set`` or to
        ``None`` for nuclei of leaves the label set does not cover (their pixels are in
        ``ignore``; see :mod:`stardist_hier.synthetic`). ``meta`` holds ``dataset``,
        ``source`` (``"synthetic"``), ``tissue`` and ``split`` (None), ``mpp``, ``seed``,
        ``index`` (of the tile), ``leaves`` (``{id: leaf}``, the true leaf of every
        instance), ``dominant_leaf`` (the most frequent leaf) and ``domain`` (the
        :class:`DomainParams` as a dict).
    """
    if isinstance(domain, DomainParams):
        dom = domain
    else:
        dom = domain_params(name, **dict(domain or {}))
    n_tiles = int(n_tiles)
    if n_tiles < 0:
        raise ValueError(f"n_tiles must be non-negative, got {n_tiles}")
    taxonomy = default_taxonomy() if taxonomy is None else taxonomy
    ls = taxonomy[dom.label_set]
    styles = default_leaf_styles() if styles is None else styles
    if dom.leaf_shift > 0:
        styles = shifted_styles(styles, dom.name, dom.leaf_shift)
    if dom.lookalike:
        unknown = sorted({l for pair in dom.lookalike for l in pair} - set(styles))
        if unknown:
            raise ValueError(f"dataset {name!r}: domain lookalike names unknown leaves {unknown}; "
                             f"known: {', '.join(sorted(styles))}")
        styles = {**styles, **{leaf: styles[other] for leaf, other in dom.lookalike}}
    leaf_to_label = {leaf: lab for lab in ls.labels for leaf in ls.leaf_set(lab)}
    noise_labels = [lab for lab in ls.labels if ls.leaf_set(lab)]

    probs = dom.leaf_probs
    missing = [l for l, p in probs.items() if p > 0 and l not in taxonomy.tree.leaves]
    if missing:
        raise ValueError(f"dataset {name!r}: class_mix leaves {missing} are not leaves of the class tree")
    if dom.uncovered == "omit":
        probs = {l: p for l, p in probs.items() if l in leaf_to_label}
    leaves = [l for l, p in probs.items() if p > 0]
    if not leaves:
        raise ValueError(f"dataset {name!r}: the class mix has no leaf to draw")
    p = np.array([probs[l] for l in leaves], np.float64)
    p /= p.sum()

    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seeds = np.random.SeedSequence([int(seed), _dataset_key(dom.name)]).spawn(n_tiles)
    out = []
    for i, ss in enumerate(seeds):
        rng = np.random.default_rng(ss)
        mix = rng.dirichlet(dom.mix_concentration * len(leaves) * p + 1e-3)
        image, labels, leaf_of = make_tile(dict(zip(leaves, mix)), rng=rng, size=size, domain=dom,
                                           styles=styles)
        classes = {i_: leaf_to_label.get(l) for i_, l in leaf_of.items()}
        if dom.uncovered == "background":
            labels, leaf_of, classes = _uncovered_as_background(labels, leaf_of, classes)
        noisy = []
        if dom.label_noise > 0 and len(noise_labels) > 1:
            for i_ in sorted(classes):
                if classes[i_] is not None and rng.random() < dom.label_noise:
                    others = [lab for lab in noise_labels if lab != classes[i_]]
                    classes[i_] = others[int(rng.integers(len(others)))]
                    noisy.append(i_)
        ignored = [i_ for i_, c in classes.items() if c is None]
        if ignored:
            lut = np.zeros(len(leaf_of) + 1, bool)
            lut[ignored] = True
            ignore = lut[labels]
        else:
            ignore = np.zeros(labels.shape, bool)
        counts = {}
        for l in leaf_of.values():
            counts[l] = counts.get(l, 0) + 1
        dominant = max(counts, key=counts.get) if counts else None
        meta = {"dataset": dom.name, "source": "synthetic", "tissue": None, "split": None,
                "mpp": dom.mpp / dom.scale, "seed": int(seed), "index": i,
                "leaves": dict(leaf_of), "dominant_leaf": dominant, "domain": asdict(dom)}
        if dom.label_noise > 0:
            meta["noisy"] = noisy
        out.append(Sample(image=image, labels=labels, classes=classes, label_set=dom.label_set,
                          ignore=ignore, meta=meta))
    return out


def _uncovered_as_background(labels, leaf_of, classes):
    """Uncovered nuclei (class None) set to background; the rest renumbered 1..n."""
    keep = [i for i in sorted(leaf_of) if classes.get(i) is not None]
    lut = np.zeros(max(leaf_of, default=0) + 1, np.int32)
    lut[keep] = np.arange(1, len(keep) + 1, dtype=np.int32)
    new = lut[labels]
    return (new, {j + 1: leaf_of[i] for j, i in enumerate(keep)}, {j + 1: classes[i] for j, i in enumerate(keep)})


def shifted_styles(styles: Mapping[str, LeafStyle], domain_name: str, shift: float) -> dict:
    """Every leaf's style perturbed for one domain (see ``DomainParams.leaf_shift``)."""
    from dataclasses import replace

    out = {}
    for leaf, st in styles.items():
        z = np.random.default_rng([_dataset_key(domain_name), _dataset_key(leaf)]).standard_normal(5)
        f = np.exp(shift * z)
        out[leaf] = replace(st, radius=float(st.radius * f[0]), darkness=float(st.darkness * f[1]),
                            elongation=float(1.0 + (st.elongation - 1.0) * f[2]),
                            cytoplasm_eosin=float(st.cytoplasm_eosin * f[3]),
                            rim=float(np.clip(st.rim + shift * z[4] / 2, 0.0, 1.0)))
    return out


def generate_benchmark(n_tiles_per_dataset: int, *, seed: int, size=256, taxonomy=None,
                       names=DATASET_NAMES) -> dict:
    """Generate the three synthetic datasets (PanNuke-, MoNuSAC- and CoNSeP-like).

    Parameters
    ----------
    n_tiles_per_dataset : int
        Tiles per dataset.
    seed : int
        Seed shared by all datasets (each dataset draws its own stream from it).
    size : int or (int, int)
        Tile size.
    taxonomy : Taxonomy, optional
        Default :func:`stardist_hier.tree.default_taxonomy`.
    names : sequence of str
        Datasets to generate (default :data:`DATASET_NAMES`).

    Returns
    -------
    dict of str to list of Sample
    """
    taxonomy = default_taxonomy() if taxonomy is None else taxonomy
    return {n: generate_dataset(n, n_tiles_per_dataset, seed=seed, size=size, taxonomy=taxonomy)
            for n in names}
