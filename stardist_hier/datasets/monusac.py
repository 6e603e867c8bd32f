"""MoNuSAC 2020 reader (lung, prostate, kidney, breast; 40x; label set ``monusac``).

Layout: one folder per patient, searched recursively under ``ROOT``::

    ROOT/<patient>/<patient>_<k>.xml   Aperio XML, one Annotation block per class
    ROOT/<patient>/<patient>_<k>.svs   whole image (read with OpenSlide, optional)
    ROOT/<patient>/<patient>_<k>.tif   RGBA export with red and blue swapped

Rules (polygon rules in :mod:`.aperio`):

- Classes are mapped **by name** (case and surrounding blanks ignored): Epithelial,
  Lymphocyte, Neutrophil, Macrophage; ``Ambiguous`` regions are painted into the
  ignore mask, not the instance map. Any other name raises :class:`DatasetError`.
- Images: ``image_format="auto"`` uses the ``.svs`` when OpenSlide is installed and
  the ``.svs`` exists, else the ``.tif``. A ``.tif`` is read with tifffile; with
  ``tif_fix=True`` (default) alpha is dropped and the channel order reversed
  (the exports are BGR(A)). Reading ``.svs`` needs ``openslide-python`` (not a
  dependency of this package): a clear :class:`ImportError` says so.
- ``mpp`` comes from the XML's ``MicronsPerPixel`` when present.
- ``split`` is recorded in ``meta`` only: the training and testing releases are
  separate downloads; point ``root`` at one of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .aperio import rasterise_regions, read_aperio_xml
from .base import DatasetError, Reader, require_dir
from .images import read_image, to_rgb_uint8
from .instances import relabel_sequential
from .record import Sample

__all__ = ["MoNuSAC", "MONUSAC_CLASSES", "read_svs", "read_monusac_tif"]

#: Class names of the MoNuSAC XML blocks (``None``: ignore region).
MONUSAC_CLASSES = {"epithelial": "Epithelial", "lymphocyte": "Lymphocyte", "neutrophil": "Neutrophil",
                   "macrophage": "Macrophage", "ambiguous": None}


def _have_openslide() -> bool:
    import importlib.util

    return importlib.util.find_spec("openslide") is not None


def read_svs(path) -> np.ndarray:
    """Level 0 of a whole-slide file as (H, W, 3) uint8 RGB, through OpenSlide.

    Raises
    ------
    ImportError
        ``openslide-python`` is not installed.
    DatasetError
        OpenSlide cannot open the file.
    """
    try:
        import openslide
    except ImportError:
        raise ImportError(
            f"reading {path} needs openslide-python, which is not installed "
            "(pip install openslide-python openslide-bin); or read the .tif exports "
            "with image_format='tif'") from None
    try:
        slide = openslide.OpenSlide(str(path))
        try:
            rgba = np.asarray(slide.read_region((0, 0), 0, slide.dimensions))
        finally:
            slide.close()
    except Exception as e:
        raise DatasetError(f"{path}: OpenSlide cannot read the slide ({e})") from None
    return np.ascontiguousarray(rgba[..., :3])


def read_monusac_tif(path, *, fix: bool = True) -> np.ndarray:
    """A MoNuSAC ``.tif`` export as RGB uint8: alpha dropped and channels reversed when ``fix``."""
    a = read_image(path)
    if fix and a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3][..., ::-1]
    return to_rgb_uint8(a, source=path)


class MoNuSAC(Reader):
    """MoNuSAC images as :class:`Sample` records (rules in the module docstring).

    Parameters
    ----------
    root : str or path
        Folder searched recursively for ``*.xml`` with an image of the same stem.
    split : str, optional
        Recorded in ``meta["split"]``.
    label_set : str
        Only ``"monusac"``.
    image_format : {"auto", "svs", "tif"}
    tif_fix : bool
        Drop alpha and reverse the channels of ``.tif`` exports.

    Raises
    ------
    FileNotFoundError
        No XML under ``root``, or an XML without its image (naming it).
    """

    dataset = "monusac"

    def __init__(self, root, *, split=None, label_set: str = "monusac", image_format: str = "auto",
                 tif_fix: bool = True):
        self.check_label_set(label_set, ("monusac",), title="MoNuSAC")
        if image_format not in ("auto", "svs", "tif"):
            raise ValueError(f"monusac: image_format must be 'auto', 'svs' or 'tif', got {image_format!r}")
        super().__init__(require_dir(root, what="MoNuSAC folder"), label_set=label_set)
        self.split = split
        self.tif_fix = tif_fix
        use_svs = image_format == "svs" or (image_format == "auto" and _have_openslide())
        self._items = []
        for xml in sorted(self.root.rglob("*.xml")):
            svs, tif = xml.with_suffix(".svs"), xml.with_suffix(".tif")
            if image_format == "tif":
                order = (tif,)
            else:
                order = (svs, tif) if use_svs else (tif, svs)
                if image_format == "svs":
                    order = (svs,)
            img = next((p for p in order if p.is_file()), None)
            if img is None:
                raise FileNotFoundError(f"monusac: no image for {xml} (expected {' or '.join(map(str, order))})")
            self._items.append((xml, img))
        self._names = [x.stem for x, _ in self._items]
        self._check_nonempty(self.root)

    def _read_image(self, path: Path) -> np.ndarray:
        if path.suffix.lower() == ".svs":
            return read_svs(path)
        return read_monusac_tif(path, fix=self.tif_fix)

    def _read(self, index: int) -> Sample:
        xml, ipath = self._items[index]
        img = self._read_image(ipath)
        ann = read_aperio_xml(xml)
        nuclei, ambiguous = [], []
        for reg in ann.regions:
            key = (reg.name or "").strip().lower()
            if key not in MONUSAC_CLASSES:
                raise DatasetError(
                    f"{xml}: unknown MoNuSAC class {reg.name!r} (block {reg.block + 1}); known: "
                    f"{', '.join(v or 'Ambiguous' for v in MONUSAC_CLASSES.values())}")
            (nuclei if MONUSAC_CLASSES[key] is not None else ambiguous).append(reg)
        raw, n_deg, n_over = rasterise_regions(nuclei, img.shape)
        amb, n_deg_amb, _ = rasterise_regions(ambiguous, img.shape)
        labels, old = relabel_sequential(raw)
        classes = {k: MONUSAC_CLASSES[nuclei[int(o) - 1].name.strip().lower()] for k, o in enumerate(old, 1)}
        meta = {"dataset": self.dataset, "name": xml.stem, "source": str(ipath), "annotation": str(xml),
                "patient": xml.parent.name, "split": self.split, "tissue": None, "mpp": ann.mpp,
                "n_regions": len(nuclei), "n_ambiguous_regions": len(ambiguous),
                "n_degenerate": n_deg + n_deg_amb, "n_overwritten": n_over,
                "n_empty_blocks": ann.n_empty_blocks}
        return Sample(image=img, labels=labels, classes=classes, label_set=self.label_set,
                      ignore=amb > 0, meta=meta)
