"""Training across datasets: episodes, dataset mixing, class-aware augmentation, experiments.

The paper trains on dataset A, then continues on dataset B with the same last layer,
each *episode* stopped early on its own validation loss. Here one
:meth:`StarDist2DHier.train` call covers a whole schedule of :class:`Episode` s: a
:class:`DatasetMixer` passed as ``sampler=`` chooses each batch's images from the
current episode's datasets, and an :class:`EpisodeCallback` switches episodes at epoch
boundaries (see :mod:`stardist_hier.training.callback`). :func:`train_episodes` wires it
all up; :func:`run_experiment` runs a whole YAML experiment (the ``stardist-hier
experiment`` command).

Importing this package does not import TensorFlow; the callback, :func:`train_episodes`
and the experiment runner are loaded on first use.
"""

from .augment import Augmenter, oversampling_weights, rare_images, rare_labels
from .data import MultiDataset, Part, normalize_image
from .sampler import DatasetMixer
from .schedule import Episode, ScheduleError, validate_schedule

_LAZY = {
    "EpisodeCallback": "stardist_hier.training.callback",
    "train_episodes": "stardist_hier.training.callback",
    "reset_optimizer": "stardist_hier.training.callback",
    "CheckpointMismatch": "stardist_hier.training.callback",
    "ConfigError": "stardist_hier.training.experiment",
    "ExperimentConfig": "stardist_hier.training.experiment",
    "load_config": "stardist_hier.training.experiment",
    "run_experiment": "stardist_hier.training.experiment",
    "plot_loss_curves": "stardist_hier.training.experiment",
}

__all__ = ["Episode", "ScheduleError", "validate_schedule", "DatasetMixer", "MultiDataset", "Part",
           "normalize_image", "Augmenter", "rare_labels", "rare_images", "oversampling_weights", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stardist_hier.training' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
