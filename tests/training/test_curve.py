"""``evaluation: curve``: validation loss and PQ of named datasets after every epoch of every episode."""

import copy
import csv
import json
import math

import pytest

from stardist_hier.training.experiment import ConfigError, CurveSection, load_config

CFG = {
    "name": "curve",
    "seed": 0,
    "model": {"n_rays": 8, "grid": [2, 2], "unet_n_depth": 2, "unet_n_filter_base": 8, "net_conv_after_unet": 16,
              "train_patch_size": [64, 64], "train_batch_size": 2},
    "training": {"steps_per_epoch": 2, "tensorboard": False, "augment": False},
    "datasets": {
        "P": {"source": "synthetic", "generator": "pannuke", "n_tiles": 4, "size": 64, "seed": 1,
              "split": {"train": 2, "val": 1, "test": 1}},
        "C": {"source": "synthetic", "generator": "consep", "n_tiles": 5, "size": 64, "seed": 2,
              "split": {"train": 2, "val": 2, "test": 1}},
    },
    "episodes": [{"name": "pre", "datasets": "P", "epochs": 2},
                 {"name": "fine", "datasets": "C", "epochs": 1, "keep_optimizer_state": False}],
    "tests": [{"name": "C-test", "dataset": "C"}],
    # C is the target: recorded also while pre-training on P
    "evaluation": {"overlays": 0, "curve": {"datasets": ["C", "P"], "max_images": 1}},
}
EPOCHS = 3


def _cfg(curve):
    cfg = copy.deepcopy(CFG)
    cfg["evaluation"]["curve"] = curve
    return cfg


def test_curve_config():
    assert load_config(CFG).evaluation.curve == CurveSection(datasets=("C", "P"), max_images=1)
    assert load_config(_cfg(["C"])).evaluation.curve == CurveSection(datasets=("C",), max_images=4)
    assert load_config(_cfg(False)).evaluation.curve is None


@pytest.mark.parametrize("curve, pattern", [
    ({"datasets": ["C", "X"]}, "evaluation: curve: unknown dataset 'X'"),
    ({"datasets": []}, "evaluation: curve: datasets must be a non-empty list"),
    ({"datasets": ["C"], "max_images": 0}, r"evaluation: curve: max_images: must be an integer in \[1, inf\)"),
    ({"datasets": ["C"], "every": 2}, "evaluation: curve: unknown key 'every'"),
])
def test_curve_config_errors(curve, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(_cfg(curve))


def _rows(run):
    return list(csv.DictReader((run / "curve.csv").open()))


def _check(run):
    rows = _rows(run)
    assert [(int(r["global_epoch"]), r["dataset"]) for r in rows] == \
        [(g, d) for g in range(1, EPOCHS + 1) for d in ("C", "P")]  # one row per (epoch, dataset), no duplicate
    assert [(r["episode"], int(r["epoch"])) for r in rows[::2]] == [("pre", 1), ("pre", 2), ("fine", 1)]
    for r in rows:
        assert math.isfinite(float(r["val_loss"])) and float(r["val_loss"]) > 0
        assert 0 <= float(r["pq"]) <= 1 and 0 <= float(r["mpq"]) <= 1
    assert (run / "curve.png").stat().st_size > 0
    # kept in the history (and so in the checkpoint)
    hist = json.loads((run / "history.json").read_text())
    assert [len(e["curve"]) for e in hist["episodes"]] == [4, 2]
    return rows


@pytest.mark.slow
def test_curve_run_and_resume(tmp_path):
    from stardist_hier.training import run_experiment

    full = run_experiment(CFG, tmp_path / "full", verbose=0)
    assert full["finished"] and full["epochs_done"] == EPOCHS
    rows = _check(tmp_path / "full")
    # the same loss as the training callback's episode validation loss: on an episode's own
    # dataset (64 px images = the patch size, so the same pixels) the values agree
    hist = json.loads((tmp_path / "full" / "history.json").read_text())
    for eh, d in zip(hist["episodes"], ("P", "C")):
        own = [float(r["val_loss"]) for r in rows if r["episode"] == eh["name"] and r["dataset"] == d]
        assert own == pytest.approx(eh["val_loss_episode"], rel=1e-5)
    assert {"val_prob_loss", "val_dist_loss"} <= set(rows[0])

    part = tmp_path / "part"
    res = run_experiment(CFG, part, max_epochs=2, verbose=0)
    assert not res["finished"] and len(_rows(part)) == 4
    # a run killed after writing curve.csv but before its checkpoint: a row of an epoch not checkpointed
    with (part / "curve.csv").open("a") as f:
        f.write("fine,1,3,C,9.9,0.5,0.5\n")
    res = run_experiment(CFG, part, verbose=0)
    assert res["finished"]
    resumed = _check(part)
    for a, b in zip(rows, resumed):  # the resumed run's curve is the uninterrupted run's
        assert a["global_epoch"] == b["global_epoch"] and a["dataset"] == b["dataset"]
        for k in ("val_loss", "pq", "mpq"):
            assert float(a[k]) == pytest.approx(float(b[k]), rel=1e-4, abs=1e-6)
