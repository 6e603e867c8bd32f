"""Data Science Bowl 2018 reader (segmentation only, mostly fluorescence; label set ``dsb2018``).

Two layouts, detected automatically:

Kaggle::

    ROOT/stage1_train/<id>/images/<id>.png   RGBA (alpha dropped)
    ROOT/stage1_train/<id>/masks/*.png       one binary mask per nucleus

    ``ROOT`` may also be a ``stage1_*`` folder itself. Masks are painted in sorted
    file-name order; where masks overlap the **first** mask keeps the pixel (later
    masks only fill unclaimed pixels); an empty mask, or one left with no pixel, is
    dropped and counted in ``meta["n_empty_masks"]``.

StarDist's subset (``dsb2018.zip`` of the StarDist examples)::

    ROOT/{train,test}/images/<name>.tif   grey images
    ROOT/{train,test}/masks/<name>.tif    uint16 label images

Grey and 16-bit images become RGB uint8 by the rules of :mod:`.images`. Every
nucleus is labelled with the root label ``nucleus``. ``split`` picks
``stage1_<split>`` (Kaggle) or ``<split>`` (StarDist); default: every split present.
"""

from __future__ import annotations


import numpy as np

from .base import DatasetError, Reader, require_dir
from .images import read_image, read_rgb
from .instances import as_label_image, relabel_sequential
from .record import Sample

__all__ = ["DSB2018"]

ROOT_LABEL = "nucleus"


class DSB2018(Reader):
    """DSB 2018 images as :class:`Sample` records (rules in the module docstring).

    Parameters
    ----------
    root : str or path
    split : str, optional
        ``"train"``, ``"test"`` (or ``"stage1_train"`` ...); default all present.
    label_set : {"dsb2018", "root"}

    Raises
    ------
    FileNotFoundError
        Neither layout found, or an image without masks (naming it).
    """

    dataset = "dsb2018"

    def __init__(self, root, *, split=None, label_set: str = "dsb2018"):
        self.check_label_set(label_set, ("dsb2018", "root"))
        super().__init__(require_dir(root, what="DSB 2018 folder"), label_set=label_set)
        self._items = []  # (layout, split, image path, mask path or folder)
        s = None if split is None else str(split).lower().removeprefix("stage1_")
        if self.root.name.startswith("stage1_"):
            kaggle = [(self.root.name.removeprefix("stage1_"), self.root)]
        else:
            kaggle = [(d.name.removeprefix("stage1_"), d) for d in sorted(self.root.glob("stage1_*")) if d.is_dir()]
        stardist = [] if kaggle else [(d.name, d) for d in sorted(self.root.iterdir())
                                      if d.is_dir() and (d / "images").is_dir() and (d / "masks").is_dir()]
        if not kaggle and not stardist:
            raise FileNotFoundError(f"dsb2018: found neither stage1_*/<id>/images (Kaggle) nor "
                                    f"<split>/images + <split>/masks (StarDist) under {self.root}")
        for sp, d in kaggle:
            if s is not None and sp != s:
                continue
            for case in sorted(p for p in d.iterdir() if p.is_dir()):
                imgs = sorted((case / "images").glob("*.png"))
                if not imgs:
                    raise FileNotFoundError(f"dsb2018: no image in {case / 'images'}")
                if not (case / "masks").is_dir():
                    raise FileNotFoundError(
                        f"dsb2018: no masks folder {case / 'masks'} (Kaggle's stage1_test keeps its "
                        "labels run-length encoded in a CSV, which this reader does not decode)")
                self._items.append(("kaggle", sp, imgs[0], case / "masks"))
        for sp, d in stardist:
            if s is not None and sp != s:
                continue
            for img in sorted((d / "images").glob("*.tif*")):
                m = d / "masks" / img.name
                if not m.is_file():
                    raise FileNotFoundError(f"dsb2018: no mask for {img} (expected {m})")
                self._items.append(("stardist", sp, img, m))
        self._names = [p.stem for _, _, p, _ in self._items]
        self._check_nonempty(self.root if s is None else f"{self.root} (split {split!r})")

    def _read(self, index: int) -> Sample:
        layout, split, ipath, mpath = self._items[index]
        img = read_rgb(ipath)
        meta = {"dataset": self.dataset, "name": ipath.stem, "source": str(ipath), "labels_file": str(mpath),
                "split": split, "layout": layout, "tissue": None, "mpp": None}
        if layout == "kaggle":
            masks = sorted(mpath.glob("*.png"))
            inst = np.zeros(img.shape[:2], np.int64)
            n_empty = 0
            for k, m in enumerate(masks, start=1):
                a = read_image(m)
                if a.ndim == 3:
                    a = a[..., 0]
                if a.shape != inst.shape:
                    raise DatasetError(f"{m}: mask shape {a.shape} does not match image {ipath} {inst.shape}")
                free = (a > 0) & (inst == 0)
                if not free.any():
                    n_empty += 1
                inst[free] = k
            meta["n_empty_masks"] = n_empty
        else:
            inst = as_label_image(read_image(mpath), source=mpath, shape=img.shape)
        labels, old = relabel_sequential(inst)
        classes = {k: ROOT_LABEL for k in range(1, len(old) + 1)}
        return Sample(image=img, labels=labels, classes=classes, label_set=self.label_set, ignore=None, meta=meta)
