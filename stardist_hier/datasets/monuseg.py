"""MoNuSeg 2018 reader (segmentation only, 40x, 1000x1000; label set ``monuseg``).

Layout (train and test are separate downloads)::

    ROOT/Tissue Images/<name>.tif
    ROOT/Annotations/<name>.xml

Any folder holding ``<name>.xml`` files and images of the same stem (``.tif``,
``.tiff``, ``.png``), in the same folder or anywhere under ``ROOT``, works too.

Rules (polygon rules in :mod:`.aperio`): the XML has one ``Annotation`` and no class;
every ``Region`` is one nucleus labelled with the root label ``nucleus``. Vertices
are clipped to the image (a few fall outside); degenerate regions (fewer than 3
distinct vertices, or no pixel filled) are dropped; where outlines overlap the later
region wins. ``mpp`` comes from the XML's ``MicronsPerPixel``. ``split`` is recorded
in ``meta`` only.
"""

from __future__ import annotations

from .aperio import rasterise_regions, read_aperio_xml
from .base import Reader, require_dir
from .images import read_rgb
from .instances import relabel_sequential
from .record import Sample

__all__ = ["MoNuSeg", "pair_annotations"]

ROOT_LABEL = "nucleus"
_IMAGE_SUFFIXES = (".tif", ".tiff", ".png")


def pair_annotations(root, *, dataset: str) -> list:
    """``[(xml, image)]`` for every ``*.xml`` under ``root`` with an image of the same stem.

    Raises
    ------
    FileNotFoundError
        An XML has no image (naming it), or the stem is ambiguous.
    """
    images = {}
    for p in root.rglob("*"):
        if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file():
            images.setdefault(p.stem, []).append(p)
    out = []
    for xml in sorted(root.rglob("*.xml")):
        cands = [p for p in images.get(xml.stem, []) if p.parent == xml.parent] or images.get(xml.stem, [])
        if not cands:
            raise FileNotFoundError(f"{dataset}: no image for {xml} (looked for {xml.stem}"
                                    f"{{{','.join(_IMAGE_SUFFIXES)}}} under {root})")
        if len(cands) > 1:
            raise FileNotFoundError(f"{dataset}: several images match {xml}: {', '.join(map(str, cands))}")
        out.append((xml, cands[0]))
    return out


class MoNuSeg(Reader):
    """MoNuSeg images as :class:`Sample` records, every nucleus labelled ``nucleus``.

    Parameters
    ----------
    root : str or path
    split : str, optional
        Recorded in ``meta["split"]``.
    label_set : {"monuseg", "root"}
    """

    dataset = "monuseg"

    def __init__(self, root, *, split=None, label_set: str = "monuseg"):
        self.check_label_set(label_set, ("monuseg", "root"))
        super().__init__(require_dir(root, what="MoNuSeg folder"), label_set=label_set)
        self.split = split
        self._items = pair_annotations(self.root, dataset=self.dataset)
        self._names = [x.stem for x, _ in self._items]
        self._check_nonempty(self.root)

    def _read(self, index: int) -> Sample:
        xml, ipath = self._items[index]
        img = read_rgb(ipath)
        ann = read_aperio_xml(xml)
        raw, n_deg, n_over = rasterise_regions(ann.regions, img.shape, clip=True)
        labels, old = relabel_sequential(raw)
        classes = {k: ROOT_LABEL for k in range(1, len(old) + 1)}
        meta = {"dataset": self.dataset, "name": xml.stem, "source": str(ipath), "annotation": str(xml),
                "split": self.split, "tissue": None, "mpp": ann.mpp, "n_regions": len(ann.regions),
                "n_degenerate": n_deg, "n_overwritten": n_over}
        return Sample(image=img, labels=labels, classes=classes, label_set=self.label_set,
                      ignore=None, meta=meta)
