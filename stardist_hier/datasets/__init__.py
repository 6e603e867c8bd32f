"""Dataset readers (no TensorFlow).

Every reader is a lazy sequence of :class:`Sample` records (RGB uint8 image, int32
instance labels 1..n, ``{id: label name or None}`` classes in the dataset's label set,
optional ignore mask, ``meta``). One module per native format; :mod:`.registry` maps
dataset names to readers, label sets and download information; :mod:`.patches` cuts
fixed-size patches; :mod:`.leakage` finds test images re-annotated in training data.

>>> from stardist_hier.datasets import open_dataset, extract_patches
>>> ds = open_dataset("nucls", "../shared/data/nucls", label_set="nucls4")  # doctest: +SKIP
>>> patches = [p for s in ds for p in extract_patches(s, size=256)]            # doctest: +SKIP
"""

from .base import DatasetError, Reader
from .consep import CoNSeP, CoNSePMerged
from .dsb2018 import DSB2018
from .folder import Folder
from .leakage import LeakageWarning, check_leakage, find_leaks, read_lizard_info, reader_keys
from .lizard import CoNIC, Lizard
from .monusac import MoNuSAC
from .monuseg import MoNuSeg
from .nucls import NuCLS
from .pannuke import PanNuke
from .patches import extract_patches, iter_patches, patch_grid
from .record import Sample
from .registry import DATASETS, DatasetInfo, available_datasets, get_dataset, open_dataset

__all__ = [
    "Sample", "Reader", "DatasetError",
    "PanNuke", "CoNSeP", "CoNSePMerged", "MoNuSAC", "Lizard", "CoNIC", "NuCLS", "MoNuSeg", "DSB2018", "Folder",
    "DATASETS", "DatasetInfo", "available_datasets", "get_dataset", "open_dataset",
    "extract_patches", "iter_patches", "patch_grid",
    "check_leakage", "find_leaks", "read_lizard_info", "reader_keys", "LeakageWarning",
]
