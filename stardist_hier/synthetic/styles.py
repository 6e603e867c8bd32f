"""Appearance of the nucleus types: :class:`LeafStyle` and the 13 default leaves.

See :mod:`stardist_hier.synthetic` for the appearance model.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

#: The 13 leaves of the default class tree, in tree order.
LEAVES = (
    "epithelial_normal", "epithelial_tumor",
    "lymphocyte", "plasma_cell", "neutrophil", "eosinophil", "macrophage",
    "fibroblast", "muscle", "endothelial", "adipocyte",
    "necrotic", "other_cell",
)

#: Placement rules understood by :func:`~stardist_hier.synthetic.tiles.make_tile`.
PLACEMENTS = ("gland", "nest", "focus", "scatter", "aligned", "bundle", "vessel", "fat",
              "necrosis")


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
        ``vessel``, ``fat``, ``necrosis`` (see :mod:`stardist_hier.synthetic`).
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
