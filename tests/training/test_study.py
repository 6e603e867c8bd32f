"""Studies over paired seeds: seeding, threshold refusal, paired statistics, shipped study configs."""

import copy
from pathlib import Path

import numpy as np
import pytest

from stardist_hier.training.experiment import ConfigError, load_config
from stardist_hier.training.experiment.study import holm, load_study, merge, paired_stats

EXAMPLES = Path(__file__).resolve().parents[2] / "stardist_hier" / "examples"

BASE = {
    "model": {"n_rays": 8, "grid": [2, 2], "unet_n_depth": 2, "unet_n_filter_base": 8, "net_conv_after_unet": 16,
              "train_patch_size": [64, 64], "train_batch_size": 2},
    "training": {"steps_per_epoch": 2, "tensorboard": False, "augment": False},
    "datasets": {
        "P": {"source": "synthetic", "generator": "pannuke", "n_tiles": 4, "size": 64,
              "split": {"train": 2, "val": 1, "test": 1}},
        "C": {"source": "synthetic", "generator": "consep", "n_tiles": 4, "size": 64,
              "split": {"train": 2, "val": 1, "test": 1}},
    },
    "episodes": [{"name": "pre", "datasets": "P", "epochs": 1}, {"name": "fine", "datasets": "C", "epochs": 1}],
    "tests": [{"name": "C-test", "dataset": "C"}],
    "evaluation": {"overlays": 0, "tune_thresholds": ["C"]},
}
STUDY = {"name": "tiny", "base": BASE, "seeds": [0, 1], "bootstrap": {"n": 200},
         "rows": [{"name": "marginal", "set": {}},
                  {"name": "renorm", "set": {"model": {"train_class_loss_options": {
                      "ce": {"variant": "renormalised"}, "focal_tversky": {"variant": "renormalised"}}}}}],
         "comparisons": [{"a": "marginal", "b": "renorm", "metric": "mpq", "test": "C-test"}]}


def _cfg(**evaluation):
    c = copy.deepcopy(BASE)
    c["evaluation"] = {"overlays": 0, **evaluation}
    return c


@pytest.mark.parametrize("tune, match", [
    ([{"dataset": "C", "split": "test"}], "tuned on the test split of 'C'"),
    (["X"], "unknown dataset 'X'"),
    ([{"dataset": "C", "split": "train"}], "split must be 'val'"),
    ([], "non-empty list"),
])
def test_thresholds_on_test_split_refused(tune, match):
    with pytest.raises(ConfigError, match=match):
        load_config(_cfg(tune_thresholds=tune))


def test_thresholds_on_unseen_dataset_refused():
    c = _cfg(tune_thresholds=["P"])
    c["episodes"] = [{"name": "fine", "datasets": "C", "epochs": 1}]
    with pytest.raises(ConfigError, match="'P' is not trained on by any episode"):
        load_config(c)
    with pytest.raises(ConfigError, match="cannot be combined with fixed prob_thresh"):
        load_config(_cfg(tune_thresholds=["C"], prob_thresh=0.5))
    assert load_config(_cfg(tune_thresholds="C")).evaluation.tune_thresholds == ("C",)


def test_shipped_studies_refuse_test_split_tuning():
    for name in ("ablation", "demo", "paper", "table2", "table4"):
        s = load_study(EXAMPLES / f"{name}.yaml")
        raw = copy.deepcopy(s.base)
        raw["evaluation"]["tune_thresholds"] = [{"dataset": s.comparisons[0]["test"] if s.comparisons else "x",
                                                 "split": "test"}]
        with pytest.raises(ConfigError):
            load_config({**raw, "seed": 0})
        for row, _ in s.rows:  # every row tunes on validation splits of datasets it trains on
            cfg = load_config(s.experiment(row, 0))
            trained = {d for e in cfg.episodes for d in e.dataset_names}
            assert set(cfg.evaluation.tune_thresholds) <= trained, (name, row)


def test_study_config_errors():
    with pytest.raises(ConfigError, match="unknown row 'nope'"):
        load_study({**STUDY, "comparisons": [{"a": "marginal", "b": "nope", "metric": "mpq"}]})
    with pytest.raises(ConfigError, match="'seed' is set per run"):
        load_study({**STUDY, "base": {**BASE, "seed": 3}})
    with pytest.raises(ConfigError, match="row 'bad'.*variant must be one of"):
        load_study({**STUDY, "comparisons": [], "rows": [{"name": "bad", "set": {"model": {"train_class_loss_options": {
            "ce": {"variant": "nope"}}}}}]})
    assert merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}


