"""The typed sections of an experiment config (``training``, ``evaluation``): defaults, and each
refuses a bad value naming the section and the key, built directly or through load_config."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from stardist_hier.training.experiment import (ConfigError, CurveSection, EvaluationSection, TrainingSection,
                                               load_config)
from stardist_hier.training.experiment.sections import CURVE_KEYS, EVALUATION_KEYS, TRAINING_KEYS

BASE = {
    "name": "sections",
    "model": {"n_rays": 8, "grid": [2, 2], "unet_n_depth": 1, "unet_n_filter_base": 4, "net_conv_after_unet": 8,
              "train_patch_size": [32, 32], "train_batch_size": 2},
    "datasets": {"A": {"source": "synthetic", "generator": "pannuke", "n_tiles": 4, "size": 32, "seed": 1,
                       "split": {"train": 2, "val": 1, "test": 1}},
                 "B": {"source": "synthetic", "generator": "consep", "n_tiles": 4, "size": 32, "seed": 2,
                       "split": {"train": 2, "val": 1, "test": 1}}},
    "episodes": [{"name": "pre", "datasets": "A", "epochs": 1}],
    "tests": [{"dataset": "B"}],
}


def _cfg(**sections):
    raw = copy.deepcopy(BASE)
    raw.update(sections)
    return raw


def test_keys_are_the_fields():
    assert TRAINING_KEYS == {"steps_per_epoch", "tensorboard", "augment", "oversample", "deterministic",
                             "input_workers"}
    assert EVALUATION_KEYS == {"convention", "overlays", "prob_thresh", "nms_thresh", "tune_thresholds", "curve"}
    assert CURVE_KEYS == {"datasets", "max_images"}


def test_defaults_when_the_sections_are_absent():
    cfg = load_config(_cfg())
    assert cfg.training == TrainingSection()
    assert (cfg.training.steps_per_epoch, cfg.training.tensorboard, cfg.training.deterministic,
            cfg.training.input_workers) == (100, True, True, 1)
    assert cfg.training.augment == {} and cfg.training.oversample == {"threshold": 0.1, "factor": 2.0}
    assert cfg.evaluation == EvaluationSection()
    assert (cfg.evaluation.convention, cfg.evaluation.overlays, cfg.evaluation.thresholds) == ("conic", 2, {})
    assert cfg.evaluation.tune_thresholds is None and cfg.evaluation.curve is None


def test_sections_are_frozen_and_read_by_attribute():
    cfg = load_config(_cfg(training={"steps_per_epoch": 7, "augment": False, "oversample": None},
                           evaluation={"overlays": False, "prob_thresh": 0.4, "curve": ["B", "A", "B"]}))
    assert (cfg.training.steps_per_epoch, cfg.training.augment, cfg.training.oversample) == (7, None, None)
    assert cfg.evaluation.overlays == 0 and cfg.evaluation.thresholds == {"prob_thresh": 0.4}
    assert cfg.evaluation.curve == CurveSection(datasets=("B", "A"), max_images=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.training.steps_per_epoch = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.evaluation.convention = "pannuke"


@pytest.mark.parametrize("cls, kwargs, message", [
    (TrainingSection, {"steps_per_epoch": 1}, "training: steps_per_epoch must be an integer >= 2, got 1"),
    (TrainingSection, {"steps_per_epoch": True}, "training: steps_per_epoch must be an integer >= 2, got True"),
    (TrainingSection, {"tensorboard": "yes"}, "training: tensorboard must be true or false, got 'yes'"),
    (TrainingSection, {"deterministic": 1}, "training: deterministic must be true or false, got 1"),
    (TrainingSection, {"input_workers": 0}, "training: input_workers must be an integer >= 1"),
    (TrainingSection, {"augment": [1]}, "training: augment must be a mapping of Augmenter keywords or false"),
    (TrainingSection, {"augment": {"rare": 1}}, "training: augment: 'rare' and 'source' are set by the runner"),
    (TrainingSection, {"oversample": {"threshold": 2}}, "training: oversample: threshold: must be a number in (0, 1]"),
    (TrainingSection, {"oversample": {"fact": 2}}, "training: oversample: unknown key 'fact'"),
    (EvaluationSection, {"convention": "x"}, "evaluation: convention must be one of"),
    (EvaluationSection, {"overlays": -1}, "evaluation: overlays (images per test set): must be an integer in [0, inf)"),
    (EvaluationSection, {"prob_thresh": 1.0}, "evaluation: prob_thresh: must be a number in (0, 1), got 1.0"),
    (EvaluationSection, {"nms_thresh": 0}, "evaluation: nms_thresh: must be a number in (0, 1), got 0"),
    (EvaluationSection, {"tune_thresholds": ("A",), "nms_thresh": 0.3},
     "evaluation: tune_thresholds: cannot be combined with fixed nms_thresh"),
    (EvaluationSection, {"tune_thresholds": ()}, "evaluation: tune_thresholds: expected a non-empty list"),
    (CurveSection, {"datasets": []}, "evaluation: curve: datasets must be a non-empty list of dataset names"),
    (CurveSection, {"datasets": ["A"], "max_images": 0}, "evaluation: curve: max_images: must be an integer in [1, inf)"),
])
def test_each_section_refuses_a_bad_value_naming_its_key(cls, kwargs, message):
    with pytest.raises(ConfigError) as e:
        cls(**kwargs)
    assert str(e.value).startswith(message), str(e.value)
    if cls is not CurveSection:  # the same message through load_config, from the YAML section
        section = "training" if cls is TrainingSection else "evaluation"
        raw = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
        with pytest.raises(ConfigError) as e2:
            load_config(_cfg(**{section: raw}))
        assert str(e2.value).startswith(message), str(e2.value)


@pytest.mark.parametrize("section, spec, message", [
    ("training", {"step_per_epoch": 3}, "training: unknown key 'step_per_epoch' (did you mean 'steps_per_epoch'?)"),
    ("training", [1], "training: expected a mapping, got list"),
    ("evaluation", {"curves": ["A"]}, "evaluation: unknown key 'curves' (did you mean 'curve'?)"),
    ("evaluation", {"prob_thresh": None}, "evaluation: prob_thresh: must be a number in (0, 1), got None"),
    ("evaluation", {"curve": ["Z"]}, "evaluation: curve: unknown dataset 'Z'"),
    ("evaluation", {"curve": {"datasets": ["A"], "every": 2}}, "evaluation: curve: unknown key 'every'"),
    ("evaluation", {"tune_thresholds": ["B"]}, "evaluation: tune_thresholds: dataset 'B' is not trained on"),
    ("evaluation", {"tune_thresholds": [{"dataset": "A", "split": "test"}]},
     "evaluation: tune_thresholds: thresholds tuned on the test split of 'A'"),
])
def test_load_config_refuses_a_bad_section_naming_the_key(section, spec, message):
    with pytest.raises(ConfigError) as e:
        load_config(_cfg(**{section: spec}))
    assert str(e.value).startswith(message), str(e.value)


def test_tune_thresholds_and_curve_are_read_against_the_datasets():
    cfg = load_config(_cfg(evaluation={"tune_thresholds": ["A", {"dataset": "A", "split": "val"}],
                                       "curve": {"datasets": "B", "max_images": 2}}))
    assert cfg.evaluation.tune_thresholds == ("A",)
    assert cfg.evaluation.curve == CurveSection(datasets=("B",), max_images=2)
