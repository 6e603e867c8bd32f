"""Test sets with ``truth: leaves``: scored against the synthetic generator's true leaves (no training)."""

import copy
import csv

import numpy as np
import pytest

from stardist_hier import synthetic
from stardist_hier.training.experiment import ConfigError, load_config, load_data

CFG = {
    "name": "leaf-truth",
    "seed": 0,
    "model": {"n_rays": 8, "grid": [2, 2], "unet_n_depth": 2, "unet_n_filter_base": 8, "net_conv_after_unet": 16,
              "train_patch_size": [64, 64], "train_batch_size": 2},
    "training": {"steps_per_epoch": 2, "tensorboard": False},
    "datasets": {
        # MoNuSAC-like: coarse labels (e.g. Epithelial); uncovered nuclei ignored in its labels (tile 3)
        "C": {"source": "synthetic", "generator": "monusac", "n_tiles": 5, "size": 96, "seed": 2,
              "split": {"train": 2, "val": 1, "test": 2}},
    },
    "episodes": [{"name": "e", "datasets": "C", "epochs": 1}],
    "tests": [{"name": "C", "dataset": "C"}, {"name": "C-leaves", "dataset": "C", "truth": "leaves"},
              {"name": "C-leaves-coarse", "dataset": "C", "truth": "leaves", "label_set": "consep4"}],
    "evaluation": {"overlays": 0},
}


def test_config():
    cfg = load_config(CFG)
    assert [t.truth for t in cfg.tests] == ["labels", "leaves", "leaves"]
    assert cfg.tests[1].label_set is None and cfg.tests[2].label_set.name == "consep4"


@pytest.mark.parametrize("test, pattern", [
    ({"name": "t", "dataset": "C", "truth": "leaf"}, "test set 't': truth must be one of labels, leaves"),
    ({"name": "reg", "dataset": "R", "truth": "leaves"}, "test set 'reg': truth: leaves needs a synthetic dataset"),
])
def test_config_errors(test, pattern, tmp_path):
    cfg = copy.deepcopy(CFG)
    (tmp_path / "consep").mkdir()
    cfg["datasets"]["R"] = {"source": "registry", "dataset": "consep", "path": str(tmp_path / "consep")}
    cfg["tests"] = [test]
    with pytest.raises(ConfigError, match=pattern):
        load_config(cfg)


def _test_samples(cfg):
    o = cfg.datasets["C"].options
    samples = synthetic.generate_dataset("monusac", 5, seed=2, size=96, taxonomy=cfg.taxonomy, domain=o.get("domain"))
    return samples[3:5]


def test_leaf_truth_equals_generator_leaves():
    cfg = load_config(CFG)
    _, tests = load_data(cfg, verbose=0)
    labels_part, leaves_part = tests["C"], tests[("C", "leaves")]
    samples = _test_samples(cfg)  # generated again, independently of load_data
    assert len(leaves_part) == len(samples) == 2
    n_differ = n_uncovered = 0
    for s, y, c, y_lab, c_lab, ls in zip(samples, leaves_part.Y, leaves_part.classes, labels_part.Y,
                                         labels_part.classes, leaves_part.label_sets):
        assert ls.name == "leaves"
        truth = {int(k): v for k, v in s.meta["leaves"].items()}
        kept = {int(k) for k in np.unique(y) if k > 0}
        assert kept and set(c) == kept
        for k in kept:
            assert c[k] == truth[k]  # the true leaf of every kept instance
            assert (y == k).sum() == (s.labels == k).sum()  # the whole nucleus
            if c_lab.get(k) is None:
                n_uncovered += 1  # ignored in the dataset's labels, scored at the leaves
            elif c_lab[k] != truth[k]:
                n_differ += 1  # the coarse label is not the leaf
        # nuclei kept at the label level are kept here, with the same pixels
        for k in {int(k) for k in np.unique(y_lab) if k > 0}:
            assert np.array_equal(y_lab == k, y == k)
    assert n_differ > 0 and n_uncovered > 0


def _score(cfg, tests, out, swap=None):
    """Scores of a stub model predicting every true nucleus with its true leaf (``swap``: leaf -> leaf)."""
    from stardist_hier.training.experiment.evaluate import evaluate_tests

    leaves = tests[("C", "leaves")]
    tree = cfg.taxonomy.tree

    class Oracle:
        def predict_instances(self, x, **kw):
            i = next(j for j, xx in enumerate(leaves.X) if xx is x)
            y, c = np.asarray(leaves.Y[i]), leaves.classes[i]
            ids = sorted(c)
            lab = np.zeros(y.shape, np.int32)
            prob = np.zeros((len(ids), tree.n_classes + 1), np.float32)
            for j, k in enumerate(ids):
                lab[y == k] = j + 1
                prob[j, tree.leaf_index((swap or {}).get(c[k], c[k]))] = 1
            return lab, {"class_prob": prob}

    out.mkdir()
    history = {"episodes": [{"name": "e", "datasets": {"C": 1.0}, "epochs_run": 1}]}
    rows = evaluate_tests(Oracle(), cfg, tests, history, out, verbose=0)
    per_label = {r["label"]: r for r in csv.DictReader((out / "tests" / "C-leaves.csv").open()) if r["kind"] == "class"}
    return {r["Test"]: r for r in rows}, per_label


def test_scoring_uses_leaf_truth(tmp_path):
    cfg = load_config(CFG)
    _, tests = load_data(cfg, verbose=0)
    by, per_label = _score(cfg, tests, tmp_path / "a")
    assert by["C-leaves"]["Label set"] == "leaves" and by["C-leaves-coarse"]["Label set"] == "consep4"
    assert by["C-leaves"]["PQ"] == pytest.approx(1.0, abs=1e-5)
    present = {k: r for k, r in per_label.items() if int(r["tp"]) + int(r["fn"]) > 0}
    assert "epithelial_tumor" in present and "epithelial_normal" in present
    assert all(float(r["pq"]) == pytest.approx(1.0, abs=1e-5) for r in present.values())
    assert by["C"]["PQ"] == pytest.approx(1.0, abs=1e-5)  # the label-level truth keeps fewer nuclei
    # tumour predicted as normal epithelium: the same at MoNuSAC's labels ("Epithelial"), wrong at the leaves
    by2, per_label2 = _score(cfg, tests, tmp_path / "b", swap={"epithelial_tumor": "epithelial_normal"})
    assert by2["C"]["mPQ+"] == pytest.approx(by["C"]["mPQ+"], abs=1e-6)
    assert float(per_label2["epithelial_tumor"]["pq"]) == 0.0
    assert by2["C-leaves"]["mPQ+"] < by["C-leaves"]["mPQ+"] - 0.05
