"""stardist-hier: StarDist nucleus segmentation and classification trained on datasets
with different label sets, through a coarse-to-fine class tree.

The public namespace is curated and imported lazily: ``import stardist_hier`` does not
import TensorFlow; touching :class:`StarDist2DHier` or :class:`Config2DHier` does.
"""

from .tree import (ClassTree, LabelSet, Taxonomy, TreeError, LabelSetError, IGNORE,
                   default_taxonomy)
from .version import __version__

_LAZY = {
    "Config2DHier": "stardist_hier.models.model2d",
    "StarDist2DHier": "stardist_hier.models.model2d",
}

__all__ = ["ClassTree", "LabelSet", "Taxonomy", "TreeError", "LabelSetError", "IGNORE",
           "default_taxonomy", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stardist_hier' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
