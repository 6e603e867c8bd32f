"""Experiments from a YAML file: datasets, episodes, test sets -> tables, curves, overlays.

An experiment config (see ``examples/two_datasets.yaml``)::

    name: two_datasets
    seed: 0
    taxonomy: default              # or a taxonomy file (JSON/YAML), relative to the config
    model: {n_rays: 16, grid: [2, 2], train_patch_size: [64, 64], ...}   # Config2DHier keywords
    training:
      steps_per_epoch: 10          # >= 2
      tensorboard: true            # StarDist's TensorBoard logs in OUT/model/logs
      augment: {p_color: 0.8, rare_p_elastic: 0.5, ...}   # Augmenter keywords, or false
      oversample: {threshold: 0.1, factor: 2.0}          # rare-class images, or false
    datasets:
      A: {source: synthetic, generator: pannuke, n_tiles: 12, size: 128, seed: 1,
          split: {train: 8, val: 2, test: 2}}
      C: {source: registry, dataset: consep, path: /data/consep, split: train, test_split: test,
          split_fractions: {val: 0.2}, patch_size: 256, limit: 40}
    episodes:
      - {name: pretrain, datasets: A, epochs: 20, early_stopping: {patience: 3, min_delta: 0.0}}
      - {name: finetune, datasets: {A: 0.3, B: 0.7}, epochs: 10, keep_optimizer_state: false}
    tests:
      - {name: B-test, dataset: B}                       # at B's own label set
      - {name: B-coarse, dataset: B, label_set: consep4} # or a label set name / {labels: {...}}
      - {name: A-leaves, dataset: A, truth: leaves}      # synthetic only: the generator's true leaves
    evaluation: {convention: conic, overlays: 2}
    # or tune prob/NMS thresholds on validation splits of datasets the episodes train on
    # (a test split or an unseen dataset is refused): evaluation: {tune_thresholds: [B]}
    # validation loss, PQ and mPQ+ of datasets after every epoch of every episode (Figure 3;
    # also of a dataset the episode does not train on): evaluation: {curve: {datasets: [B], max_images: 4}}

``truth: leaves`` (default ``truth: labels``) scores a synthetic dataset's test split
against the true leaf of every nucleus (``meta["leaves"]``; also the nuclei its label
set leaves uncovered, i.e. ignored), at the label set ``leaves`` unless ``label_set``
says otherwise; predictions are scored as for any test set.

The label set ``leaves`` (every leaf its own label) is always available, e.g. for an
oracle source ``{generator: pannuke, domain: {label_set: leaves}}``. Studies (rows of
experiments over paired seeds, with paired t intervals, sign-flip p-values and Holm over
the primary comparisons) are in :mod:`.study` (``examples/ablation.yaml``, ``table2.yaml``, ``table4.yaml``).

Everything that needs no image is checked first (:func:`load_config`), then the data
are read and checked (labels against label sets), all before any training; errors
are :class:`ConfigError` naming the entry.

The run folder ``OUT`` holds ``config.yaml`` (the config as run), ``model/`` (the
StarDist model folder, TensorBoard logs in ``model/logs``), ``checkpoint/`` (resume
state, rewritten after every epoch), ``history.json`` (per-episode histories),
``results.md`` / ``results.csv`` (shaped like the paper's Tables 2 and 4),
``tests/<name>.csv`` (per-label PQ), ``loss_curves.png`` (Figure 3 style),
``overlays/`` and, with ``evaluation: curve``, ``curve.csv`` (episode, epoch,
global_epoch, dataset, val_loss, pq, mpq and the loss's parts; the rows are kept in the
history, so in the checkpoint, and survive a resume) and ``curve.png``. Rerunning with the same config and ``OUT`` continues an interrupted run
from its last completed epoch; a finished run is only evaluated again.
"""

from .build import load_data
from .config import (EVALUATION_KEYS, REGISTRY_KEYS, SOURCES, SYNTHETIC_KEYS, TOP_KEYS, TRAINING_KEYS,
                     ConfigError, DatasetSpec, ExperimentConfig, TestSpec, load_config)
from .sections import CurveSection, EvaluationSection, TrainingSection
from .evaluate import evaluate_tests
from .outputs import plot_loss_curves, results_table, write_overlays
from .run import run_experiment

__all__ = ["ConfigError", "ExperimentConfig", "DatasetSpec", "TestSpec", "TrainingSection", "EvaluationSection",
           "CurveSection", "load_config", "load_data",
           "run_experiment", "results_table", "plot_loss_curves"]

# Layout of the package (none of it imports TensorFlow until a run starts):
#   config.py    load_config: the config, one function per section, its dataset and test entries
#   sections.py  the typed sections (TrainingSection, EvaluationSection, CurveSection), ConfigError
#   build.py     load_data: the datasets' train/validation/test parts
#   run.py       run_experiment: seeds, model, training through the episodes, evaluation
#   evaluate.py  evaluate_tests: predictions, scores and the results table
#   outputs.py   results tables, loss curves and overlays
#   study.py     run_study: rows of experiments over paired seeds, paired statistics; the shipped
#                studies by name (study_config) and is_study_config
