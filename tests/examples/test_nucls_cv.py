"""examples/nucls_monuseg.py: epochs and thresholds chosen by K-fold CV on the NuCLS train tiles only."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "nucls_monuseg.py"


def _module():
    spec = importlib.util.spec_from_file_location("nucls_monuseg_example", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(*args, timeout=900):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("n,k", [(10, 5), (10, 3), (10, 2), (7, 7)])
def test_folds_partition_the_train_tiles(n, k):
    folds = _module().make_folds(n, k, seed=0)
    assert len(folds) == k
    vals = [i for _, va in folds for i in va]
    assert sorted(vals) == list(range(n))  # every tile validates exactly once
    for tr, va in folds:
        assert va and not set(tr) & set(va) and sorted(tr + va) == list(range(n))


def test_bad_folds_is_one_error_line(shared_data, tmp_path):
    r = _run("--folds", "11", "--quick", "--out", str(tmp_path / "o"), timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: --folds must be between 2 and the 10 train tiles, got 11"]
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_quick_run_keeps_test_tiles_out_of_every_choice(shared_data, tmp_path):
    out = tmp_path / "cv"
    r = _run("--quick", "--folds", "5", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    splits = json.loads((out / "splits.json").read_text())
    train, test = splits["train_tiles"], splits["test_tiles"]
    assert len(train) == 10 and len(test) == 5
    assert all(t["name"].startswith("train/") for t in train) and all(t["name"].startswith("test/") for t in test)
    test_names, test_md5 = {t["name"] for t in test}, {t["md5"] for t in test}
    folds = splits["folds"]
    assert len(folds) == 5
    seen = []
    for f in folds:
        assert not set(f["train"]) & set(f["val"])
        assert sorted(f["train"] + f["val"]) == list(range(10))
        used = [train[i] for i in f["train"] + f["val"]]
        # no test tile among any fold's training or validation tiles, by name nor by pixel content
        assert not {t["name"] for t in used} & test_names
        assert not {t["md5"] for t in used} & test_md5
        seen += f["val"]
    assert sorted(seen) == list(range(10))  # every train tile is in exactly one validation fold

    res = json.loads((out / "results.json").read_text())["results"]
    (runs,) = res.values()
    (run,) = runs
    assert 1 <= run["chosen_epochs"] <= 2 and len(run["fold_val"]) == 5 and len(run["fold_val_loss"][0]) == 2
    assert 0 < run["thresholds"]["prob_thresh"] < 1 and run["thresholds"]["nms_thresh"] == 0.4
    for ls in ("nucls2", "nucls4"):
        assert 0 <= run["test"][ls]["pq"] <= 1

    md = (out / "results.md").read_text()
    assert "| training data | test label set | PQ | mPQ+ | PQ Tumor | PQ Non-Tumor |" in md
    assert "| NuCLS (2 label sets) | nucls4 |" in md and "| NuCLS (2 label sets) | 0 | " in md
