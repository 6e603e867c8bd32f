"""Lizard and CoNIC readers (colon, 20x ~0.5 um/px; label sets ``lizard`` and ``conic``).

Classes (both): 1 neutrophil, 2 epithelial, 3 lymphocyte, 4 plasma, 5 eosinophil,
6 connective.

**Lizard** layout (as unzipped from the release, searched recursively)::

    ROOT/Lizard_Images1/<name>.png, ROOT/Lizard_Images2/<name>.png
    ROOT/Lizard_Labels/Labels/<name>.mat   inst_map, id (N, 1), class (N, 1), bbox, centroid
    ROOT/Lizard_Labels/info.csv            Filename,Source,Split (optional)

Every ``.mat`` inside a folder named ``Labels`` is paired with the ``.png`` of the
same stem. The rows of ``id``/``class`` are **not** in ``inst_map`` order: the
class of instance ``v`` is ``class[j]`` for the row ``j`` with ``id[j] == v``. An
instance without a row, a duplicated id or a class outside 1..6 raises
:class:`DatasetError`; rows whose id is absent from ``inst_map`` are ignored.
``split`` selects a fold (``"1"``, ``"2"``, ``"3"``) of ``info.csv``'s ``Split``
column (which is a cross-validation fold, not train/test).

**CoNIC** layout::

    ROOT/images.npy   (N, 256, 256, 3) uint8
    ROOT/labels.npy   (N, 256, 256, 2): instance map, class map 0..6
    ROOT/patch_info.csv  (optional) one row per patch, e.g. ``consep_1-0000``

Both arrays are read memory-mapped, one patch at a time; labels are cast to an
integer type. The class of an instance is the majority of its non-zero class-map
pixels (ties, or no non-zero pixel -> ``None``, class unknown; counted in
``meta["n_unknown_class"]``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .base import DatasetError, Reader, require_dir
from .images import read_rgb
from .instances import as_label_image, majority_vote, relabel_sequential
from .npyfile import NpyRows
from .record import Sample

__all__ = ["Lizard", "CoNIC", "LIZARD_CLASSES", "read_lizard_labels", "read_patch_info"]

#: Native class code -> label name (label sets ``lizard`` and ``conic``).
LIZARD_CLASSES = {1: "neutrophil", 2: "epithelial", 3: "lymphocyte", 4: "plasma", 5: "eosinophil",
                  6: "connective"}
MPP = 0.5


def read_lizard_labels(path, *, shape=None) -> tuple:
    """Read a Lizard ``.mat``: ``(inst_map int64, {instance id: class code})``.

    Raises
    ------
    DatasetError
        Unreadable file, missing keys, mismatched rows, unknown classes (naming the file).
    """
    from scipy.io import loadmat

    path = Path(path)
    try:
        mat = loadmat(path)
    except Exception as e:
        raise DatasetError(f"{path}: cannot read Lizard .mat labels ({e})") from None
    missing = [k for k in ("inst_map", "id", "class") if k not in mat]
    if missing:
        raise DatasetError(f"{path}: Lizard labels lack {missing} (keys: "
                           f"{sorted(k for k in mat if not k.startswith('__'))})")
    inst = as_label_image(mat["inst_map"], source=path, shape=shape)
    ids = np.asarray(mat["id"]).ravel()
    cls = np.asarray(mat["class"]).ravel()
    if ids.shape != cls.shape:
        raise DatasetError(f"{path}: 'id' has {ids.size} rows but 'class' has {cls.size}")
    for name, a in (("id", ids), ("class", cls)):
        if a.size and (a.dtype.kind not in "iuf" or np.any(a != np.floor(a))):
            raise DatasetError(f"{path}: '{name}' must hold integers")
    ids, cls = ids.astype(np.int64), cls.astype(np.int64)
    uniq, cnt = np.unique(ids, return_counts=True)
    if np.any(cnt > 1):
        raise DatasetError(f"{path}: ids listed more than once in 'id': {uniq[cnt > 1].tolist()}")
    table = dict(zip(ids.tolist(), cls.tolist()))
    present = np.unique(inst)
    present = present[present > 0]
    lacking = [int(v) for v in present if int(v) not in table]
    if lacking:
        raise DatasetError(f"{path}: instances {lacking[:10]} of inst_map have no row in 'id'/'class'")
    codes = {int(v): table[int(v)] for v in present}
    bad = sorted({c for c in codes.values() if c not in LIZARD_CLASSES})
    if bad:
        raise DatasetError(f"{path}: unknown Lizard class codes {bad}; known 1..6 "
                           f"({', '.join(LIZARD_CLASSES.values())})")
    return inst, codes


def read_patch_info(path) -> list:
    """Patch names from CoNIC's ``patch_info.csv`` (first column; a header row is skipped)."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.reader(f):
            if row:
                rows.append(row[0].strip())
    if rows and rows[0].lower() in ("patch_info", "filename", "name", "patch"):
        rows = rows[1:]
    return rows


