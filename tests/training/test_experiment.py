"""The experiment runner: config validation before training, outputs, resume via --max-epochs."""

import copy
import csv

import pytest
import yaml

from stardist_hier.cli import main
from stardist_hier.training.experiment import ConfigError, load_config

BASE = {
    "name": "tiny",
    "seed": 0,
    "model": {"n_rays": 8, "grid": [2, 2], "unet_n_depth": 2, "unet_n_filter_base": 8, "net_conv_after_unet": 16,
              "train_patch_size": [64, 64], "train_batch_size": 2},
    "training": {"steps_per_epoch": 2, "tensorboard": False},
    "datasets": {
        "P": {"source": "synthetic", "generator": "pannuke", "n_tiles": 4, "size": 64, "seed": 1,
              "split": {"train": 2, "val": 1, "test": 1}},
        "C": {"source": "synthetic", "generator": "consep", "n_tiles": 4, "size": 64, "seed": 2,
              "split": {"train": 2, "val": 1, "test": 1}},
    },
    "episodes": [{"name": "pre", "datasets": "P", "epochs": 2},
                 {"name": "fine", "datasets": "C", "epochs": 2}],
    "tests": [{"name": "C-test", "dataset": "C"}, {"name": "C-coarse", "dataset": "C", "label_set": "consep4"}],
    "evaluation": {"overlays": 1},
}


def _with(**changes):
    cfg = copy.deepcopy(BASE)
    for path, value in changes.items():
        d = cfg
        keys = path.split("__")
        for k in keys[:-1]:
            d = d[int(k)] if isinstance(d, list) else d[k]
        last = keys[-1]
        if isinstance(d, list):
            d[int(last)] = value
        else:
            d[last] = value
    return cfg


@pytest.mark.parametrize("cfg, pattern", [
    (_with(episodes__1={"name": "fine", "datasets": "X", "epochs": 2}), "episode 'fine' names unknown dataset 'X'"),
    (_with(episodes__1={"name": "fine", "datasets": [], "epochs": 2}), "episode 'fine' is empty"),
    (_with(episodes__1={"name": "fine", "epochs": 2}), "episode 'fine' is empty"),
    (_with(tests=[{"name": "bad", "dataset": "C", "label_set": {"Tumor": "tumour_cells"}}]),
     "test set 'bad': its labels are not on the class tree.*'tumour_cells'"),
    (_with(tests=[{"name": "bad", "dataset": "C", "label_set": "no_such_set"}]), "test set 'bad'.*no_such_set"),
    (_with(tests=[{"name": "t", "dataset": "Z"}]), "test set 't': unknown dataset 'Z'"),
    (_with(datasets__C__generator="nope"), "dataset 'C': unknown synthetic generator 'nope'"),
    (_with(datasets__C__source="ftp"), "dataset 'C': unknown source 'ftp'"),
    (_with(episodes__0__class_weights={"muscle": 2.0}), "episode 'pre': class_weights name labels \\['muscle'\\]"),
    (_with(training__steps_per_epoch=1), "steps_per_epoch must be an integer >= 2"),
])
def test_bad_configs_fail_before_training(cfg, pattern, tmp_path, capsys):
    with pytest.raises(ConfigError, match=pattern):
        load_config(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert main(["experiment", str(path), "--out", str(out)]) == 2
    assert "error:" in capsys.readouterr().err
    assert not out.exists()  # nothing was trained or written


@pytest.mark.slow
def test_run_resume_and_outputs(tmp_path):
    from stardist_hier.training import run_experiment

    cfg = _with(training__tensorboard=True)
    full = run_experiment(cfg, tmp_path / "full", verbose=0)
    assert full["finished"] and full["epochs_done"] == 4

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    part = tmp_path / "part"
    assert main(["experiment", str(path), "--out", str(part), "--max-epochs", "3", "-q"]) == 0
    assert not (part / "results.md").exists()
    assert main(["experiment", str(path), "--out", str(part), "-q"]) == 0

    for run in (tmp_path / "full", part):
        hist = yaml.safe_load((run / "history.json").read_text())
        assert hist["epochs_done"] == 4 and [e["epochs_run"] for e in hist["episodes"]] == [2, 2]
        # PQ on each episode's validation images, at the episode's end (also in TensorBoard)
        assert set(hist["episodes"][0]["scores"]) == {"P/PQ", "P/mPQ+"}
        assert set(hist["episodes"][1]["scores"]) == {"C/PQ", "C/mPQ+"}
        assert all(0 <= v <= 1 for e in hist["episodes"] for v in e["scores"].values())
        rows = list(csv.DictReader((run / "results.csv").open()))
        assert [r["Test"] for r in rows] == ["C-test", "C-coarse"]
        assert rows[0]["Pre-train"] == "P" and rows[0]["Fine-tune"] == "C" and rows[0]["Eps"] == "2"
        assert [r["Label set"] for r in rows] == ["consep", "consep4"]
        assert (run / "results.md").read_text().count("| P | 2 | C | 2 |") == 2
        assert (run / "loss_curves.png").stat().st_size > 0
        assert (run / "overlays" / "C-test_0.png").is_file()
        assert (run / "tests" / "C-coarse.csv").is_file()
        assert (run / "model" / "weights_best.h5").is_file()
    assert any((tmp_path / "full" / "model" / "logs").rglob("events.out.tfevents*"))
    assert any((tmp_path / "full" / "model" / "logs" / "episodes").glob("events.out.tfevents*"))
    # the resumed run kept the scores of the episode that ended before the interruption
    assert yaml.safe_load((part / "history.json").read_text())["episodes"][0]["scores"] == \
        yaml.safe_load((tmp_path / "full" / "history.json").read_text())["episodes"][0]["scores"]
    # the interrupted run really stopped after 3 epochs: its second episode started in the first call
    hist = yaml.safe_load((part / "history.json").read_text())
    assert hist["episodes"][1]["first_epoch"] == 2


def test_example_config_is_valid():
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "two_datasets.yaml")
    assert [e.name for e in cfg.episodes] == ["pretrain", "finetune"]
