"""Dataset domains: stain vectors and gains, scale, noise, blur and class mix.

:class:`DomainParams` holds the acquisition and cohort of one synthetic dataset and
:func:`domain_params` the defaults of the PanNuke-, MoNuSAC- and CoNSeP-like ones.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

import numpy as np

from .styles import LEAVES

#: Names of the synthetic datasets (each also names its label set in the default taxonomy).
DATASET_NAMES = ("pannuke", "monusac", "consep")


def _unit(v) -> tuple:
    v = np.asarray(v, np.float64)
    if v.shape != (3,) or not np.all(np.isfinite(v)) or np.any(v < 0) or not v.sum() > 0:
        raise ValueError(f"a stain vector needs 3 non-negative finite entries, got {v!r}")
    return tuple(float(x) for x in v / np.linalg.norm(v))


@dataclass(frozen=True)
class DomainParams:
    """Domain (acquisition and cohort) of one synthetic dataset.

    Parameters
    ----------
    name : str
        Dataset name, written to ``meta["dataset"]``.
    label_set : str
        Name of the label set in the taxonomy that labels this dataset.
    stain_h, stain_e : tuple of 3 float
        Hematoxylin and eosin optical-density vectors over RGB (normalised to unit length).
    h_gain, e_gain : float
        Multipliers of hematoxylin and eosin concentrations (staining strength).
    background : tuple of 3 float
        Incident light ``I0`` per RGB channel (the colour of empty glass).
    scale : float
        Nucleus and structure size factor (magnification).
    density : float
        Multiplier of the number of nuclei per tile.
    noise : float
        Standard deviation of additive Gaussian noise (0-255 intensity units).
    blur : float
        Sigma (px) of the Gaussian blur of the optics.
    stain_jitter : float
        Per-tile random perturbation of the stain vectors and gains (within-dataset variation).
    class_mix : mapping of str to float, or tuple of (str, float) pairs
        Relative leaf frequencies; stored as pairs in :data:`LEAVES` order then any others.
    mix_concentration : float
        Each tile draws its class mix from a Dirichlet distribution around
        ``class_mix`` with concentrations ``mix_concentration * n_leaves * class_mix``:
        small values give tiles dominated by few nucleus types, large values tiles
        close to ``class_mix``.
    uncovered : {"ignore", "omit", "background"}
        What to do with leaves the label set does not cover: draw them and mark them
        ignored (``classes`` None, pixels in ``ignore``), never draw them, or draw them
        and leave them unannotated as background (label 0: MoNuSAC's real convention
        outside its "Ambiguous" regions, which teaches that a visible nucleus is background).
    leaf_shift : float
        Per-domain perturbation of every leaf's appearance (0: none, the default). Each
        leaf's radius, hematoxylin darkness, elongation excess (``elongation - 1``) and
        cytoplasm eosin are multiplied by ``exp(leaf_shift * z)`` and its vesicular ``rim``
        shifted by ``leaf_shift * z / 2`` (clipped to [0, 1]), with ``z`` standard normal
        drawn from the domain's ``name`` and the leaf (the same for every tile and seed of
        the domain, different between domains): the same class looks different in
        different datasets.
    label_noise : float
        Fraction (probability per annotated nucleus) of labels replaced by another label of
        the dataset's label set, drawn uniformly (0: none, the default). ``meta["noisy"]``
        lists the changed instance ids.
    lookalike : mapping of str to str, or tuple of (str, str) pairs
        ``{leaf: other leaf}``: in this domain ``leaf`` is drawn with the appearance of
        ``other leaf`` (after ``leaf_shift``), e.g. ``{"plasma_cell": "epithelial_tumor"}``
        in a domain whose coarse label hides plasma cells. Its labels (and
        ``meta["leaves"]``) stay the true leaf, so a dataset's coarse label can hide a leaf
        that looks like a leaf of another class (empty: none, the default).
    max_overlap : float
        Largest fraction of a new nucleus that may lie on earlier ones (clipped off).
    mpp : float
        Microns per pixel of scale 1; ``meta["mpp"]`` is ``mpp / scale``.
    nuclei_per_tile : float
        Mean number of nuclei drawn on a 256 x 256 tile at scale 1 and density 1.
    """

    name: str
    label_set: str
    stain_h: tuple = (0.5626, 0.7201, 0.4062)
    stain_e: tuple = (0.2159, 0.8012, 0.5581)
    h_gain: float = 1.0
    e_gain: float = 1.0
    background: tuple = (244.0, 242.0, 245.0)
    scale: float = 1.0
    density: float = 1.0
    noise: float = 3.0
    blur: float = 0.6
    stain_jitter: float = 0.03
    class_mix: tuple = ()
    mix_concentration: float = 1.5
    uncovered: str = "ignore"
    leaf_shift: float = 0.0
    label_noise: float = 0.0
    lookalike: tuple = ()
    max_overlap: float = 0.12
    mpp: float = 0.5
    nuclei_per_tile: float = 70.0

    def __post_init__(self):
        object.__setattr__(self, "stain_h", _unit(self.stain_h))
        object.__setattr__(self, "stain_e", _unit(self.stain_e))
        bg = tuple(float(x) for x in self.background)
        if len(bg) != 3 or not all(0 < x <= 255 for x in bg):
            raise ValueError(f"DomainParams.background needs 3 values in (0, 255], got {self.background!r}")
        object.__setattr__(self, "background", bg)
        mix = dict(self.class_mix.items() if isinstance(self.class_mix, Mapping) else self.class_mix)
        for k, v in mix.items():
            if not isinstance(k, str) or not (np.isfinite(v) and v >= 0):
                raise ValueError(
                    f"DomainParams.class_mix: need leaf -> non-negative weight, got {k!r}: {v!r}")
        order = [l for l in LEAVES if l in mix] + [l for l in mix if l not in LEAVES]
        object.__setattr__(self, "class_mix", tuple((l, float(mix[l])) for l in order))
        if self.uncovered not in ("ignore", "omit", "background"):
            raise ValueError(f"DomainParams.uncovered must be 'ignore', 'omit' or 'background', got {self.uncovered!r}")
        if not (np.isfinite(self.leaf_shift) and self.leaf_shift >= 0):
            raise ValueError(f"DomainParams.leaf_shift must be non-negative, got {self.leaf_shift}")
        look = dict(self.lookalike.items() if isinstance(self.lookalike, Mapping) else self.lookalike)
        for k, v in look.items():
            if not (isinstance(k, str) and isinstance(v, str)) or k == v:
                raise ValueError(f"DomainParams.lookalike: need leaf -> another leaf, got {k!r}: {v!r}")
        object.__setattr__(self, "lookalike", tuple(sorted(look.items())))
        if not (0 <= self.label_noise <= 1):
            raise ValueError(f"DomainParams.label_noise must be in [0, 1], got {self.label_noise}")
        for f in ("scale", "density", "h_gain", "e_gain", "mpp", "mix_concentration"):
            if not getattr(self, f) > 0:
                raise ValueError(f"DomainParams.{f} must be positive, got {getattr(self, f)}")
        for f in ("noise", "blur", "stain_jitter", "nuclei_per_tile"):
            if not getattr(self, f) >= 0:
                raise ValueError(f"DomainParams.{f} must be non-negative, got {getattr(self, f)}")
        if not 0 <= self.max_overlap < 1:
            raise ValueError(f"DomainParams.max_overlap must be in [0, 1), got {self.max_overlap}")

    @property
    def stain_matrix(self) -> np.ndarray:
        """``(2, 3)`` array: rows hematoxylin and eosin optical-density vectors."""
        return np.array([self.stain_h, self.stain_e], np.float64)

    @property
    def leaf_probs(self) -> dict:
        """Normalised class mix ``{leaf: probability}``."""
        tot = sum(w for _, w in self.class_mix)
        return {l: w / tot for l, w in self.class_mix} if tot > 0 else {}


def domain_params(name: str, **overrides) -> DomainParams:
    """Default domain of a synthetic dataset, with optional overrides.

    Parameters
    ----------
    name : {"pannuke", "monusac", "consep"}
        Dataset name.
    **overrides
        Any :class:`DomainParams` field, e.g. ``scale=1.2`` or ``class_mix={...}``.

    Returns
    -------
    DomainParams

    Notes
    -----
    * ``pannuke``: standard H&E (Macenko reference stain vectors), scale 1, tumour-,
      inflammatory- and connective-rich mix, light noise.
    * ``monusac``: bluer hematoxylin, paler pinker eosin, larger nuclei (scale 1.15),
      more noise and blur; mostly epithelium and lymphocytes.
    * ``consep``: purple-magenta, strongly stained, smaller nuclei (scale 0.85), sharp;
      colorectal mix with glands, muscle and plasma cells.
    """
    base = {
        "pannuke": dict(
            name="pannuke", label_set="pannuke",
            stain_h=(0.5626, 0.7201, 0.4062), stain_e=(0.2159, 0.8012, 0.5581),
            h_gain=0.85, e_gain=1.0, background=(244, 242, 245), scale=1.0, density=1.0,
            noise=2.5, blur=0.6,
            class_mix=dict(epithelial_normal=0.10, epithelial_tumor=0.28, lymphocyte=0.14,
                           plasma_cell=0.05, neutrophil=0.03, eosinophil=0.02, macrophage=0.04,
                           fibroblast=0.14, muscle=0.04, endothelial=0.05, adipocyte=0.02,
                           necrotic=0.05, other_cell=0.04)),
        "monusac": dict(
            name="monusac", label_set="monusac",
            stain_h=(0.68, 0.68, 0.27), stain_e=(0.10, 0.90, 0.42),
            h_gain=0.8, e_gain=0.8, background=(238, 240, 246), scale=1.15, density=1.0,
            noise=4.5, blur=0.9,
            class_mix=dict(epithelial_normal=0.12, epithelial_tumor=0.25, lymphocyte=0.28,
                           plasma_cell=0.03, neutrophil=0.05, eosinophil=0.01, macrophage=0.05,
                           fibroblast=0.09, muscle=0.02, endothelial=0.04, adipocyte=0.01,
                           necrotic=0.02, other_cell=0.03)),
        "consep": dict(
            name="consep", label_set="consep",
            stain_h=(0.50, 0.78, 0.38), stain_e=(0.30, 0.76, 0.58),
            h_gain=0.95, e_gain=1.15, background=(247, 240, 244), scale=0.85, density=1.0,
            noise=2.0, blur=0.45,
            class_mix=dict(epithelial_normal=0.12, epithelial_tumor=0.22, lymphocyte=0.12,
                           plasma_cell=0.07, neutrophil=0.03, eosinophil=0.03, macrophage=0.03,
                           fibroblast=0.15, muscle=0.08, endothelial=0.07, adipocyte=0.01,
                           necrotic=0.02, other_cell=0.05)),
    }
    if name not in base:
        raise ValueError(f"unknown synthetic dataset {name!r}; known: {', '.join(DATASET_NAMES)}")
    known = {f.name for f in fields(DomainParams)}
    bad = set(overrides) - known
    if bad:
        raise TypeError(f"domain_params: unknown field(s) {sorted(bad)}; known: {sorted(known)}")
    return DomainParams(**{**base[name], **overrides})


_NEUTRAL_DOMAIN_KW = dict(name="synthetic", label_set="leaves")