def test_paired_stats_and_holm():
    a = np.array([0.5, 0.6, 0.55, 0.7, 0.65, 0.6])
    s = paired_stats(a, a - 0.1, n_boot=500)
    assert s["diff"] == pytest.approx(0.1) and s["ci_low"] == pytest.approx(0.1) and s["wins"] == 6
    assert s["p"] == pytest.approx(2 / 64)  # exact sign-flip: only the all-+ and all-- flips are as extreme
    s = paired_stats([1, 2, 3], [1, 2, 3], n_boot=100)
    assert s["diff"] == 0 and s["p"] == 1.0
    # Holm: sorted p * (m - rank), made monotone, capped at 1
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_rows_of_a_seed_start_from_the_same_weights():
    """The runner seeds Keras before building the model; loss options do not change the initial weights."""
    from csbdeep.utils.tf import keras_import

    from stardist_hier.models.model2d import Config2DHier, StarDist2DHier
    from stardist_hier.training.experiment.config import _model_kwargs

    study = load_study(STUDY)
    weights = []
    for row, seed in (("marginal", 0), ("renorm", 0), ("marginal", 1)):
        cfg = load_config(study.experiment(row, seed))
        keras_import("utils", "set_random_seed")(cfg.seed)
        m = StarDist2DHier(Config2DHier(tree=cfg.taxonomy.tree, n_channel_in=3, **_model_kwargs(cfg.model)),
                           name=None, basedir=None)
        weights.append(m.keras_model.get_weights())
    assert all(np.array_equal(x, y) for x, y in zip(weights[0], weights[1]))
    assert not all(np.array_equal(x, y) for x, y in zip(weights[0], weights[2]))


@pytest.mark.slow
def test_same_study_twice_gives_the_same_table(tmp_path):
    from stardist_hier.training.experiment.study import run_study

    study = {**STUDY, "seeds": [0]}
    a = run_study(study, tmp_path / "a", verbose=0)
    b = run_study(study, tmp_path / "b", verbose=0)
    assert a["values"] == b["values"]
    assert (tmp_path / "a" / "study.md").read_text() == (tmp_path / "b" / "study.md").read_text()
    import json

    tuned = json.loads((tmp_path / "a" / "marginal" / "seed0" / "thresholds.json").read_text())
    assert tuned["tuned_on"] == ["C (val)"]
    # the test set's dataset is trained on: its thresholds are tuned on its own validation split
    assert tuned["by_test"] == {"C-test": {"tuned_on": ["C (val)"], "prob_thresh": tuned["prob_thresh"],
                                           "nms_thresh": tuned["nms_thresh"]}}
    # the model folder keeps them (StarDist's thresholds.json), and a reload uses them
    saved = json.loads((tmp_path / "a" / "marginal" / "seed0" / "model" / "thresholds.json").read_text())
    assert saved == {"prob": tuned["prob_thresh"], "nms": tuned["nms_thresh"]}
    from stardist_hier import StarDist2DHier

    m = StarDist2DHier(None, name="model", basedir=str(tmp_path / "a" / "marginal" / "seed0"))
    assert (m.thresholds.prob, m.thresholds.nms) == (saved["prob"], saved["nms"])
    # rerunning reads the finished runs back
    c = run_study(study, tmp_path / "a", verbose=0)
    assert c["values"] == a["values"] and c["timing"] == a["timing"]
    # the committed record (per-seed file + design) recomputes the same statistics and table exactly
    from stardist_hier.training.experiment.record import recompute
    from stardist_hier.training.experiment.study import format_study, record_study

    record_study(load_study(study), tmp_path / "a", tmp_path / "record")
    again, table = recompute(tmp_path / "record")
    assert again["values"] == json.loads(json.dumps(a["values"])) and again["comparisons"] == a["comparisons"]
    assert table == format_study(a) == (tmp_path / "a" / "study.md").read_text()
    assert (tmp_path / "record" / "tables.md").read_text() == table
    # and how long every episode of every run trained (2 rows x 1 seed x 2 episodes of 1 epoch)
    lines = (tmp_path / "record" / "episodes.csv").read_text().splitlines()
    assert lines[0] == "row,seed,episode,epochs_run,best_epoch,stopped_early,restored_best"
    assert sorted(ln.split(",")[:4] for ln in lines[1:]) == [["marginal", "0", "fine", "1"], ["marginal", "0", "pre", "1"],
                                                             ["renorm", "0", "fine", "1"], ["renorm", "0", "pre", "1"]]
    # and the loss of every epoch (the curves early stopping read), drawn from that file
    import csv

    with open(tmp_path / "record" / "curves.csv", newline="") as f:
        curves = list(csv.DictReader(f))
    hist = json.loads((tmp_path / "a" / "marginal" / "seed0" / "history.json").read_text())
    mine = [r for r in curves if r["row"] == "marginal"]
    assert [(r["episode"], int(r["epoch"])) for r in mine] == [("pre", 1), ("fine", 2)]
    assert [float(r["val_loss"]) for r in mine] == [e["val_loss_episode"][0] for e in hist["episodes"]]
    assert (tmp_path / "record" / "curves.png").stat().st_size > 1000


