"""Threshold tuning by one rule for every row (issue 19): the tested dataset's own validation split
when the row trains on it, else the trained datasets' validation splits; never a test split."""

import copy
from pathlib import Path

import pytest

from stardist_hier.io import load_yaml
from stardist_hier.training.experiment import ConfigError, load_config
from stardist_hier.training.experiment.evaluate import threshold_plan
from stardist_hier.training.experiment.study import load_study

from .test_study import BASE

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted(p for p in list((ROOT / "stardist_hier" / "examples").glob("*.yaml"))
                 + list((ROOT / "benchmarks").glob("*.yaml"))
                 if {"rows", "base"} <= set(load_yaml(p) or {}))


def test_plan_refuses_test_split_and_untrained_dataset():
    cfg = copy.deepcopy(BASE)
    cfg["evaluation"] = {"overlays": 0, "tune_thresholds": [{"dataset": "C", "split": "test"}]}
    with pytest.raises(ConfigError, match="test split of 'C'"):
        load_config(cfg)
    cfg["episodes"] = [{"name": "only", "datasets": "C", "epochs": 1}]
    cfg["evaluation"] = {"overlays": 0, "tune_thresholds": ["P"]}
    with pytest.raises(ConfigError, match="'P' is not trained on by any episode"):
        load_config(cfg)
    # a test set of an untrained dataset gets the trained datasets' thresholds, never its own
    cfg["evaluation"] = {"overlays": 0, "tune_thresholds": ["C"]}
    cfg["tests"] = [{"name": "C-test", "dataset": "C"}, {"name": "P-test (unseen)", "dataset": "P"}]
    assert threshold_plan(load_config(cfg)) == {"C-test": ("C",), "P-test (unseen)": ("C",)}
    cfg["evaluation"] = {"overlays": 0, "prob_thresh": 0.5, "nms_thresh": 0.3}
    assert threshold_plan(load_config(cfg)) == {}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_row_of_every_shipped_study_tunes_by_the_same_rule(path):
    study = load_study(path)
    for row, _ in study.rows:
        cfg = load_config(study.experiment(row, study.seeds[0]), base_dir=study.base_dir)
        trained = list(dict.fromkeys(d for ep in cfg.episodes for d in ep.dataset_names))
        plan = threshold_plan(cfg)
        assert set(plan) == {t.name for t in cfg.tests}, (path.stem, row)
        for t in cfg.tests:
            expected = (t.dataset,) if t.dataset in trained else tuple(trained)
            assert plan[t.name] == expected, (path.stem, row, t.name)
            assert set(plan[t.name]) <= set(trained)  # only validation splits of trained datasets
