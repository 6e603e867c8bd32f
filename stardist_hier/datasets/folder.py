"""Generic folder reader: images, label images and optional per-image class files.

Layout::

    ROOT/images/<name>.{png,tif,tiff,jpg,jpeg}
    ROOT/labels/<name>.{tif,tiff,png}     integer instance image, 0 = background
    ROOT/labels/<name>.json  (optional)   {"<id>": "<label>" | <code>, ...}
    ROOT/labels/<name>.csv   (optional)   rows id,class (a header row is allowed)
    ROOT/ignore/<name>.{png,tif,tiff}     (optional, ``ignore="ignore"``) non-zero = ignore

Rules:

- Class values are label names or integer codes of ``label_set`` in the taxonomy
  (default: :func:`~stardist_hier.default_taxonomy`); anything else raises
  :class:`DatasetError` naming the class file. A label marked ``ignore`` in the
  label set gives ``None``.
- Without a class file every instance gets the label set's only label, which for the
  default ``label_set="root"`` is the root ``nucleus`` (segmentation-only data). A
  label set with several labels then raises: the class file is required.
- An instance missing from its class file gets ``None`` (class unknown), counted in
  ``meta["n_unlabelled"]``; entries for ids not in the label image are ignored.
- Instance ids are relabelled to 1..n.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .base import DatasetError, Reader, require_dir
from .images import read_image, read_rgb
from .instances import as_label_image, relabel_sequential
from .record import Sample

__all__ = ["Folder", "read_class_file"]

_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
_LABEL_SUFFIXES = (".tif", ".tiff", ".png")


def read_class_file(path) -> dict:
    """``{instance id: class value}`` from a JSON mapping or an ``id,class`` CSV.

    Values stay as written (str, or int for integer codes).

    Raises
    ------
    DatasetError
        Unparsable file or non-integer ids (naming the file).
    """
    path = Path(path)
    out = {}
    try:
        if path.suffix.lower() == ".json":
            d = json.loads(path.read_text())
            if not isinstance(d, dict):
                raise ValueError("expected a JSON object {id: class}")
            items = d.items()
        else:
            with open(path, newline="") as f:
                rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
            if rows and not rows[0][0].strip().lstrip("-").isdigit():
                rows = rows[1:]  # header
            if any(len(r) < 2 for r in rows):
                raise ValueError("expected rows id,class")
            items = [(r[0], r[1]) for r in rows]
        for k, v in items:
            out[int(str(k).strip())] = _code_or_name(v)
    except (ValueError, TypeError) as e:
        raise DatasetError(f"{path}: cannot read instance classes ({e})") from None
    return out


def _code_or_name(v):
    if isinstance(v, bool):
        raise TypeError(f"class {v!r} is neither a name nor an integer code")
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        s = v.strip()
        return int(s) if s.lstrip("-").isdigit() else s
    raise TypeError(f"class {v!r} is neither a name nor an integer code")


def _find(folder: Path, stem: str, suffixes) -> Path | None:
    for suf in suffixes:
        for cand in (folder / (stem + suf), folder / (stem + suf.upper())):
            if cand.is_file():
                return cand
    return None


class Folder(Reader):
    """Instance-labelled images in a plain folder (rules in the module docstring).

    Parameters
    ----------
    root : str or path
    split : str, optional
        Recorded in ``meta["split"]``.
    label_set : str
        A label set of ``taxonomy`` (default ``"root"``).
    images, labels : str
        Sub-folder names.
    ignore : str, optional
        Sub-folder of ignore masks.
    taxonomy : Taxonomy, optional
        Default :func:`~stardist_hier.default_taxonomy`.
    dataset : str
        Recorded in ``meta["dataset"]`` (default ``"folder"``).

    Raises
    ------
    FileNotFoundError
        Missing folders, or an image without a label image (naming it).
    """

    dataset = "folder"

    def __init__(self, root, *, split=None, label_set: str = "root", images: str = "images",
                 labels: str = "labels", ignore: str | None = None, taxonomy=None, dataset: str = "folder"):
        from ..tree import default_taxonomy

        super().__init__(require_dir(root, what="dataset folder"), label_set=label_set)
        self.dataset = dataset
        self.split = split
        tax = taxonomy if taxonomy is not None else default_taxonomy()
        self._labelset = tax[label_set]
        idir = require_dir(self.root / images, what="images folder")
        self._ldir = require_dir(self.root / labels, what="labels folder")
        self._idir = None if ignore is None else require_dir(self.root / ignore, what="ignore folder")
        self._items = []
        for img in sorted(p for p in idir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES):
            lab = _find(self._ldir, img.stem, _LABEL_SUFFIXES)
            if lab is None:
                raise FileNotFoundError(f"{dataset}: no label image for {img} in {self._ldir}")
            self._items.append((img, lab))
        self._names = [p.stem for p, _ in self._items]
        self._check_nonempty(idir)

    def _read(self, index: int) -> Sample:
        ipath, lpath = self._items[index]
        img = read_rgb(ipath)
        raw = read_image(lpath)
        if raw.ndim == 3 and raw.shape[-1] == 1:
            raw = raw[..., 0]
        inst = as_label_image(raw, source=lpath, shape=img.shape)
        labels, old = relabel_sequential(inst)
        cfile = _find(self._ldir, ipath.stem, (".json", ".csv"))
        meta = {"dataset": self.dataset, "name": ipath.stem, "source": str(ipath), "labels_file": str(lpath),
                "split": self.split, "tissue": None, "mpp": None}
        ls = self._labelset
        if cfile is None:
            if len(ls.labels) != 1:
                raise FileNotFoundError(
                    f"{self.dataset}: no class file {ipath.stem}.json/.csv in {self._ldir}; label set "
                    f"{ls.name!r} has {len(ls.labels)} labels, so classes must be given")
            classes = {k: ls.labels[0] for k in range(1, len(old) + 1)}
        else:
            table = read_class_file(cfile)
            classes = {}
            for k, o in enumerate(old, 1):
                v = table.get(int(o), _MISSING)
                if v is _MISSING:
                    classes[k] = None
                    continue
                try:
                    classes[k] = ls.resolve(v)
                except ValueError as e:
                    raise DatasetError(f"{cfile}: instance {int(o)}: {e}") from None
            meta.update(classes_file=str(cfile), n_unlabelled=sum(int(o) not in table for o in old))
        ignore = None
        if self._idir is not None:
            ig = _find(self._idir, ipath.stem, _LABEL_SUFFIXES)
            if ig is not None:
                a = read_image(ig)
                a = a if a.ndim == 2 else a[..., 0]
                if a.shape != img.shape[:2]:
                    raise DatasetError(f"{ig}: ignore mask shape {a.shape} does not match image {img.shape[:2]}")
                ignore = a > 0
        return Sample(image=img, labels=labels, classes=classes, label_set=self.label_set, ignore=ignore,
                      meta=meta)


_MISSING = object()