@pytest.mark.parametrize("table", ["demo", "2", "4", "paper", "ablation"])
def test_benchmark_command_builds_the_shipped_studies(table):
    """study_config (benchmark --table, demo) loads every shipped study, scaled, and in quick mode."""
    from stardist_hier.training.experiment.study import study_config

    s = load_study(study_config(table, seeds=[3, 4], epochs=5, steps=7))
    assert s.seeds == (3, 4)
    cfg = load_config(s.experiment(s.rows[1][0], 3))
    assert cfg.training.steps_per_epoch == 7 and cfg.seed == 3
    full = load_config(load_study(study_config(table)).experiment(s.rows[1][0], 0))
    assert [e.max_epochs for e in cfg.episodes] == [max(1, e.max_epochs // 2) for e in full.episodes]
    q = load_study(study_config(table, quick=True))
    assert q.rows and q.comparisons
    for r, _ in q.rows:
        c = load_config(q.experiment(r, q.seeds[0]))
        assert all(e.max_epochs == 1 for e in c.episodes) and c.training.steps_per_epoch == 2
        assert all(d.options["n_tiles"] == 5 for d in c.datasets.values())


def test_rerun_with_other_settings_is_refused_before_anything_runs(tmp_path):
    """Finished runs are read back, so a folder holding runs made with other settings is refused
    (naming the folder and the keys that differ) before any run starts or any file is written."""
    import yaml

    from stardist_hier.errors import RunFolderError
    from stardist_hier.training.experiment.study import run_study

    study = load_study(STUDY)
    old = copy.deepcopy(study.experiment("renorm", 1))
    old["training"]["steps_per_epoch"] = 3
    run = tmp_path / "renorm" / "seed1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(load_config(old).raw))
    (run / "results.csv").write_text("Test,PQ,mPQ+\nC-test,0.9,0.9\n")
    (run / "history.json").write_text('{"finished": true}')
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(RunFolderError, match=r"renorm/seed1 holds a finished run with another config.*"
                                             r"steps_per_epoch.*same settings"):
        run_study(study, tmp_path, verbose=0)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_heads_per_dataset_with_a_test_only_dataset_run(tmp_path):
    """A dataset no episode trains on (here with training tiles of its own, as in the shipped
    studies) is not a training dataset: a model with one head per trained dataset runs, the
    frozen-trunk warm-up episode included, and the test-only dataset is scored."""
    from stardist_hier.training.experiment import run_experiment

    c = copy.deepcopy(BASE)
    c["datasets"]["M"] = {"source": "synthetic", "generator": "monusac", "n_tiles": 4, "size": 64,
                          "split": {"train": 2, "val": 1, "test": 1}}
    c["model"]["hier_class_heads"] = ["pannuke", "consep"]
    c["episodes"] = [{"name": "pre", "datasets": "P", "epochs": 1},
                     {"name": "warm", "datasets": "C", "epochs": 1, "freeze_trunk": True},
                     {"name": "fine", "datasets": "C", "epochs": 1}]
    c["tests"] = [{"name": "C-test", "dataset": "C"}, {"name": "M-test", "dataset": "M"}]
    res = run_experiment(load_config(c), tmp_path / "run", verbose=0)
    assert res["finished"] and [e["epochs_run"] for e in res["history"]["episodes"]] == [1, 1, 1]
    assert {r["Test"] for r in res["results"]} == {"C-test", "M-test"}
