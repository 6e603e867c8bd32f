"""PanNuke reader (19 tissues, 40x, 256x256 patches, label set ``pannuke``).

Layout (one folder per official fold)::

    ROOT/Fold 1/images/fold1/images.npy   (N, 256, 256, 3) float64, values 0..255
    ROOT/Fold 1/images/fold1/types.npy    (N,) tissue names
    ROOT/Fold 1/masks/fold1/masks.npy     (N, 256, 256, 6) float64

Mask channels 0..4 are instance-id maps of the classes Neoplastic, Inflammatory,
Connective, Dead and Non-neoplastic epithelial; channel 5 is a binary background
mask and is never read as instances.

Rules for the release's known defects (counts of each case go to ``meta``):

- **Overlapping class channels** (``n_overlap_pixels``): a pixel claimed by several
  class channels goes to the *first* of them in channel order (Neoplastic,
  Inflammatory, Connective, Dead, Non-neoplastic epithelial). The pixel stays a
  nucleus pixel so that no hole is punched into either outline.
- **Ids made of several connected components** (``n_split_ids``): with
  ``components="largest"`` (default) only the largest 8-connected component keeps
  the id; the smaller pieces become background *and* ignore (they are neither a
  trusted nucleus nor trusted background). ``components="split"`` makes every
  component its own nucleus of the same class; ``components="keep"`` leaves them.
- **Void pixels** (``n_void_pixels``): neither in a class channel nor marked as
  background in channel 5. ``void="ignore"`` (default) marks them as ignore,
  ``void="background"`` treats them as background.

Instance ids are relabelled per patch to 1..n (in channel order, then by the
original id). Arrays are read through :class:`~.npyfile.NpyRows` (memory-mapped,
one patch at a time), so a whole fold is never held in memory.

Mapping onto the default tree: Neoplastic -> epithelial_tumor (although a few
neoplastic nuclei are not epithelial), Non-neoplastic epithelial -> epithelial_normal,
Inflammatory -> inflammatory, Connective -> connective, Dead -> necrotic.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .base import DatasetError, Reader, require_dir
from .instances import keep_largest_component, relabel_sequential
from .npyfile import NpyRows
from .record import Sample

__all__ = ["PanNuke", "PANNUKE_CLASSES", "fold_paths"]

#: Label names of mask channels 0..4 (label set ``pannuke``).
PANNUKE_CLASSES = ("Neoplastic", "Inflammatory", "Connective", "Dead", "Non-neoplastic epithelial")

MPP = 0.25  # 40x, about 0.25 um/px


def fold_paths(root, fold: int) -> dict:
    """Paths of the three arrays of official fold ``fold`` under ``root``."""
    root = Path(root)
    base = root / f"Fold {fold}"
    return {
        "images": base / "images" / f"fold{fold}" / "images.npy",
        "types": base / "images" / f"fold{fold}" / "types.npy",
        "masks": base / "masks" / f"fold{fold}" / "masks.npy",
    }


def _parse_split(split) -> int | None:
    if split is None:
        return None
    m = re.fullmatch(r"\s*(?:fold\s*)?(\d+)\s*", str(split), flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"pannuke: split must be a fold like 'fold1' or '1', got {split!r}")
    return int(m.group(1))


class _Fold:
    def __init__(self, root, fold: int):
        paths = fold_paths(root, fold)
        self.fold = fold
        self.images = NpyRows(paths["images"], what="PanNuke images array")
        self.masks = NpyRows(paths["masks"], what="PanNuke masks array")
        tpath = paths["types"]
        if not tpath.is_file():
            raise FileNotFoundError(f"PanNuke types file not found: {tpath}")
        try:
            types = np.load(tpath, allow_pickle=False)
        except Exception as e:
            raise DatasetError(f"{tpath}: cannot read PanNuke tissue types ({e})") from None
        ip, mp = self.images.path, self.masks.path
        if len(self.images.shape) != 4 or self.images.shape[-1] != 3:
            raise DatasetError(f"{ip}: expected images of shape (N, H, W, 3), got {self.images.shape}")
        if len(self.masks.shape) != 4 or self.masks.shape[-1] != 6:
            raise DatasetError(f"{mp}: expected masks of shape (N, H, W, 6), got {self.masks.shape}")
        if self.masks.shape[:3] != self.images.shape[:3]:
            raise DatasetError(f"{mp}: masks shape {self.masks.shape} does not match images {ip} "
                               f"shape {self.images.shape}")
        if types.ndim != 1 or len(types) != self.images.shape[0] or types.dtype.kind not in "US":
            raise DatasetError(f"{tpath}: expected {self.images.shape[0]} tissue names, got an array of "
                               f"shape {types.shape} and dtype {types.dtype}")
        self.types = [str(t) for t in types]

    def __len__(self):
        return self.images.shape[0]


class PanNuke(Reader):
    """PanNuke patches as :class:`Sample` records (rules in the module docstring).

    Parameters
    ----------
    root : str or path
        Folder holding ``Fold 1``, ``Fold 2``, ``Fold 3`` (any subset).
    split : str or int, optional
        One fold (``"fold2"`` or ``2``); default: every fold present.
    label_set : str
        Only ``"pannuke"``.
    components : {"largest", "split", "keep"}
        What to do with ids made of several connected components.
    void : {"ignore", "background"}
        What to do with pixels that are neither nucleus nor background.

    Raises
    ------
    FileNotFoundError
        ``root`` or a fold's arrays missing (naming the path).
    DatasetError
        Arrays of the wrong shape or dtype (naming the file).
    """

    dataset = "pannuke"

    def __init__(self, root, *, split=None, label_set: str = "pannuke", components: str = "largest",
                 void: str = "ignore"):
        self.check_label_set(label_set, ("pannuke",), title="PanNuke")
        if components not in ("largest", "split", "keep"):
            raise ValueError(f"pannuke: components must be 'largest', 'split' or 'keep', got {components!r}")
        if void not in ("ignore", "background"):
            raise ValueError(f"pannuke: void must be 'ignore' or 'background', got {void!r}")
        super().__init__(require_dir(root, what="PanNuke folder"), label_set=label_set)
        self.components = components
        self.void = void
        fold = _parse_split(split)
        if fold is None:
            folds = sorted(int(m.group(1)) for p in self.root.iterdir()
                           if p.is_dir() and (m := re.fullmatch(r"Fold (\d+)", p.name)))
            if not folds:
                raise FileNotFoundError(f"pannuke: no 'Fold N' folders under {self.root} "
                                        f"(expected e.g. {fold_paths(self.root, 1)['images']})")
        else:
            folds = [fold]
        self._folds = [_Fold(self.root, f) for f in folds]
        self._index = [(k, i) for k, fd in enumerate(self._folds) for i in range(len(fd))]
        self._names = [f"fold{self._folds[k].fold}_{i:04d}" for k, i in self._index]
        self._check_nonempty(self.root)

    def _read(self, index: int) -> Sample:
        k, i = self._index[index]
        fd = self._folds[k]
        img = fd.images[i]
        src = f"{fd.images.path} [{i}]"
        if img.dtype != np.uint8:
            if img.dtype.kind == "f" and not np.all(np.isfinite(img)):
                raise DatasetError(f"{src}: image has non-finite values")
            if img.min() < 0 or img.max() > 255:
                raise DatasetError(f"{src}: image values outside 0..255")
            img = np.rint(img).astype(np.uint8)
        masks = fd.masks[i]
        labels, classes, ignore, stats = self._instances(masks, source=f"{fd.masks.path} [{i}]")
        meta = {"dataset": self.dataset, "name": self._names[index], "source": str(fd.images.path),
                "index": i, "fold": fd.fold, "split": f"fold{fd.fold}", "tissue": fd.types[i], "mpp": MPP,
                **stats}
        return Sample(image=img, labels=labels, classes=classes, label_set=self.label_set,
                      ignore=ignore, meta=meta)

    def _instances(self, masks, *, source):
        inst = masks[..., :5]
        if inst.dtype.kind == "f":
            if not np.all(np.isfinite(inst)) or np.any(inst != np.floor(inst)):
                raise DatasetError(f"{source}: mask channels 0-4 have non-integer ids")
        if inst.min() < 0:
            raise DatasetError(f"{source}: mask channels 0-4 have negative ids")
        inst = inst.astype(np.int64)
        claimed = inst > 0
        n_claims = claimed.sum(-1)
        channel = np.argmax(claimed, axis=-1)  # first claiming channel (0 where none)
        ids = np.take_along_axis(inst, channel[..., None], axis=-1)[..., 0]
        big = int(inst.max()) + 1
        key = np.where(n_claims > 0, (channel + 1) * big + ids, 0)
        ignore = np.zeros(key.shape, bool)
        n_split = 0
        if self.components == "largest":
            key, dropped, n_split = keep_largest_component(key)
            ignore |= dropped
        elif self.components == "split":
            from skimage.measure import label as cc_label

            cc = cc_label(key, connectivity=2, background=0)
            owner = np.zeros(int(cc.max()) + 1, np.int64)
            owner[cc.ravel()] = key.ravel()
            _, n_comp = np.unique(owner[1:], return_counts=True)
            n_split = int(np.sum(n_comp > 1))
            key = np.where(cc > 0, owner[cc] // big * (cc.size + 1) + cc, 0)  # keep channel order
            big = cc.size + 1
        labels, old = relabel_sequential(key)
        classes = {k + 1: PANNUKE_CLASSES[int(o // big) - 1] for k, o in enumerate(old)}
        void = (n_claims == 0) & (masks[..., 5] == 0)
        if self.void == "ignore":
            ignore |= void
        stats = {"n_overlap_pixels": int(np.sum(n_claims > 1)), "n_split_ids": int(n_split),
                 "n_void_pixels": int(void.sum())}
        return labels, classes, ignore, stats
