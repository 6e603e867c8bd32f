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
leaves in that dataset, and ``uncovered="background"`` draws them unannotated, as
background (MoNuSAC's real convention outside its "Ambiguous" regions).

Knobs that let hypotheses fail (all off by default): ``DomainParams.uncovered="background"``,
``DomainParams.leaf_shift`` (each leaf looks different in each domain),
``DomainParams.label_noise`` (a fraction of labels replaced by another label of the set)
and ``DomainParams.lookalike`` (``{leaf: other leaf}``: a leaf drawn with another leaf's
appearance, e.g. plasma cells hidden under CoNSeP's coarse "inflammatory" that look like
tumour nuclei). In an experiment: ``datasets: {NAME: {domain: {lookalike: {...}}}}``.
Scoring against the true leaves: a test set with ``truth: leaves``.

Every sample also records the true leaf of each instance in ``meta["leaves"]``
(``{id: leaf}``) so that models can be scored at finer cuts than the dataset's labels.
"""

from .datasets import generate_benchmark, generate_dataset
from .domains import DATASET_NAMES, DomainParams, domain_params
from .styles import LEAVES, PLACEMENTS, LeafStyle, default_leaf_styles
from .tiles import make_tile

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

# Layout of the package:
#   styles.py    LeafStyle, default_leaf_styles, LEAVES, PLACEMENTS
#   domains.py   DomainParams, domain_params, DATASET_NAMES (stain vectors, scale, class mix)
#   canvas.py    the drawing canvas, random fields and nucleus outline geometry
#   nucleus.py   one nucleus: outline, overlap rules, chromatin, cytoplasm
#   placement.py tissue structures and candidate positions per placement rule
#   render.py    stroma, epithelial cytoplasm and the Beer-Lambert rendering
#   tiles.py     make_tile
#   datasets.py  generate_dataset, generate_benchmark
