"""Known datasets: reader, label sets, where to download them.

The registry is a read-only mapping built at import (no I/O); readers are imported
only when a dataset is opened.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["DatasetInfo", "DATASETS", "get_dataset", "available_datasets", "open_dataset"]


@dataclass(frozen=True)
class DatasetInfo:
    """One known dataset.

    Attributes
    ----------
    name : str
        Registry name (also ``meta["dataset"]`` of its samples).
    reader : str or None
        ``"module:Class"`` of the reader inside :mod:`stardist_hier.datasets`
        (``None``: no reader yet).
    label_sets : tuple of str
        Taxonomy label sets the reader can produce; the first is the default.
    description : str
    url : str
        Where to download it.
    download : str
        What to download and how the files must be laid out.
    license : str
    any_label_set : bool
        The reader accepts any label set of the taxonomy (generic folder).
    """

    name: str
    reader: str | None
    label_sets: tuple
    description: str
    url: str
    download: str
    license: str
    any_label_set: bool = False

    def reader_class(self):
        """The reader class (imported now).

        Raises
        ------
        NotImplementedError
            The dataset has no reader yet.
        """
        if self.reader is None:
            raise NotImplementedError(f"dataset {self.name!r} has no reader yet; {self.download}")
        mod, cls = self.reader.split(":")
        return getattr(importlib.import_module(f"stardist_hier.datasets.{mod}"), cls)

    def open(self, path, *, label_set: str | None = None, split=None, **kwargs):
        """Open the dataset at ``path`` with its reader (extra keywords go to the reader)."""
        ls = label_set or self.label_sets[0]
        if ls not in self.label_sets and not self.any_label_set:
            raise ValueError(f"dataset {self.name!r} has no label set {ls!r}; "
                             f"available: {', '.join(self.label_sets)}")
        return self.reader_class()(path, split=split, label_set=ls, **kwargs)


_CC_NC_SA = "CC BY-NC-SA 4.0"

DATASETS = MappingProxyType({d.name: d for d in (
    DatasetInfo(
        "pannuke", "pannuke:PanNuke", ("pannuke",),
        "19 tissues, 40x, 7,901 patches 256x256 in 3 folds, 5 classes",
        "https://warwick.ac.uk/fac/cross_fac/tia/data/pannuke",
        "Download the three fold zips and unzip them side by side: ROOT/Fold N/images/foldN/"
        "{images,types}.npy and ROOT/Fold N/masks/foldN/masks.npy (about 37 GB as float64).",
        _CC_NC_SA),
    DatasetInfo(
        "consep", "consep:CoNSeP", ("consep", "consep4"),
        "colon, 40x, 41 images 1000x1000 (27 train, 14 test), 7 classes (or the 4-class merge)",
        "https://warwick.ac.uk/fac/cross_fac/tia/data/hovernet/",
        "Unzip consep.zip: ROOT/{Train,Test}/Images/*.png and ROOT/{Train,Test}/Labels/*.mat.",
        "Apache-2.0 (TIA Centre, University of Warwick)"),
    DatasetInfo(
        "consep_merged", "consep:CoNSePMerged", ("consep4",),
        "CoNSeP as HoVer-Net trains on it: the type codes in the files are already its 4 merged classes "
        "(1 other, 2 inflammatory, 3 epithelial, 4 spindle-shaped)",
        "https://warwick.ac.uk/fac/cross_fac/tia/data/hovernet/",
        "CoNSeP's layout (ROOT/{Train,Test}/Images/*.png, ROOT/{Train,Test}/Labels/*.mat) with merged codes; "
        "for CoNSeP's own release (codes 1..7) use 'consep'.",
        "Apache-2.0 (TIA Centre, University of Warwick)"),
    DatasetInfo(
        "monusac", "monusac:MoNuSAC", ("monusac",),
        "lung, prostate, kidney, breast; 40x; 4 classes plus Ambiguous ignore regions",
        "https://monusac-2020.grand-challenge.org/Data/",
        "Training and testing data are separate zips; one folder per patient holding <name>.svs "
        "(or the .tif export) and <name>.xml. Reading .svs needs openslide-python.",
        _CC_NC_SA),
    DatasetInfo(
        "lizard", "lizard:Lizard", ("lizard",),
        "colon, 20x, 238 images, 6 classes (re-annotates CoNSeP, PanNuke, GlaS, CRAG, DigestPath images)",
        "https://warwick.ac.uk/fac/cross_fac/tia/data/lizard",
        "Unzip lizard_images1.zip, lizard_images2.zip and lizard_labels.zip into ROOT "
        "(Lizard_Images1/, Lizard_Images2/, Lizard_Labels/Labels/*.mat, Lizard_Labels/info.csv).",
        _CC_NC_SA),
    DatasetInfo(
        "conic", "lizard:CoNIC", ("conic",),
        "CoNIC 2022: 4,981 patches 256x256 of Lizard, 6 classes",
        "https://conic-challenge.grand-challenge.org/",
        "ROOT/images.npy, ROOT/labels.npy, ROOT/patch_info.csv (and counts.csv) from the challenge data.",
        _CC_NC_SA),
    DatasetInfo(
        "nucls", "nucls:NuCLS", ("nucls2", "nucls4"),
        "breast (TCGA); converted layout with segmentation (Tumor / Non-Tumor) and point labels "
        "(4 super-classes) on the same tiles",
        "https://sites.google.com/view/nucls/",
        "Converted layout of CellViT++'s test database: ROOT/segmentation/{train,test}/{images,labels} "
        "and ROOT/detection/{train,test}/labels/*.csv (see the project's data/README.md).",
        "CC0 1.0"),
    DatasetInfo(
        "monuseg", "monuseg:MoNuSeg", ("monuseg", "root"),
        "segmentation only, 40x, 1000x1000 (30 train + 14 test images); every nucleus is 'nucleus'",
        "https://monuseg.grand-challenge.org/Data/",
        "ROOT/Tissue Images/*.tif and ROOT/Annotations/*.xml (train and test are separate zips).",
        _CC_NC_SA),
    DatasetInfo(
        "dsb2018", "dsb2018:DSB2018", ("dsb2018", "root"),
        "segmentation only, mostly fluorescence; every nucleus is 'nucleus'",
        "https://www.kaggle.com/c/data-science-bowl-2018/data",
        "Kaggle stage1_train.zip (ROOT/stage1_train/<id>/{images,masks}/*.png), or StarDist's subset "
        "https://github.com/stardist/stardist/releases/download/0.1.0/dsb2018.zip "
        "(ROOT/{train,test}/{images,masks}/*.tif).",
        "Kaggle competition terms (stage1); see the page"),
    DatasetInfo(
        "nuinsseg", None, ("nuinsseg",),
        "segmentation only, 665 patches 512x512 from 31 human and mouse organs",
        "https://github.com/masih4/NuInsSeg",
        "No dedicated reader yet: lay out one organ's 'tissue images' as ROOT/images, 'label masks "
        "modify' as ROOT/labels and the ambiguous-area masks as ROOT/ignore, and use the 'folder' reader "
        "with label set 'nuinsseg' and ignore='ignore'.",
        "see the project page"),
    DatasetInfo(
        "folder", "folder:Folder", ("root",),
        "any folder of images + instance label images (+ optional JSON/CSV instance classes)",
        "",
        "ROOT/images/<name>.png|tif, ROOT/labels/<name>.tif|png, optional ROOT/labels/<name>.json|csv; "
        "pass label_set= for a taxonomy label set other than 'root'.",
        "yours", any_label_set=True),
)})


def available_datasets() -> tuple:
    """Registry names in display order."""
    return tuple(DATASETS)


def get_dataset(name: str) -> DatasetInfo:
    """Registry entry of ``name`` (case-insensitive).

    Raises
    ------
    KeyError
        Unknown name (the message lists the known ones).
    """
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[key]


def open_dataset(name: str, path, *, label_set: str | None = None, split=None, **kwargs):
    """Open dataset ``name`` at ``path``: ``get_dataset(name).open(path, ...)``."""
    return get_dataset(name).open(path, label_set=label_set, split=split, **kwargs)
