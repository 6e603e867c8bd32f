"""CoNSeP reader (colon, 40x, 1000x1000; label sets ``consep`` (7 classes) and ``consep4``).

Two kinds of label files exist, and the values cannot tell them apart:

- **native** (``codes="native"``, the default; CoNSeP's own release): type codes 1..7 =
  other, inflammatory, healthy epithelial, malignant epithelial, fibroblast, muscle,
  endothelial;
- **merged** (``codes="merged"``, or the registry dataset ``consep_merged``): files whose
  codes were already merged into HoVer-Net's 4 classes, 1..4 = other, inflammatory,
  epithelial, spindle-shaped (HoVer-Net's own training data, and ``shared/data/consep``).
  Here 3 and 4 mean epithelial and spindle: read with the native table, every
  spindle-shaped nucleus would silently become a malignant epithelial one. Merged
  files are read only at ``consep4``, and a code above 4 is an error.

Which kind a folder holds is never guessed from its values: say it.

Layout::

    ROOT/Train/Images/train_1.png   (RGB or RGBA: the first 3 channels are used)
    ROOT/Train/Labels/train_1.mat   inst_map (H, W), type_map (H, W), inst_type (N, 1), inst_centroid (N, 2)
    ROOT/Test/...

``ROOT`` may also be the folder that contains ``CoNSeP/``. Pre-2020 releases stored
labels as ``Labels/<name>.npy`` arrays (H, W, 2) = (instance, type); these are read
when no ``.mat`` exists.

Rules:

- The class of instance id ``k`` is ``inst_type[k - 1]`` (ids are 1..N in the
  release). A ``.mat`` without ``inst_type``, and the legacy ``.npy`` labels, use the
  majority of the instance's ``type_map`` pixels (ties -> ``None``, class unknown).
- Codes outside 1..7, or an id above ``len(inst_type)``, raise :class:`DatasetError`.
- ``label_set="consep4"`` merges {3, 4} -> epithelial and {5, 6, 7} -> spindle (native codes).
- Instance ids are relabelled to 1..n in increasing order of the original ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DatasetError, Reader, require_dir
from .images import read_rgb
from .instances import as_label_image, majority_vote, relabel_sequential
from .record import Sample

__all__ = ["CoNSeP", "CoNSePMerged", "CONSEP_CLASSES", "CONSEP4_CLASSES", "MERGED4_CLASSES",
           "read_consep_labels"]

#: Native type code -> label name, label set ``consep``.
CONSEP_CLASSES = {1: "other", 2: "inflammatory", 3: "healthy epithelial", 4: "malignant epithelial",
                  5: "fibroblast", 6: "muscle", 7: "endothelial"}
#: Native type code -> label name, label set ``consep4`` (the common 4-class merge).
CONSEP4_CLASSES = {1: "other", 2: "inflammatory", 3: "epithelial", 4: "epithelial",
                   5: "spindle", 6: "spindle", 7: "spindle"}

#: Code -> label name of files whose codes are already merged (``codes="merged"``), label set ``consep4``.
MERGED4_CLASSES = {1: "other", 2: "inflammatory", 3: "epithelial", 4: "spindle"}
#: ``codes=`` value -> (allowed label sets, {label set: code table}).
_CODE_TABLES = {"native": {"consep": CONSEP_CLASSES, "consep4": CONSEP4_CLASSES},
                "merged": {"consep4": MERGED4_CLASSES}}

_SPLITS = {"train": "Train", "test": "Test"}


def read_consep_labels(path, *, shape=None, codes: str = "native") -> tuple:
    """Read a CoNSeP label file.

    Parameters
    ----------
    path : path
        ``.mat`` (MAT v5) or legacy ``.npy`` (H, W, 2).
    shape : tuple, optional
        Expected (H, W).
    codes : {"native", "merged"}
        Which codes the file holds (1..7, or HoVer-Net's merged 1..4); codes outside
        that range are an error.

    Returns
    -------
    inst_map : ndarray of int64
    codes : dict of int to (int or None)
        Native type code of every instance id present in ``inst_map``.

    Raises
    ------
    DatasetError
        Unreadable file, missing ``inst_map``, wrong shapes, unknown codes (naming the file).
    """
    if codes not in _CODE_TABLES:
        raise ValueError(f"consep: codes must be 'native' or 'merged', got {codes!r}")
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:
            raise DatasetError(f"{path}: cannot read CoNSeP labels ({e})") from None
        if arr.ndim != 3 or arr.shape[-1] != 2:
            raise DatasetError(f"{path}: expected legacy labels of shape (H, W, 2), got {arr.shape}")
        inst = as_label_image(arr[..., 0], source=path, shape=shape)
        types = as_label_image(arr[..., 1], source=path)
        found = majority_vote(inst, types)
    else:
        from scipy.io import loadmat

        try:
            mat = loadmat(path)
        except Exception as e:
            raise DatasetError(f"{path}: cannot read CoNSeP .mat labels ({e})") from None
        if "inst_map" not in mat:
            raise DatasetError(f"{path}: no 'inst_map' in CoNSeP labels (keys: "
                               f"{sorted(k for k in mat if not k.startswith('__'))})")
        inst = as_label_image(mat["inst_map"], source=path, shape=shape)
        if "inst_type" in mat:
            it = np.asarray(mat["inst_type"]).ravel()
            if it.size and (it.dtype.kind not in "iuf" or np.any(it != np.floor(it))):
                raise DatasetError(f"{path}: inst_type must hold integer class codes")
            ids = np.unique(inst)
            ids = ids[ids > 0]
            if ids.size and ids[-1] > it.size:
                raise DatasetError(f"{path}: instance id {int(ids[-1])} has no row in inst_type "
                                   f"({it.size} rows)")
            found = {int(i): int(it[i - 1]) for i in ids}
        elif "type_map" in mat:
            types = as_label_image(mat["type_map"], source=path, shape=inst.shape)
            found = majority_vote(inst, types)
        else:
            raise DatasetError(f"{path}: CoNSeP labels have neither 'inst_type' nor 'type_map'")
    ids = np.unique(inst)
    for i in ids[ids > 0]:
        found.setdefault(int(i), None)
    table = MERGED4_CLASSES if codes == "merged" else CONSEP_CLASSES
    bad = sorted({c for c in found.values() if c is not None and c not in table})
    if bad:
        raise DatasetError(f"{path}: unknown CoNSeP class codes {bad} for {codes} codes; known codes "
                           f"1..{len(table)} ({', '.join(table.values())})")
    return inst, found


class CoNSeP(Reader):
    """CoNSeP images as :class:`Sample` records (rules in the module docstring).

    Parameters
    ----------
    root : str or path
        Folder holding ``Train/`` and ``Test/`` (or holding ``CoNSeP/``).
    split : {"train", "test"}, optional
        Default: both.
    label_set : {"consep", "consep4"}
    codes : {"native", "merged"}
        What the files' type codes mean (module docstring): CoNSeP's own 7 codes, or
        HoVer-Net's 4 merged ones (then only ``label_set="consep4"``).

    Raises
    ------
    FileNotFoundError
        Missing folders, or an image without a label file (naming it).
    """

    dataset = "consep"

    def __init__(self, root, *, split=None, label_set: str = "consep", codes: str = "native"):
        if codes not in _CODE_TABLES:
            raise ValueError(f"consep: codes must be 'native' or 'merged', got {codes!r}")
        self.check_label_set(label_set, _CODE_TABLES[codes], because=f"cannot be read from {codes} codes",
                             where="consep")
        self.codes = codes
        root = require_dir(root, what="CoNSeP folder")
        if not any((root / d).is_dir() for d in _SPLITS.values()) and (root / "CoNSeP").is_dir():
            root = root / "CoNSeP"
        super().__init__(root, label_set=label_set)
        self._table = _CODE_TABLES[codes][label_set]
        if split is not None and str(split).lower() not in _SPLITS:
            raise ValueError(f"consep: split must be 'train' or 'test', got {split!r}")
        splits = [str(split).lower()] if split is not None else list(_SPLITS)
        self._items = []
        for s in splits:
            d = self.root / _SPLITS[s]
            if split is not None:
                require_dir(d / "Images", what="CoNSeP images folder")
            elif not d.is_dir():
                continue
            imgs = sorted(p for p in (d / "Images").glob("*.png"))
            for p in imgs:
                lab = d / "Labels" / (p.stem + ".mat")
                if not lab.is_file():
                    legacy = lab.with_suffix(".npy")
                    if not legacy.is_file():
                        raise FileNotFoundError(f"consep: no label file for {p} (expected {lab})")
                    lab = legacy
                self._items.append((s, p, lab))
        self._names = [p.stem for _, p, _ in self._items]
        self._check_nonempty(self.root)

    def _read(self, index: int) -> Sample:
        split, ipath, lpath = self._items[index]
        img = read_rgb(ipath)
        inst, codes = read_consep_labels(lpath, shape=img.shape, codes=self.codes)
        labels, old = relabel_sequential(inst)
        classes = {}
        for k, o in enumerate(old, start=1):
            c = codes[int(o)]
            classes[k] = None if c is None else self._table[c]
        meta = {"dataset": self.dataset, "name": ipath.stem, "source": str(ipath), "labels_file": str(lpath),
                "split": split, "tissue": "colon", "mpp": None, "magnification": 40, "codes": self.codes}
        return Sample(image=img, labels=labels, classes=classes, label_set=self.label_set, ignore=None, meta=meta)


class CoNSePMerged(CoNSeP):
    """CoNSeP files whose type codes are HoVer-Net's 4 merged classes (``codes="merged"``).

    The registry's ``consep_merged``: label set ``consep4`` only (see the module docstring).
    """

    dataset = "consep_merged"

    def __init__(self, root, *, split=None, label_set: str = "consep4"):
        super().__init__(root, split=split, label_set=label_set, codes="merged")
