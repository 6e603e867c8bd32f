"""The README's main job (examples/demo.yaml on the study runner), in its quick form; the shipped study configs."""

import csv
import json

import pytest
import yaml


@pytest.mark.slow
def test_demo_quick_runs_the_demo_study(tmp_path, capsys):
    """``demo --quick`` runs examples/demo.yaml through the study runner: study.md with the three rows, run folders."""
    pytest.importorskip("tensorflow")
    from stardist_hier.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = ["consep_only", "consep_only_2x", "pannuke_to_consep"]
    md = (out / "study.md").read_text()
    assert md.startswith("**SMOKE TEST (--quick)") and "SMOKE TEST (--quick)" in printed
    assert "Test set `consep`" in md and "| row | seeds | PQ | mPQ+ |" in md
    for r in rows:
        assert f"| {r} | 1 | " in md and f"| {r} | 1 | " in printed
    assert "| pre-train vs CoNSeP alone, equal steps | declared | mpq | consep | 1 |" in md
    res = json.loads((out / "study.json").read_text())
    assert res["name"] == "demo" and res["rows"] == rows and res["seeds"] == [0]
    for r in rows:
        run = out / r / "seed0"
        assert 0.0 <= res["values"][r]["0"]["consep"]["pq"] <= 1.0
        assert (run / "results.md").is_file()
        assert [t["Test"] for t in csv.DictReader(open(run / "results.csv"))] == ["consep"]
        assert (run / "loss_curves.png").stat().st_size > 1000
        assert list((run / "overlays").glob("consep_*.png"))
        assert (run / "model" / "config.json").is_file() and (run / "thresholds.json").is_file()
        # the model stores the pixel size it was trained at, and the guard of its class head's leaves
        assert json.loads((run / "model" / "config.json").read_text())["hier_mpp"] == 0.588
        assert json.loads((run / "model" / "hier_weights.json").read_text())["leaves"]
    # one episode of 1 epoch per row in quick mode; the fine-tuned row has two
    eps = [[e["epochs"] for e in yaml.safe_load((out / r / "seed0" / "config.yaml").read_text())["episodes"]]
           for r in rows]
    assert eps == [[1], [1], [1, 1]]

    # rerunning with other settings into the same folder is refused before training (finished runs would
    # be read back as they are); the same settings read them back
    capsys.readouterr()
    assert main(["demo", "--epochs", "1", "--steps", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "consep_only/seed0 holds a finished run with another config" in err and "choose another --out" in err
    assert (out / "study.md").read_text() == md
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert (out / "study.md").read_text() == md


def test_demo_rejects_bad_arguments(tmp_path, capsys):
    from stardist_hier.cli import main

    with pytest.raises(SystemExit) as e:
        main(["demo", "--epochs", "0", "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --epochs: must be a positive integer, got '0'" in err[0]
    assert not (tmp_path / "x").exists()


def test_demo_study_has_the_three_rows():
    """examples/demo.yaml through study_config (the quick form of every shipped study: tests/training/test_study.py)."""
    from stardist_hier.training.experiment.study import study_config
    from stardist_hier.training.experiment import load_config
    from stardist_hier.training.experiment.study import load_study

    s = load_study(study_config("demo", seeds=[4], epochs=3, steps=5))
    assert s.seeds == (4,) and [r for r, _ in s.rows] == ["consep_only", "consep_only_2x", "pannuke_to_consep"]
    eps = {r: [(e.dataset_names, e.max_epochs) for e in load_config(s.experiment(r, 4)).episodes] for r, _ in s.rows}
    assert [e[1] for e in eps["consep_only"]] == [3] and [e[1] for e in eps["consep_only_2x"]] == [6]
    assert [e[1] for e in eps["pannuke_to_consep"]] == [3, 3]
    cfg = load_config(s.experiment("pannuke_to_consep", 4))
    assert cfg.training.steps_per_epoch == 5 and [t.name for t in cfg.tests] == ["consep"]
    assert cfg.evaluation.tune_thresholds == ("consep",) and cfg.evaluation.overlays == 2
    assert [(c["a"], c["b"], c["metric"]) for c in s.comparisons] == [("pannuke_to_consep", "consep_only_2x", "mpq")]
