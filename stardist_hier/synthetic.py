"""Synthetic H&E-like nucleus tiles for three dataset-like domains (no TensorFlow).

The generator draws every leaf of the default class tree (13 nucleus types) with a
class-dependent, learnable appearance and puts the tiles into three "datasets" that
mimic PanNuke, MoNuSAC and CoNSeP: each is labelled with that dataset's label set of
the taxonomy and has its own domain shift (stain colour, nucleus scale, noise, blur,
class mix).

Appearance model
----------------
Each leaf has a :class:`LeafStyle`: size, elongation, outline (round, pointed
spindle, blunt cigar, curved, lobulated, irregular), chromatin texture (fine and
coarse grain, vesicular rim, nucleoli, plasma-cell "clock face", fragmented
karyorrhexis), hematoxylin darkness, cytoplasm drawn around the nucleus (eccentric
for plasma cells, red granules for eosinophils, foamy for macrophages) and a
placement rule giving its typical neighbours: normal epithelium lines glands around a
white lumen, tumour epithelium forms crowded nests, lymphocytes and plasma cells
gather in inflammatory foci, fibroblasts lie aligned with the collagen fibres, smooth
muscle nuclei lie in parallel bundles, endothelial nuclei curve around small vessels
with red blood cells, adipocyte nuclei are thin crescents at the rim of large fat
vacuoles, necrotic nuclei are small, dark and fragmented in pink debris.

Siblings differ less than super-classes (epithelium: large oval; inflammatory: small,
dark, round or lobed; connective: elongated; other: small pyknotic or medium
irregular), so that the class hierarchy matters.

Nuclei may touch but never overlap: a nucleus is drawn only if it overlaps the
nuclei drawn before it by at most ``max_overlap`` of its area; the shared pixels stay
with the earlier nucleus and the newcomer is kept only if it stays in one piece
(4-connected; a few stray rasterised pixels at thin tips are dropped).

Colour comes from a Beer-Lambert model: optical density ``OD = c_H * h + c_E * e``
with per-pixel hematoxylin and eosin concentrations and stain vectors ``h`` and ``e``
(rows of the domain's stain matrix), intensity ``I = I0 * 10**(-OD)``, followed by a
Gaussian blur and additive (uniform) noise. Each tile also jitters the stain vectors
and gains a little (``DomainParams.stain_jitter``).

Label sets and unannotated nuclei
---------------------------------
Each instance's class is the label of the dataset's label set whose leaf set holds
the nucleus's leaf. Leaves that the label set does not cover (MoNuSAC has no
connective, plasma-cell, eosinophil, necrotic or other label; PanNuke has no
``other_cell``; CoNSeP as mapped in the default taxonomy has no adipocyte or necrotic
label) are, by default (``DomainParams.uncovered == "ignore"``), still drawn, because
the real tissue contains them, but marked as unannotated: their ``classes`` entry is
``None`` and their pixels are set in ``Sample.ignore``. This mirrors MoNuSAC, which
annotated only its four classes and marked other regions "Ambiguous", and avoids the
alternative of leaving such nuclei as background, which would teach a model that a
visible nucleus is background. ``uncovered="omit"`` instead never draws uncovered
leaves in that dataset.

Every sample also records the true leaf of each instance in ``meta["leaves"]``
(``{id: leaf}``) so that models can be scored at finer cuts than the dataset's labels.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, fields
from types import MappingProxyType
from typing import Mapping

import numpy as np
from scipy import ndimage as ndi

from .datasets.record import Sample
from .tree import default_taxonomy

__all__ = [
    "LEAVES",
    "DATASET_NAMES",
    "LeafStyle",
    "DomainParams",
    "default_leaf_styles",
    "domain_params",
    "make_tile",
    "generate_dataset",
    "generate_benchmark",
]

#: The 13 leaves of the default class tree, in tree order.
LEAVES = (
    "epithelial_normal", "epithelial_tumor",
    "lymphocyte", "plasma_cell", "neutrophil", "eosinophil", "macrophage",
    "fibroblast", "muscle", "endothelial", "adipocyte",
    "necrotic", "other_cell",
)

#: Names of the synthetic datasets (each also names its label set in the default taxonomy).
DATASET_NAMES = ("pannuke", "monusac", "consep")

#: Placement rules understood by :func:`make_tile`.
PLACEMENTS = ("gland", "nest", "focus", "scatter", "aligned", "bundle", "vessel", "fat",
              "necrosis")

# Nuclei are drawn in this order of placement rule (earlier ones win overlaps).
_PLACEMENT_ORDER = ("gland", "vessel", "fat", "nest", "bundle", "aligned", "necrosis",
                    "focus", "scatter")


# ----------------------------------------------------------------------------- styles
@dataclass(frozen=True)
class LeafStyle:
    """Appearance of one nucleus type; lengths are pixels at domain scale 1 (~0.5 um/px).

    Parameters
    ----------
    radius : float
        Mean major semi-axis (for lobed nuclei: of one lobe).
    radius_sd : float
        Standard deviation of the log of the major semi-axis.
    elongation : float
        Mean ratio of major to minor semi-axis (at least 1).
    elongation_sd : float
        Standard deviation of the elongation.
    tip : float
        Exponent of the outline along the major axis: 2 is an ellipse, below 2 gives
        pointed (spindle) ends, above 2 blunt (cigar) ends.
    bend : float
        Curvature of the major axis (1/px); curved placements override the sign and size.
    irregularity : float
        Amplitude of the random Fourier perturbation of the outline.
    harmonics : int
        Highest Fourier harmonic of the outline perturbation.
    lobes : int
        Number of lobes (1: a single nucleus; neutrophils have 3, eosinophils 2).
    lobes_jitter : int
        Lobe count varies uniformly by up to this many lobes (at least 2 lobes stay).
    darkness : float
        Mean hematoxylin concentration (optical density units before the stain vector).
    darkness_sd : float
        Standard deviation of the log of the darkness between nuclei.
    fine_texture, coarse_texture : float
        Relative amplitude of fine (~1 px) and coarse (~2 px) chromatin grain.
    rim : float
        Vesicular chromatin: 0 uniform, towards 1 pale centre and dark rim.
    nucleoli : float
        Mean number of nucleoli (Poisson).
    nucleolus_strength : float
        Extra darkness at a nucleolus centre, relative to the nucleus darkness.
    clock : float
        Amplitude of the "clock-face" peripheral chromatin of plasma cells.
    fragmented : float
        0 to 1; clumped, broken-up chromatin (karyorrhexis) of necrotic nuclei.
    cytoplasm : float
        Radius of the drawn cytoplasm relative to the nucleus (0: none drawn).
    cytoplasm_eosin, cytoplasm_hema : float
        Eosin and hematoxylin added by the cytoplasm.
    cytoplasm_offset : float
        Offset of the nucleus within its cytoplasm relative to the cytoplasm radius
        (plasma cells are eccentric).
    cytoplasm_granular : float
        Granularity of the cytoplasm (eosinophil granules, foamy macrophages).
    placement : str
        One of ``gland``, ``nest``, ``focus``, ``scatter``, ``aligned``, ``bundle``,
        ``vessel``, ``fat``, ``necrosis`` (see the module notes).
    orientation_sd : float
        Standard deviation (radians) of the orientation around the one the placement
        gives; placements without an orientation draw a uniform one.
    """

    radius: float
    radius_sd: float = 0.12
    elongation: float = 1.2
    elongation_sd: float = 0.1
    tip: float = 2.0
    bend: float = 0.0
    irregularity: float = 0.03
    harmonics: int = 4
    lobes: int = 1
    lobes_jitter: int = 0
    darkness: float = 1.0
    darkness_sd: float = 0.1
    fine_texture: float = 0.1
    coarse_texture: float = 0.05
    rim: float = 0.0
    nucleoli: float = 0.0
    nucleolus_strength: float = 0.6
    clock: float = 0.0
    fragmented: float = 0.0
    cytoplasm: float = 0.0
    cytoplasm_eosin: float = 0.0
    cytoplasm_hema: float = 0.0
    cytoplasm_offset: float = 0.0
    cytoplasm_granular: float = 0.0
    placement: str = "scatter"
    orientation_sd: float = 0.2

    def __post_init__(self):
        if not self.radius > 0:
            raise ValueError(f"LeafStyle.radius must be positive, got {self.radius}")
        if self.elongation < 1:
            raise ValueError(f"LeafStyle.elongation must be at least 1, got {self.elongation}")
        if self.lobes < 1:
            raise ValueError(f"LeafStyle.lobes must be at least 1, got {self.lobes}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"LeafStyle.placement must be one of {PLACEMENTS}, got {self.placement!r}")


def default_leaf_styles() -> Mapping[str, LeafStyle]:
    """Default appearance of the 13 leaves of the default tree.

    Returns
    -------
    mapping of str to LeafStyle
        Read-only mapping ``{leaf: style}`` in tree order. Build a changed copy with
        ``{**default_leaf_styles(), "lymphocyte": dataclasses.replace(s, radius=6)}``.
    """
    s = {
        # epithelial: large, oval, paler, nucleoli; normal lines glands, tumour in crowded nests
        "epithelial_normal": LeafStyle(
            radius=7.5, radius_sd=0.08, elongation=1.5, elongation_sd=0.12, irregularity=0.02,
            darkness=0.95, darkness_sd=0.08, fine_texture=0.10, coarse_texture=0.05,
            nucleoli=0.3, nucleolus_strength=0.4, placement="gland", orientation_sd=0.15),
        "epithelial_tumor": LeafStyle(
            radius=10.5, radius_sd=0.18, elongation=1.3, elongation_sd=0.15, irregularity=0.08,
            harmonics=5, darkness=0.9, darkness_sd=0.22, fine_texture=0.10, coarse_texture=0.25,
            rim=0.45, nucleoli=1.3, nucleolus_strength=0.9, placement="nest"),
        # inflammatory: small, dark, round or lobed, with characteristic cytoplasm
        "lymphocyte": LeafStyle(
            radius=5.0, radius_sd=0.08, elongation=1.08, elongation_sd=0.05, irregularity=0.03,
            darkness=1.5, darkness_sd=0.08, fine_texture=0.08, coarse_texture=0.06,
            placement="focus"),
        "plasma_cell": LeafStyle(
            radius=5.6, radius_sd=0.08, elongation=1.2, elongation_sd=0.08, irregularity=0.03,
            darkness=1.2, darkness_sd=0.08, fine_texture=0.06, coarse_texture=0.05, clock=0.45,
            cytoplasm=2.0, cytoplasm_eosin=0.35, cytoplasm_hema=0.22, cytoplasm_offset=0.45,
            placement="focus"),
        "neutrophil": LeafStyle(
            radius=2.9, radius_sd=0.08, elongation=1.15, elongation_sd=0.08, irregularity=0.02,
            lobes=3, lobes_jitter=1, darkness=1.35, darkness_sd=0.08, fine_texture=0.05,
            coarse_texture=0.05, cytoplasm=2.6, cytoplasm_eosin=0.18, cytoplasm_hema=0.03,
            cytoplasm_granular=0.2, placement="scatter"),
        "eosinophil": LeafStyle(
            radius=3.6, radius_sd=0.08, elongation=1.2, elongation_sd=0.08, irregularity=0.02,
            lobes=2, darkness=1.15, darkness_sd=0.08, fine_texture=0.05, coarse_texture=0.05,
            cytoplasm=2.4, cytoplasm_eosin=0.6, cytoplasm_hema=0.0, cytoplasm_granular=0.5,
            placement="scatter"),
        "macrophage": LeafStyle(
            radius=8.5, radius_sd=0.12, elongation=1.4, elongation_sd=0.12, bend=0.045,
            irregularity=0.05, darkness=0.65, darkness_sd=0.1, fine_texture=0.15,
            coarse_texture=0.08, rim=0.2, cytoplasm=2.0, cytoplasm_eosin=0.15,
            cytoplasm_hema=0.06, cytoplasm_granular=0.6, placement="scatter"),
        # connective: elongated
        "fibroblast": LeafStyle(
            radius=12.0, radius_sd=0.12, elongation=3.8, elongation_sd=0.5, tip=1.3,
            bend=0.01, irregularity=0.02, darkness=1.1, darkness_sd=0.1, fine_texture=0.08,
            coarse_texture=0.05, placement="aligned", orientation_sd=0.2),
        "muscle": LeafStyle(
            radius=15.0, radius_sd=0.1, elongation=4.2, elongation_sd=0.4, tip=3.5,
            irregularity=0.015, darkness=0.65, darkness_sd=0.08, fine_texture=0.15,
            coarse_texture=0.04, nucleoli=0.2, nucleolus_strength=0.3, placement="bundle",
            orientation_sd=0.06),
        "endothelial": LeafStyle(
            radius=9.5, radius_sd=0.1, elongation=3.6, elongation_sd=0.4, tip=1.8,
            irregularity=0.02, darkness=1.25, darkness_sd=0.08, fine_texture=0.06,
            coarse_texture=0.04, placement="vessel", orientation_sd=0.05),
        "adipocyte": LeafStyle(
            radius=9.5, radius_sd=0.1, elongation=5.0, elongation_sd=0.5, tip=1.6,
            irregularity=0.01, darkness=1.0, darkness_sd=0.08, fine_texture=0.05,
            coarse_texture=0.03, placement="fat", orientation_sd=0.0),
        # other: small pyknotic/fragmented necrotic nuclei, medium irregular others
        "necrotic": LeafStyle(
            radius=5.0, radius_sd=0.2, elongation=1.15, elongation_sd=0.1, irregularity=0.2,
            harmonics=7, darkness=1.7, darkness_sd=0.15, fine_texture=0.1, coarse_texture=0.2,
            fragmented=0.8, cytoplasm=1.7, cytoplasm_eosin=0.35, cytoplasm_granular=0.3,
            placement="necrosis"),
        "other_cell": LeafStyle(
            radius=7.5, radius_sd=0.15, elongation=1.25, elongation_sd=0.12, irregularity=0.1,
            harmonics=5, darkness=0.85, darkness_sd=0.15, fine_texture=0.2, coarse_texture=0.12,
            nucleoli=0.5, nucleolus_strength=0.5, placement="scatter"),
    }
    return MappingProxyType(s)


# ---------------------------------------------------------------------------- domains
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
    uncovered : {"ignore", "omit"}
        What to do with leaves the label set does not cover: draw them and mark them
        ignored (``classes`` None, pixels in ``ignore``), or never draw them.
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
        if self.uncovered not in ("ignore", "omit"):
            raise ValueError(f"DomainParams.uncovered must be 'ignore' or 'omit', got {self.uncovered!r}")
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


# ----------------------------------------------------------------------------- canvas
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


# ---------------------------------------------------------------------------- nucleus
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


# -------------------------------------------------------------------------- placement
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


# ------------------------------------------------------------------------------ tile
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


# --------------------------------------------------------------------------- datasets
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
        ``ignore``; see the module notes). ``meta`` holds ``dataset``, ``source``
        (``"synthetic"``), ``tissue`` and ``split`` (None), ``mpp``, ``seed``,
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
    leaf_to_label = {leaf: lab for lab in ls.labels for leaf in ls.leaf_set(lab)}

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
        out.append(Sample(image=image, labels=labels, classes=classes, label_set=dom.label_set,
                          ignore=ignore, meta=meta))
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
