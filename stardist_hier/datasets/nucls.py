"""NuCLS reader, converted layout (breast, TCGA; label sets ``nucls2`` and ``nucls4``).

Layout (as in the project's real samples)::

    ROOT/segmentation/{train,test}/images/<name>.png   RGB tiles
    ROOT/segmentation/{train,test}/labels/<name>.npy   pickled dict {'inst_map', 'type_map'} (see below)
    ROOT/segmentation/label_map.yaml                   {1: Non-Tumor, 2: Tumor}
    ROOT/detection/{train,test}/labels/<name>.csv      rows x,y,class (class 0..3)
    ROOT/detection/label_map.yaml                      {0: tumor_any, 1: nonTIL_stromal, 2: sTIL, 3: other_nucleus}

The same tiles carry two label sets:

``nucls2`` (segmentation ``type_map``)
    An instance's class is the majority of its non-zero ``type_map`` pixels (1
    Non-Tumor, 2 Tumor); a tie, or no typed pixel, gives ``None`` (class unknown).
``nucls4`` (detection points, ``x`` = column, ``y`` = row, integer pixel coordinates;
floats are floored)
    - a point outside the image, or on background (outside every instance), is
      dropped and counted in ``meta["n_points_outside"]``;
    - an instance that no point hits gets ``None``: class unknown (its outline is
      still a nucleus; the loss should ignore its class). Counted in
      ``meta["n_unlabelled"]``;
    - several points in one instance: the majority class; a tie gives ``None``
      (counted in ``meta["n_ties"]``).

Code-to-name tables come from the ``label_map.yaml`` files when present (names must
belong to the label set), else the defaults above.

Label files are read without running code from them
    NuCLS's label ``.npy`` files are pickles (a 0-d object array holding a dict).
    Unpickling them with NumPy's pickle support would run whatever code a crafted file
    names, so they are **never** unpickled that way: :func:`read_nucls_labels` reads the pickle
    stream with an unpickler that builds only NumPy arrays and dtypes (plus plain dicts,
    lists, strings and numbers) and refuses any other global (a function, a class)
    before calling it, raising :class:`DatasetError` naming the file. A plain (not
    pickled) ``.npy`` of shape ``(2, H, W)`` (``inst_map``, ``type_map``) is read as well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.safe import load_yaml
from .base import DatasetError, Reader, require_dir
from .images import read_rgb
from .instances import as_label_image, majority_vote, relabel_sequential
from .record import Sample

__all__ = ["NuCLS", "NUCLS2_CLASSES", "NUCLS4_CLASSES", "read_nucls_labels", "read_points"]

NUCLS2_CLASSES = {1: "Non-Tumor", 2: "Tumor"}
NUCLS4_CLASSES = {0: "tumor_any", 1: "nonTIL_stromal", 2: "sTIL", 3: "other_nucleus"}


def _load_numpy_pickle(path: Path):
    """The object array in a pickled ``.npy``, built by an unpickler that makes NumPy arrays only."""
    from ..errors import InputError
    from ..io.safe import NotObjectArray, load_numpy_only_pickle

    try:
        return load_numpy_only_pickle(path)
    except NotObjectArray:
        raise ValueError("not an object array") from None
    except InputError as e:
        raise DatasetError(f"{e} (NuCLS labels hold NumPy arrays only)") from None


def read_nucls_labels(path, *, shape=None) -> tuple:
    """``(inst_map, type_map)`` as int64 from a NuCLS label ``.npy``, without running code from it.

    The file is either NuCLS's pickled dict ``{'inst_map', 'type_map'}`` (read by an
    unpickler that builds NumPy arrays only, see the module docstring) or a plain
    ``(2, H, W)`` integer array.

    Raises
    ------
    DatasetError
        Unreadable file, a pickle naming anything but NumPy arrays, not a dict with
        ``inst_map`` and ``type_map``, wrong shapes. The message names the file.
    """
    from ..io import load_npy

    path = Path(path)
    try:
        obj = _load_numpy_pickle(path)
    except DatasetError:
        raise
    except ValueError as e:
        if str(e) != "not an object array":
            raise DatasetError(f"{path}: cannot read NuCLS labels ({e})") from None
        obj = load_npy(path)  # not pickled: no code can run
        if obj.ndim != 3 or obj.shape[0] != 2:
            raise DatasetError(f"{path}: expected NuCLS labels (a pickled dict, or an array of shape (2, H, W)), "
                               f"got an array of shape {obj.shape}") from None
        obj = {"inst_map": obj[0], "type_map": obj[1]}
    except Exception as e:  # truncated or corrupt file: any unpickling error
        raise DatasetError(f"{path}: cannot read NuCLS labels ({type(e).__name__}: {e})") from None
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict) or "inst_map" not in obj or "type_map" not in obj:
        raise DatasetError(f"{path}: expected a pickled dict with 'inst_map' and 'type_map', got "
                           f"{type(obj).__name__}")
    inst = as_label_image(obj["inst_map"], source=path, shape=shape)
    types = as_label_image(obj["type_map"], source=path, shape=inst.shape)
    return inst, types


def read_points(path) -> np.ndarray:
    """Rows ``x, y, class`` of a NuCLS detection CSV as an (n, 3) int64 array.

    Raises
    ------
    DatasetError
        Not three numeric columns (naming the file).
    """
    path = Path(path)
    try:
        with open(path) as f:
            text = f.read()
        a = np.loadtxt(path, delimiter=",", ndmin=2) if text.strip() else np.zeros((0, 3))
    except Exception as e:
        raise DatasetError(f"{path}: cannot read x,y,class rows ({e})") from None
    if a.shape[1] != 3:
        raise DatasetError(f"{path}: expected 3 columns x,y,class, got {a.shape[1]}")
    if not np.all(np.isfinite(a)):
        raise DatasetError(f"{path}: non-finite values")
    if np.any(a[:, 2] != np.floor(a[:, 2])):
        raise DatasetError(f"{path}: class column must hold integers")
    return np.floor(a).astype(np.int64)


def _label_map(path, default, allowed) -> dict:
    if not path.is_file():
        return dict(default)
    try:
        d = load_yaml(path)
    except Exception as e:
        raise DatasetError(str(e)) from None
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: expected a mapping code -> class name")
    from ..errors import shorten

    out = {}
    for k, v in d.items():
        # a code is a plain YAML integer: '1' (a string), true (YAML 1.1 reads yes/on/true as a
        # boolean, which Python's int() turns into 1) and 1.7 would otherwise read as code 1
        if isinstance(k, bool) or not isinstance(k, int):
            raise DatasetError(f"{path}: class code {shorten(k)} ({type(k).__name__}) is not an integer; write "
                               f"codes as plain integers (1: Tumor)")
        if not isinstance(v, str) or v not in allowed:
            raise DatasetError(f"{path}: code {k}: unknown class name {shorten(v)}; known: {', '.join(allowed)}")
        out[k] = v
    return out


class NuCLS(Reader):
    """NuCLS tiles as :class:`Sample` records (rules in the module docstring).

    Parameters
    ----------
    root : str or path
        Folder holding ``segmentation/`` (and ``detection/`` for ``nucls4``).
    split : {"train", "test"}, optional
        Default: both.
    label_set : {"nucls2", "nucls4"}

    Raises
    ------
    FileNotFoundError
        Missing folders, or an image without its label file (naming it).
    """

    dataset = "nucls"

    def __init__(self, root, *, split=None, label_set: str = "nucls2"):
        self.check_label_set(label_set, ("nucls2", "nucls4"))
        super().__init__(require_dir(root, what="NuCLS folder"), label_set=label_set)
        seg = require_dir(self.root / "segmentation", what="NuCLS segmentation folder")
        det = self.root / "detection"
        if label_set == "nucls4":
            require_dir(det, what="NuCLS detection folder")
            self._table = _label_map(det / "label_map.yaml", NUCLS4_CLASSES, tuple(NUCLS4_CLASSES.values()))
        else:
            self._table = _label_map(seg / "label_map.yaml", NUCLS2_CLASSES, tuple(NUCLS2_CLASSES.values()))
        if split is not None and split not in ("train", "test"):
            raise ValueError(f"nucls: split must be 'train' or 'test', got {split!r}")
        splits = [split] if split else ["train", "test"]
        self._items = []
        for s in splits:
            idir = seg / s / "images"
            if not idir.is_dir():
                if split:
                    raise FileNotFoundError(f"NuCLS images folder not found: {idir}")
                continue
            for img in sorted(idir.glob("*.png"), key=_natural):
                lab = seg / s / "labels" / (img.stem + ".npy")
                if not lab.is_file():
                    raise FileNotFoundError(f"nucls: no label file for {img} (expected {lab})")
                pts = det / s / "labels" / (img.stem + ".csv")
                if label_set == "nucls4" and not pts.is_file():
                    raise FileNotFoundError(f"nucls: no detection points for {img} (expected {pts})")
                self._items.append((s, img, lab, pts))
        self._names = [img.stem for _, img, _, _ in self._items]
        self._check_nonempty(seg)

    def _read(self, index: int) -> Sample:
        split, ipath, lpath, ppath = self._items[index]
        img = read_rgb(ipath)
        inst, types = read_nucls_labels(lpath, shape=img.shape)
        labels, old = relabel_sequential(inst)
        meta = {"dataset": self.dataset, "name": ipath.stem, "source": str(ipath), "labels_file": str(lpath),
                "split": split, "tissue": "breast", "mpp": None}
        if self.label_set == "nucls2":
            bad = sorted(set(np.unique(types).tolist()) - {0} - set(self._table))
            if bad:
                raise DatasetError(f"{lpath}: unknown type_map codes {bad}; known {sorted(self._table)}")
            votes = majority_vote(inst, types)
        else:
            pts = read_points(ppath)
            bad = sorted(set(pts[:, 2].tolist()) - set(self._table))
            if bad:
                raise DatasetError(f"{ppath}: unknown class codes {bad}; known {sorted(self._table)}")
            h, w = inst.shape
            x, y, c = pts[:, 0], pts[:, 1], pts[:, 2]
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            hit = np.zeros(len(pts), np.int64)
            hit[inside] = inst[y[inside], x[inside]]
            # majority_vote must not exclude class 0 (tumor_any): shift codes by one
            votes = {k: (None if v is None else v - 1) for k, v in majority_vote(hit, c + 1).items()}
            meta.update(points_file=str(ppath), n_points=int(len(pts)), n_points_outside=int(np.sum(hit == 0)),
                        n_ties=sum(v is None for v in votes.values()),
                        n_unlabelled=int(sum(int(o) not in votes for o in old)))
        classes = {}
        for k, o in enumerate(old, 1):
            v = votes.get(int(o))
            classes[k] = None if v is None else self._table[v]
        return Sample(image=img, labels=labels, classes=classes, label_set=self.label_set, ignore=None, meta=meta)


def _natural(p: Path):
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)]