class Lizard(Reader):
    """Lizard images as :class:`Sample` records (rules in the module docstring).

    Parameters
    ----------
    root : str or path
    split : {"1", "2", "3"}, optional
        A fold of ``info.csv`` (required to be present when given).
    label_set : str
        Only ``"lizard"``.
    """

    dataset = "lizard"

    def __init__(self, root, *, split=None, label_set: str = "lizard"):
        self.check_label_set(label_set, ("lizard",), title="Lizard")
        super().__init__(require_dir(root, what="Lizard folder"), label_set=label_set)
        pngs = {}
        for p in self.root.rglob("*.png"):
            pngs.setdefault(p.stem, p)
        mats = sorted(p for p in self.root.rglob("*.mat") if p.parent.name == "Labels")
        infos = sorted(self.root.rglob("info.csv"))
        self.info = {}
        if infos:
            from .leakage import read_lizard_info

            self.info = read_lizard_info(infos[0])
        if split is not None:
            if not self.info:
                raise FileNotFoundError(f"lizard: split={split!r} needs info.csv under {self.root}")
            split = str(split)
            if split not in {str(s.fold) for s in self.info.values()}:
                raise ValueError(f"lizard: unknown split {split!r}; folds in info.csv: "
                                 f"{sorted({str(s.fold) for s in self.info.values()})}")
        self._items = []
        for m in mats:
            if m.stem not in pngs:
                raise FileNotFoundError(f"lizard: no image {m.stem}.png under {self.root} for labels {m}")
            if split is not None and (m.stem not in self.info or str(self.info[m.stem].fold) != split):
                continue
            self._items.append((m, pngs[m.stem]))
        self._names = [m.stem for m, _ in self._items]
        self._check_nonempty(self.root)

    def _read(self, index: int) -> Sample:
        mpath, ipath = self._items[index]
        img = read_rgb(ipath)
        inst, codes = read_lizard_labels(mpath, shape=img.shape)
        labels, old = relabel_sequential(inst)
        classes = {k: LIZARD_CLASSES[codes[int(o)]] for k, o in enumerate(old, 1)}
        src = self.info.get(ipath.stem)
        meta = {"dataset": self.dataset, "name": ipath.stem, "source": str(ipath), "labels_file": str(mpath),
                "split": None if src is None else str(src.fold), "tissue": "colon", "mpp": MPP,
                "origin": None if src is None else f"{src.dataset}/{src.source}"}
        return Sample(image=img, labels=labels, classes=classes, label_set=self.label_set, ignore=None, meta=meta)


class CoNIC(Reader):
    """CoNIC patches as :class:`Sample` records (rules in the module docstring).

    Parameters
    ----------
    root : str or path
        Folder holding ``images.npy`` and ``labels.npy``.
    split : str, optional
        Recorded in ``meta["split"]``.
    label_set : str
        Only ``"conic"``.

    Raises
    ------
    FileNotFoundError
        Missing arrays (naming the path).
    DatasetError
        Wrong shapes or dtypes (naming the file).
    """

    dataset = "conic"

    def __init__(self, root, *, split=None, label_set: str = "conic"):
        self.check_label_set(label_set, ("conic",), title="CoNIC")
        super().__init__(require_dir(root, what="CoNIC folder"), label_set=label_set)
        self.split = split
        self.images = NpyRows(self.root / "images.npy", what="CoNIC images array")
        self.labels = NpyRows(self.root / "labels.npy", what="CoNIC labels array")
        ish, lsh = self.images.shape, self.labels.shape
        if len(ish) != 4 or ish[-1] != 3:
            raise DatasetError(f"{self.images.path}: expected images of shape (N, H, W, 3), got {ish}")
        if len(lsh) != 4 or lsh[-1] != 2 or lsh[:3] != ish[:3]:
            raise DatasetError(f"{self.labels.path}: expected labels of shape {ish[:3] + (2,)}, got {lsh}")
        info = self.root / "patch_info.csv"
        names = read_patch_info(info) if info.is_file() else []
        if names and len(names) != ish[0]:
            raise DatasetError(f"{info}: {len(names)} rows for {ish[0]} patches")
        self._names = names or [f"conic_{i:05d}" for i in range(ish[0])]
        self._check_nonempty(self.root)

    def _read(self, index: int) -> Sample:
        img = self.images[index]
        src = f"{self.images.path} [{index}]"
        if img.dtype != np.uint8:
            from .images import to_rgb_uint8

            img = to_rgb_uint8(img, source=src)
        lab = self.labels[index]
        lsrc = f"{self.labels.path} [{index}]"
        inst = as_label_image(lab[..., 0], source=lsrc)
        cmap = as_label_image(lab[..., 1], source=lsrc)
        if cmap.size and cmap.max() > 6:
            raise DatasetError(f"{lsrc}: class map has codes {sorted(set(np.unique(cmap).tolist()) - set(range(7)))} "
                               "outside 0..6")
        votes = majority_vote(inst, cmap)
        labels, old = relabel_sequential(inst)
        classes = {}
        for k, o in enumerate(old, 1):
            c = votes.get(int(o))
            classes[k] = None if c is None else LIZARD_CLASSES[c]
        name = self._names[index]
        meta = {"dataset": self.dataset, "name": name, "source": str(self.images.path), "index": index,
                "split": self.split, "tissue": "colon", "mpp": MPP,
                "lizard_image": name.rsplit("-", 1)[0] if "-" in name else None,
                "n_unknown_class": sum(v is None for v in classes.values())}
        return Sample(image=img, labels=labels, classes=classes, label_set=self.label_set, ignore=None, meta=meta)
